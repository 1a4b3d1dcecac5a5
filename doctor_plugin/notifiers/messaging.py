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

"""Put events on the OpenStack message bus: ``messaging://``.

:class:`MessagingNotifier` publishes a pipeline sink's events;
:class:`MessagingAction`, an alarm action, publishes the event that
moved the alarm, as it did when alarm actions were notifiers.

Two outputs per batch, in this order:

1. the Ceilometer event-publisher message that Aodh's event alarm listener
   consumes: one ``sample`` notification, event type ``event``, whose payload
   is the list of signed serialised events, on ``event_topic``
   (``alarm.all``) -- exactly what Ceilometer's
   ``notifier://?topic=alarm.all`` publisher sends. It goes first because
   alarms are the latency-critical path;
2. one plain ``info`` notification per event whose type matches
   ``notification_event_types`` (host and controller events by default),
   with the event's own type (``compute.host.down``) and its traits as a
   flat payload, on ``notification_topic`` (``notifications``), for every
   other consumer. Per-VM ``compute.instance.update`` events are left out by
   default: one broker message per VM is what the batch in output 1 is
   there to avoid, and on ``notifications`` they would pass for Nova's own.

URL query parameters override the ``[notifier]`` options for one target:
``messaging://?topic=alarm.all&notification_topic=&publisher_id=doctor``
(an empty ``notification_topic`` turns output 2 off). The broker is the
service's ``transport_url``; the URL takes no host.
"""

from __future__ import annotations

import datetime
import fnmatch
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging
from oslo_serialization import jsonutils
from oslo_utils import timeutils

from doctor_plugin.common import messaging
from doctor_plugin.delivery import recordable
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import base
from doctor_plugin import signing

LOG = logging.getLogger(__name__)

GROUP = 'notifier'

OPTS = [
    cfg.StrOpt('event_topic',
               default='alarm.all',
               help='Topic of the Ceilometer-format event notifications '
                    'that Aodh\'s event alarm listener consumes (Aodh\'s '
                    '[listener] event_alarm_topic). The messaging:// URL '
                    'query parameter "topic" overrides it.'),
    cfg.StrOpt('notification_topic',
               default='notifications',
               help='Topic of the plain OpenStack notifications, one per '
                    'event with the event\'s own event type. Empty turns '
                    'them off. The messaging:// URL query parameter '
                    '"notification_topic" overrides it.'),
    cfg.ListOpt('notification_event_types',
                default=['compute.host.*', 'doctor.*'],
                help='Event types (fnmatch patterns) that are also sent as '
                     'plain notifications on notification_topic, one '
                     'message each. The default sends the host events '
                     '(and their per-tenant copies) and the controller\'s '
                     'results, but not the per-VM compute.instance.update '
                     'events of a failed host, which go to Aodh in the '
                     'event batch only. "*" sends every event.'),
    cfg.StrOpt('publisher_id',
               default='doctor_plugin',
               help='Publisher id of the notifications doctor_plugin puts '
                    'on the bus. The messaging:// URL query parameter '
                    '"publisher_id" overrides it.'),
    cfg.StrOpt('telemetry_secret',
               default='',
               secret=True,
               help='Secret used to sign event messages, as Ceilometer\'s '
                    '[publisher] telemetry_secret; set the same value '
                    'there so consumers can verify. Empty sends an empty '
                    'signature.'),
    cfg.IntOpt('messaging_retry',
               default=2,
               min=-1,
               help='How many times to retry sending a notification when '
                    'the broker is unreachable before reporting a delivery '
                    'error; -1 retries forever, which blocks the pipeline '
                    'while the broker is down.'),
]

_PARAMS = ('topic', 'notification_topic', 'publisher_id')

#: oslo.messaging's 'messagingv2' driver format (the enveloped message).
_MESSAGE_VERSION = 2.0


