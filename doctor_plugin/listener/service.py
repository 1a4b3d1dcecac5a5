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

"""Take Ceilometer-format events off the bus and evaluate them.

This is the part of the chain Aodh's ``aodh-listener`` plays: it consumes
the notifications Ceilometer's event publisher (and our ``messaging://``
notifier) send to ``alarm.all`` — ``sample`` priority, event_type
``event``, payload a list of serialised events — and evaluates each event.
"""

from __future__ import annotations

import typing

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging

from doctor_plugin.alarms import evaluator as evaluator_mod
from doctor_plugin.common import context as context_mod
from doctor_plugin.common import messaging
from doctor_plugin.coordination import cluster as cluster_mod
from doctor_plugin.coordination import membership as membership_mod
from doctor_plugin.delivery import outbox as outbox_mod
from doctor_plugin.delivery import rejects as rejects_mod
from doctor_plugin import event as event_model
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

GROUP = 'listener'

OPTS = [
    cfg.ListOpt('event_topics',
                default=['alarm.all'],
                help='Topics the listener takes Ceilometer-format events '
                     'from (Ceilometer\'s notifier://?topic=alarm.all, our '
                     'messaging://).'),
    cfg.StrOpt('pool',
               help='Listener pool name. Listeners sharing a pool share '
                    'the work; leave empty to receive every event.'),
]


class EventEndpoint:
    """oslo.messaging endpoint for ``event`` notifications."""

    filter_rule = oslo_messaging.NotificationFilter(event_type='^event$')

    def __init__(self, evaluator: evaluator_mod.EventAlarmEvaluator) -> None:
        self.evaluator = evaluator
        self.rejects = rejects_mod.Rejects(evaluator.outbox,
                                           source='alarm-listener')

    def sample(self, ctxt: dict, publisher_id: str, event_type: str,
               payload: typing.Any, metadata: dict) -> None:
        if not isinstance(payload, list):
            payload = [payload]
        events = []
        for item in payload:
            if (isinstance(item, dict)
                    and isinstance(item.get('event_type'), str)
                    and not self.evaluator.watches(item['event_type'])):
                # No alarm can match: skip decoding it (a failed host
                # brings one event per instance).
                continue
            try:
                events.append(event_model.Event.deserialize(item))
            except (TypeError, ValueError, AttributeError) as exc:
                self.rejects.reject(
                    dict(metadata or {}, event_type=event_type,
                         publisher_id=publisher_id), item,
                    exceptions.InvalidPayload('event', str(exc)))
        if events:
            try:
                self.evaluator.evaluate(events)
            except Exception as exc:
                self.rejects.reject(
                    dict(metadata or {}, event_type=event_type,
                         publisher_id=publisher_id), payload, exc)


class AlarmListener:
    """The running listener: bus consumer plus evaluator.

    The service's context (timeline, activity, the alarm action pool) is
    the evaluator's; :meth:`stop` shuts it down.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 evaluator: evaluator_mod.EventAlarmEvaluator,
                 transport_url: str | None = None) -> None:
        self.evaluator = evaluator
        self.context = evaluator.context
        transport = messaging.get_transport(conf, transport_url)
        self._server = messaging.get_listener(
            transport, conf.listener.event_topics,
            [EventEndpoint(evaluator)], pool=conf.listener.pool)
        self.membership: membership_mod.Membership | None = None
        self.takeover: cluster_mod.Takeover | None = None
        outbox = evaluator.outbox
        if conf.coordination.backend_url and outbox is not None:
            # The bus shares the events out (the pool); the group only
            # says who is gone, so that one survivor resumes the
            # deliveries a dead listener left in the shared database.
            member_id = outbox_mod.owner_name(conf)
            self.membership = membership_mod.Membership(
                conf, f'{conf.coordination.group}.listener',
                membership_mod.Member(member_id),
                on_change=self._group_changed)
            self.takeover = cluster_mod.Takeover(
                self.membership, outbox.store,
                ':' + member_id.rsplit(':', 1)[-1], outbox.resume)

    def _group_changed(self, view: membership_mod.View, left: frozenset,
                       joined: frozenset) -> None:
        if self.takeover is not None:
            self.takeover.trigger()

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> AlarmListener:
        """The listener of ``[alarms] definitions_file``, kept current."""
        return cls(conf, evaluator_mod.EventAlarmEvaluator.from_conf(
            conf, context=context_mod.ServiceContext('listener')))

    def start(self) -> None:
        if self.membership is not None and self.takeover is not None:
            self.membership.start()
            self.takeover.start()
        self._server.start()

    def reload(self) -> None:
        """Read the alarm definitions again (SIGHUP)."""
        self.evaluator.reload()

    def stop(self) -> None:
        self._server.stop()
        self._server.wait()
        if self.membership is not None and self.takeover is not None:
            self.membership.stop()
            self.takeover.stop()
        self.evaluator.close()
        self.context.close()
