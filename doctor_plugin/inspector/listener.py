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

"""Take OpenStack notifications off the bus and feed the inspector.

Every enabled transformer that declares bus ``event_types`` (Nova's
``service.update``, ...) gets the notifications of those types; the events
it produces go through the inspector like those of the HTTP API.
"""

from __future__ import annotations

import fnmatch
import time
import typing

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging

from doctor_plugin.common import messaging
from doctor_plugin import delivery
from doctor_plugin.delivery import rejects as rejects_mod
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import engine
from doctor_plugin.transformers import base as transformer_base

LOG = logging.getLogger(__name__)

GROUP = 'inspector'

OPTS = [
    cfg.ListOpt('notification_topics',
                default=['versioned_notifications'],
                help='Topics carrying the OpenStack notifications to '
                     'transform (Nova sends versioned notifications to '
                     'versioned_notifications).'),
    cfg.StrOpt('notification_pool',
               default='doctor-inspector',
               help='Listener pool: inspectors sharing it share the work, '
                    'and the pool keeps our queue apart from other '
                    'consumers of the same topic (Ceilometer, Searchlight).'),
]


#: Seconds a notification whose events could not be recorded waits
#: before it is requeued, so that a database outage is not a busy loop.
REQUEUE_DELAY = 1.0


class NotificationEndpoint:
    """Dispatch notifications to transformers by event type."""

    def __init__(self, inspector: engine.Inspector,
                 transformers: typing.Sequence[
                     transformer_base.TransformerBase],
                 rejects: rejects_mod.Rejects | None = None,
                 limits: tuple[int, int] | None = None) -> None:
        self.inspector = inspector
        self.transformers = [t for t in transformers if t.event_types]
        self.rejects = rejects or rejects_mod.Rejects()
        #: (max_traits, max_string_length) of the events, as the API's.
        self.limits = limits

    def handles(self, event_type: str
                ) -> list[transformer_base.TransformerBase]:
        return [t for t in self.transformers
                if any(fnmatch.fnmatchcase(event_type, p)
                       for p in t.event_types)]

    def _dispatch(self, priority: str, ctxt: dict, publisher_id: str,
                  event_type: str, payload: typing.Any,
                  metadata: dict) -> None:
        transformers = self.handles(event_type)
        if not transformers:
            return None
        meta = dict(metadata or {}, event_type=event_type,
                    publisher_id=publisher_id, priority=priority)
        events = []
        for transformer in transformers:
            try:
                made = transformer.transform(payload, meta)
                if self.limits is not None:
                    event_model.check_limits(made, *self.limits)
                events.extend(made)
            except Exception as exc:
                # Acknowledged, not requeued: it would come back forever.
                self.rejects.reject(meta, payload, exc)
        if events:
            try:
                self.inspector.process(events)
            except exceptions.DeliveryError as exc:
                # Not acknowledged: the broker keeps the notification until
                # its events are recorded (a delivery database that is
                # down) or published.
                LOG.error('Could not publish the events of %s notification '
                          '%s, requeuing it in %.1f s: %s', event_type,
                          meta.get('message_id'), REQUEUE_DELAY, exc)
                time.sleep(REQUEUE_DELAY)
                return oslo_messaging.NotificationResult.REQUEUE
            except Exception as exc:
                self.rejects.reject(meta, payload, exc)
        return None

    def audit(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._dispatch('audit', ctxt, publisher_id, event_type,
                              payload, metadata)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._dispatch('info', ctxt, publisher_id, event_type,
                              payload, metadata)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._dispatch('warn', ctxt, publisher_id, event_type,
                              payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._dispatch('error', ctxt, publisher_id, event_type,
                              payload, metadata)

    def critical(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._dispatch('critical', ctxt, publisher_id, event_type,
                              payload, metadata)


class NotificationListener:
    """The running bus listener of the inspector."""

    def __init__(self, conf: cfg.ConfigOpts, inspector: engine.Inspector,
                 transformers: typing.Sequence[
                     transformer_base.TransformerBase],
                 transport_url: str | None = None) -> None:
        self.outbox = delivery.get_outbox(conf)
        self.endpoint = NotificationEndpoint(
            inspector, transformers, rejects_mod.Rejects(self.outbox),
            (conf.inspector.max_traits, conf.inspector.max_string_length))
        transport = messaging.get_transport(conf, transport_url)
        self._server = messaging.get_listener(
            transport, conf.inspector.notification_topics, [self.endpoint],
            pool=conf.inspector.notification_pool, allow_requeue=True)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
        self._server.wait()
        delivery.release(self.outbox)
        self.outbox = None