class _TopicSender:
    """Send notifications to one topic, raising when delivery fails.

    This does what oslo.messaging's ``messagingv2`` notifier driver does, on
    the same transport method, except for one thing: ``Notifier`` and its
    drivers log and swallow every delivery error, so a caller can never tell
    an alarm was lost. The doctor path must report it.
    """

    def __init__(self, transport: oslo_messaging.Transport, topic: str,
                 publisher_id: str, retry: int) -> None:
        self.topic = topic
        self._transport = transport
        self._publisher_id = publisher_id
        self._retry = retry
        self._targets = {
            priority: oslo_messaging.Target(topic=f'{topic}.{priority}')
            for priority in ('sample', 'info')}

    def send(self, priority: str, event_type: str,
             payload: typing.Any, message_id: str | None = None) -> None:
        message = {
            'message_id': message_id or str(uuid.uuid4()),
            'publisher_id': self._publisher_id,
            'event_type': event_type,
            'priority': priority.upper(),
            'payload': payload,
            'timestamp': str(timeutils.utcnow()),
        }
        # Transport._send_notification is the call every oslo.messaging
        # notifier driver makes; there is no public one that reports errors.
        self._transport._send_notification(
            self._targets[priority], {}, message,
            version=_MESSAGE_VERSION, retry=self._retry)


class _MessagingTarget(base.Plugin):
    """A ``messaging://`` URL: its topics, and how a message is sent."""

    def __init__(self, conf: cfg.ConfigOpts, url: str,
                 context: typing.Any = None) -> None:
        super().__init__(conf, url, context=context)
        opts = conf.notifier
        if self.parsed_url.netloc or self.parsed_url.path.strip('/'):
            # Not the URL itself: its userinfo may hold a password.
            shown = (f'messaging://{self.parsed_url.hostname or ""}'
                     f'{self.parsed_url.path}')
            raise exceptions.ConfigurationError(
                'notifier URL', shown,
                'messaging:// takes no host or path: events go to the '
                'broker of the service\'s transport_url; write '
                'messaging://?topic=alarm.all')
        unknown = sorted(set(self.params) - set(_PARAMS))
        if unknown:
            raise exceptions.ConfigurationError(
                'notifier URL', url,
                f"unknown query parameter(s) {', '.join(unknown)}; "
                f"messaging:// accepts {', '.join(_PARAMS)}")
        event_topic = self.params.get('topic', opts.event_topic)
        if not event_topic:
            raise exceptions.ConfigurationError(
                'notifier URL', url,
                'the event topic is empty; set "topic" in the URL or '
                '[notifier] event_topic (Aodh listens on alarm.all)')
        notification_topic = self.params.get('notification_topic',
                                             opts.notification_topic)
        publisher_id = self.params.get('publisher_id', opts.publisher_id)
        self.secret = opts.telemetry_secret
        retry = opts.messaging_retry
        try:
            transport = messaging.get_transport(conf)
        except oslo_messaging.InvalidTransportURL:
            # Not the exception's text: it repeats the URL and password.
            raise exceptions.ConfigurationError(
                'transport_url', None,
                'is not a valid transport URL; write it as '
                'rabbit://user:password@host:5672/vhost') from None
        except oslo_messaging.DriverLoadFailure as exc:
            raise exceptions.ConfigurationError(
                'transport_url', None,
                f'{exc}; install the driver or fix the URL scheme') from None
        self.event_sender = _TopicSender(transport, event_topic,
                                         publisher_id, retry)
        self.notification_sender = (
            _TopicSender(transport, notification_topic, publisher_id, retry)
            if notification_topic else None)
        self._notification_types = tuple(opts.notification_event_types)
        self._sends_notification: dict[str, bool] = {}

    def encode_events(self, events: typing.Sequence[event_model.Event]
                      ) -> list[recordable.Prepared]:
        """The event batch, then the plain notifications, as messages.

        Each carries the message_id it is sent with every time, and the
        message_id of its (first) event as its idempotency key.
        """
        times: event_model.Times = {}
        payload = [signing.message_from_event(e, self.secret, times)
                   for e in events]
        prepared = [_message(_EVENTS, 'sample', 'event', payload,
                             events[0].message_id, len(events))]
        if self.notification_sender is not None:
            prepared.extend(
                _message(_NOTIFICATIONS, 'info', e.event_type,
                         notification_payload(e), e.message_id, 1)
                for e in events if self._notifies(e.event_type))
        return prepared

    def send(self, prepared: typing.Any) -> None:
        item = prepared
        # The first attempt has the message it recorded: decoding the
        # batch again cost a tenth of the inspector's CPU in B5.
        message = getattr(item, 'decoded', None)
        if message is None:
            message = jsonutils.loads(item.payload)
        sender = (self.event_sender if message['to'] == _EVENTS
                  else self.notification_sender)
        if sender is None:
            raise exceptions.DeliveryError(
                f'{item.label}: notification_topic is now empty, so the '
                f'plain notification recorded for it cannot be sent')
        self._send(sender, message['priority'], message['event_type'],
                   message['payload'], message['count'],
                   message['message_id'])

    def _notifies(self, event_type: str) -> bool:
        """Whether events of ``event_type`` get a plain notification."""
        sends = self._sends_notification.get(event_type)
        if sends is None:
            sends = self._sends_notification[event_type] = any(
                fnmatch.fnmatchcase(event_type, pattern)
                for pattern in self._notification_types)
        return sends

    @staticmethod
    def _send(sender: _TopicSender, priority: str, event_type: str,
              payload: typing.Any, count: int,
              message_id: str | None = None) -> None:
        try:
            sender.send(priority, event_type, payload, message_id)
        except (oslo_messaging.MessagingException, OSError) as exc:
            raise exceptions.DeliveryError(
                f'could not publish {count} event(s) as {event_type!r} '
                f'({priority}) to topic {sender.topic!r}: '
                f'{type(exc).__name__}: {exc}. Check that the message '
                f'broker is running and reachable from this host, and that '
                f'transport_url ([oslo_messaging_notifications] or '
                f'[DEFAULT]) names it with valid credentials.') from exc
        LOG.debug('Published %(count)d event(s) as %(event_type)s '
                  '(%(priority)s) to topic %(topic)s',
                  {'count': count, 'event_type': event_type,
                   'priority': priority, 'topic': sender.topic})


