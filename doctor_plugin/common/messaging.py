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

"""One place for the oslo.messaging plumbing the services share.

Transports are expensive (a connection pool each), so a process keeps one
notification transport per URL and every notifier and listener reuses it.
"""

from __future__ import annotations

import socket
import threading
import typing

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging

LOG = logging.getLogger(__name__)

_TRANSPORTS: dict[str | None, oslo_messaging.Transport] = {}
_LOCK = threading.Lock()

#: The transport the demo uses when no broker is given: in-process.
FAKE_TRANSPORT_URL = 'fake://'


def resolve_url(conf: cfg.ConfigOpts, url: str | None = None) -> str | None:
    """The transport URL a notification transport of ``conf`` would use."""
    if url:
        return url
    return (conf.oslo_messaging_notifications.transport_url
            or conf.transport_url)


def get_transport(conf: cfg.ConfigOpts,
                  url: str | None = None) -> oslo_messaging.Transport:
    """The process's notification transport for ``url``.

    With ``url`` None, oslo.messaging's own options decide
    (``[oslo_messaging_notifications] transport_url``, then
    ``[DEFAULT] transport_url``). Transports are shared by resolved URL.
    """
    key = resolve_url(conf, url)
    with _LOCK:
        transport = _TRANSPORTS.get(key)
        if transport is None:
            transport = oslo_messaging.get_notification_transport(
                conf, url=url)
            _TRANSPORTS[key] = transport
        return transport


def cleanup() -> None:
    """Close every cached transport (at shutdown, and between tests)."""
    with _LOCK:
        transports = list(_TRANSPORTS.values())
        _TRANSPORTS.clear()
    for transport in transports:
        transport.cleanup()


def get_listener(transport: oslo_messaging.Transport,
                 topics: typing.Iterable[str],
                 endpoints: list, pool: str | None = None,
                 batch_size: int | None = None,
                 batch_timeout: float | None = None,
                 allow_requeue: bool = False
                 ) -> oslo_messaging.MessageHandlingServer:
    """A threaded notification listener on ``topics``.

    Listeners that share a ``pool`` name compete for messages (work
    sharing); distinct pools each get every message. With ``batch_size``
    the endpoints receive lists of messages. With ``allow_requeue`` an
    endpoint that returns ``NotificationResult.REQUEUE`` (or raises)
    leaves the message on the broker for another try.
    """
    targets = [oslo_messaging.Target(topic=topic) for topic in topics]
    if batch_size:
        return oslo_messaging.get_batch_notification_listener(
            transport, targets, endpoints, executor='threading',
            pool=pool, batch_size=batch_size, batch_timeout=batch_timeout,
            allow_requeue=allow_requeue)
    return oslo_messaging.get_notification_listener(
        transport, targets, endpoints, executor='threading', pool=pool,
        allow_requeue=allow_requeue)


def _parse(url: str) -> oslo_messaging.TransportURL:
    # Parsed with a configuration of its own: parsing registers
    # oslo.messaging's transport options, and a service that loaded us
    # (Aodh, Ceilometer) may have changed their defaults since the
    # caller's configuration registered them, which oslo.config refuses
    # as a duplicate.
    return oslo_messaging.TransportURL.parse(cfg.ConfigOpts(), url)


class BrokerWatch:
    """Call ``on_return`` when the broker comes back after an outage.

    oslo.messaging reconnects its listeners by itself (see
    ``[oslo_messaging_rabbit] rabbit_retry_interval`` and
    ``rabbit_interval_max``) but tells its users nothing; what was sent
    while the broker was away (Nova's instance notifications) is lost to
    them. A thread tries a TCP connection to the broker's hosts every
    ``interval`` seconds; when one answers again after none did, it
    calls ``on_return`` (the topology's resync).

    :param url: a ``rabbit://`` transport URL; other transports have no
        broker to watch, and nothing runs
    """

    def __init__(self, url: str | None,
                 on_return: typing.Callable[[], object],
                 interval: float) -> None:
        self._hosts: list[tuple[str, int]] = []
        if url and url.startswith('rabbit') and interval > 0:
            self._hosts = [(h.hostname or '127.0.0.1', h.port or 5672)
                           for h in _parse(url).hosts]
        self._on_return = on_return
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outages = 0

    def reachable(self) -> bool:
        for host, port in self._hosts:
            try:
                with socket.create_connection((host, port), timeout=2):
                    return True
            except OSError:
                continue
        return False

    def start(self) -> BrokerWatch:
        if self._hosts:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name='doctor-broker-watch')
            self._thread.start()
        return self

    def _run(self) -> None:
        up = True
        while not self._stop.wait(self._interval):
            now_up = self.reachable()
            if up and not now_up:
                self.outages += 1
                LOG.warning('The message broker is unreachable; '
                            'oslo.messaging keeps reconnecting, and what '
                            'the bus missed meanwhile is reloaded when it '
                            'is back')
            elif now_up and not up:
                LOG.info('The message broker is back; resynchronising')
                try:
                    self._on_return()
                except Exception:
                    LOG.exception('Resynchronising after the broker '
                                  'returned failed')
            up = now_up

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
