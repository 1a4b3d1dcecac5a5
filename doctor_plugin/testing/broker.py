# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Clean a shared RabbitMQ broker up after a run that made its own topics.

oslo.messaging declares durable queues for every listener, and has no call
to delete them: on a broker that several runs share (a developer's, CI's)
they would pile up, each holding the messages nobody reads any more. A
test, the demo or the bench that listens on a topic of its own (a name
with a UUID in it, so that runs never see each other's messages) deletes
its queues when it ends::

    from doctor_plugin.testing import broker

    self.addCleanup(broker.delete_queues, conf, transport_url,
                    broker.listener_queue_names([topic]))

:func:`broker_connection` gives a kombu connection for other
housekeeping oslo.messaging has no call for (a dead-letter exchange, a
queue policy). Nothing here is for the services: they never delete
queues.
"""

from __future__ import annotations

import time
import typing

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging

LOG = logging.getLogger(__name__)

#: Priorities a notification listener may bind a queue for.
PRIORITIES = ('audit', 'critical', 'debug', 'error', 'info', 'sample', 'warn')


def listener_queue_names(topics: typing.Iterable[str],
                         pool: str | None = None) -> list[str]:
    """The RabbitMQ queues a notification listener on ``topics`` declares.

    oslo.messaging names them ``<topic>.<priority>``, or after the pool
    when there is one.
    """
    if pool:
        return [pool]
    return [f'{topic}.{priority}' for topic in topics
            for priority in PRIORITIES]


def traits_of(event: typing.Mapping[str, typing.Any]) -> dict[str, typing.Any]:
    """The traits of a serialised event, by name (as the bus has them)."""
    return {t[0]: t[2] for t in event.get('traits') or ()
            if isinstance(t, list) and len(t) == 3}


class EventTap:
    """The serialised events that ``messaging://`` publishes on ``topic``.

    Each bus message (a list of serialised events, as the event publisher
    sends them) is handed to ``on_events`` with its arrival time
    (``time.time()``), from the listener's thread; what is not a list of
    events is left out.
    """

    def __init__(self, transport: oslo_messaging.Transport, topic: str,
                 on_events: typing.Callable[
                     [list[dict[str, typing.Any]], float], None]) -> None:
        self._on_events = on_events
        self._listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [self],
            executor='threading')

    def sample(self, ctxt: typing.Any, publisher_id: str, event_type: str,
               payload: typing.Any, metadata: typing.Any) -> None:
        at = time.time()
        if isinstance(payload, list):
            self._on_events([ev for ev in payload if isinstance(ev, dict)],
                            at)

    def start(self) -> EventTap:
        self._listener.start()
        return self

    def stop(self) -> None:
        self._listener.stop()
        self._listener.wait()


def delete_queues(url: str | None, names: typing.Iterable[str]) -> None:
    """Delete queues on the RabbitMQ broker of ``url``.

    Queues that are already gone are skipped. Other transports (``fake://``)
    have nothing to delete: nothing happens.
    """
    if not url or not url.startswith('rabbit'):
        return
    with broker_connection(url) as conn:
        for name in names:
            channel = conn.channel()
            try:
                channel.queue_delete(name)
            except Exception as exc:
                LOG.debug('Could not delete queue %s: %s', name, exc)
            finally:
                try:
                    channel.close()
                except Exception:
                    pass


def broker_connection(url: str) -> typing.Any:
    """A kombu connection to the first RabbitMQ host of ``url``.

    For the broker housekeeping oslo.messaging has no call for (deleting
    a run's queues and exchanges).
    """
    import kombu  # the rabbit driver's own dependency

    # Parsed with a configuration of its own: parsing registers
    # oslo.messaging's transport options, which the caller's configuration
    # may hold with other defaults (Aodh's), and oslo.config refuses the
    # duplicate.
    parsed = oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), url)
    host = parsed.hosts[0]
    return kombu.Connection(hostname=host.hostname, port=host.port or 5672,
                            userid=host.username, password=host.password,
                            virtual_host=parsed.virtual_host or '/',
                            connect_timeout=5)