class MessagingNotifier(_MessagingTarget, base.EventNotifier):
    """Publish a sink's events for Aodh and as notifications.

    Recordable: the event batch is one delivery, and each plain
    notification one.
    """

    def encode(self, item: typing.Sequence[event_model.Event]
               ) -> list[recordable.Prepared]:
        return self.encode_events(item)

    def notify(self, events: typing.Sequence[event_model.Event]) -> None:
        for prepared in self.encode(events):
            self.send(prepared)


class MessagingAction(_MessagingTarget, base.AlarmAction):
    """Publish the event that moved an alarm, as a sink would publish it.

    What Aodh's event alarms consume, so a ``messaging://`` action passes
    the triggering event on to the bus's consumers. Recordable, as the
    event notifier.
    """

    def encode(self, item: base.AlarmNotification
               ) -> list[recordable.Prepared]:
        try:
            event = item.event()
        except ValueError as exc:
            raise exceptions.DeliveryError(
                f'alarm {item.alarm_name}: its reason_data holds no valid '
                f'event to publish ({exc})') from None
        if event is None:
            raise exceptions.DeliveryError(
                f'alarm {item.alarm_name}: its reason_data holds no event '
                f'to publish; messaging:// actions need event alarms')
        return self.encode_events([event])

    def notify(self, notification: base.AlarmNotification) -> None:
        for prepared in self.encode(notification):
            self.send(prepared)


_EVENTS, _NOTIFICATIONS = 'events', 'notifications'


def _message(to: str, priority: str, event_type: str, payload: typing.Any,
             event_id: str, count: int) -> recordable.Prepared:
    message = {'to': to, 'priority': priority, 'event_type': event_type,
               'payload': payload, 'count': count,
               'message_id': str(uuid.uuid4())}
    return recordable.Prepared(
        key=to, event_id=event_id,
        label=f'{count} event(s) as {event_type!r}',
        payload=jsonutils.dump_as_bytes(message), decoded=message)


def notification_payload(event: event_model.Event) -> dict:
    """The flat payload of an event's plain notification.

    The traits by name (times as ISO 8601 strings), plus ``message_id`` and
    ``generated``, which win over traits of the same name.
    """
    payload = {name: (value.isoformat()
                      if isinstance(value, datetime.datetime) else value)
               for name, value in event.trait_dict().items()}
    payload['message_id'] = event.message_id
    payload['generated'] = event.generated.isoformat()
    return payload
