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

"""Tests of the messaging:// notifier over oslo.messaging's fake transport.

A real notification listener on the same in-process transport receives
what the notifier sent. The fake driver polls every 50 ms, so receipt is
awaited with a bounded wait. Stopping a listener that dispatched anything
takes about a second (futurist's idle workers wake once a second), so
tests that only need what was sent, in which order, spy on the transport.
"""

import datetime
import time

import fixtures
import oslo_messaging
from oslo_messaging import conffixture

from doctor_plugin.common import messaging
from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import base as notifier_base
from doctor_plugin.notifiers import messaging as messaging_notifier
from doctor_plugin import signing
from doctor_plugin.tests import base
from doctor_plugin.tests import notifications

WAIT = 2.0
GENERATED = datetime.datetime(2024, 5, 1, 12, 0, 0, 250000)
SINCE = datetime.datetime(2024, 5, 1, 11, 59, 59, 900000)


def make_events():
    down = event_model.Event.create(
        'compute.host.down',
        [event_model.Trait.of('host', event_model.TraitType.TEXT,
                              'compute-1'),
         event_model.Trait.of('status', event_model.TraitType.TEXT, 'down'),
         event_model.Trait.of('missed_beats', event_model.TraitType.INT, 3),
         event_model.Trait.of('load', event_model.TraitType.FLOAT, 0.5),
         event_model.Trait.of('since', event_model.TraitType.DATETIME,
                              SINCE)],
        raw={'hostname': 'compute-1'}, generated=GENERATED)
    other = event_model.Event.create(
        'compute.instance.down', {'instance_id': 'vm-1', 'host': 'compute-1'},
        generated=GENERATED)
    return [down, other]


class AodhEventAlarmEndpoint:
    """What Aodh's event alarm listener does with a batch: read payloads."""

    def __init__(self):
        self.events = []

    def sample(self, notifications):
        for notification in notifications:
            self.events.extend(notification['payload'])


class MessagingTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(conffixture.ConfFixture(self.conf,
                                                transport_url='fake:/'))
        self.addCleanup(messaging.cleanup)

    def listen(self, topics, endpoint=None, **kwargs):
        endpoint = endpoint or notifications.NotificationRecorder()
        listener = messaging.get_listener(messaging.get_transport(self.conf),
                                          topics, [endpoint], **kwargs)
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        return endpoint

    def spy_sends(self):
        transport = messaging.get_transport(self.conf)
        return self.useFixture(fixtures.MockPatchObject(
            transport, '_send_notification',
            wraps=transport._send_notification))


class TestEventPublisherFormat(MessagingTestCase):
    """Output 1: what Ceilometer's notifier://?topic=alarm.all sends."""

    def test_one_sample_notification_per_batch(self):
        recorder = self.listen(['alarm.all'])
        events = make_events()
        notifier = messaging_notifier.MessagingNotifier(
            self.conf, 'messaging://?notification_topic=')

        notifier.notify(events)

        received = recorder.wait_for(1)
        self.assertEqual(1, len(received))
        message = received[0]
        self.assertEqual('sample', message['priority'])
        self.assertEqual('event', message['event_type'])
        self.assertEqual('doctor_plugin', message['publisher_id'])
        payload = message['payload']
        self.assertEqual(2, len(payload))
        first = payload[0]
        self.assertEqual(
            {'message_id', 'event_type', 'generated', 'traits', 'raw',
             'message_signature'}, set(first))
        self.assertEqual(events[0].message_id, first['message_id'])
        self.assertEqual('compute.host.down', first['event_type'])
        self.assertEqual('2024-05-01T12:00:00.250000', first['generated'])
        self.assertEqual(
            [['host', 1, 'compute-1'], ['status', 1, 'down'],
             ['missed_beats', 2, 3], ['load', 3, 0.5],
             ['since', 4, '2024-05-01T11:59:59.900000']],
            first['traits'])
        self.assertEqual({'hostname': 'compute-1'}, first['raw'])
        self.assertEqual('', first['message_signature'])
        self.assertEqual(events,
                         [event_model.Event.deserialize(m) for m in payload])

    def test_messages_are_signed_with_the_telemetry_secret(self):
        self.set_opts('notifier', telemetry_secret='s3cret')
        recorder = self.listen(['alarm.all'])
        notifier = messaging_notifier.MessagingNotifier(
            self.conf, 'messaging://?notification_topic=')

        notifier.notify(make_events())

        payload = recorder.wait_for(1)[0]['payload']
        for message in payload:
            self.assertNotEqual('', message['message_signature'])
            self.assertTrue(signing.verify_signature(message, 's3cret'))
            self.assertFalse(signing.verify_signature(message, 'other'))
        tampered = dict(payload[0], event_type='compute.host.up')
        self.assertFalse(signing.verify_signature(tampered, 's3cret'))

    def test_aodh_style_batch_listener_gets_the_events(self):
        aodh = AodhEventAlarmEndpoint()
        self.listen(['alarm.all'], aodh, batch_size=10, batch_timeout=0.05)
        events = make_events()
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        notifier.notify(events)

        deadline = time.monotonic() + WAIT
        while len(aodh.events) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(events, [event_model.Event.deserialize(m)
                                  for m in aodh.events])

    def test_topic_and_publisher_id_from_url(self):
        self.set_opts('notifier', notification_event_types=['*'])
        recorder = self.listen(['doctor.alarms', 'doctor.events'])
        notifier = messaging_notifier.MessagingNotifier(
            self.conf, 'messaging://?topic=doctor.alarms'
                       '&notification_topic=doctor.events'
                       '&publisher_id=doctor.inspector')

        notifier.notify(make_events())

        received = recorder.wait_for(3)
        self.assertEqual(3, len(received))
        self.assertEqual({'doctor.inspector'},
                         {m['publisher_id'] for m in received})
        self.assertEqual(['event'], [m['event_type'] for m in received
                                     if m['priority'] == 'sample'])

    def test_topics_and_publisher_id_from_options(self):
        self.set_opts('notifier', event_topic='cfg.alarms',
                      notification_topic='cfg.events', publisher_id='cfg')
        spy = self.spy_sends()
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        notifier.notify(make_events()[:1])

        topics = [c.args[0].topic for c in spy.mock.call_args_list]
        self.assertEqual(['cfg.alarms.sample', 'cfg.events.info'], topics)
        self.assertEqual({'cfg'}, {c.args[2]['publisher_id']
                                   for c in spy.mock.call_args_list})


class TestPlainNotifications(MessagingTestCase):
    """Output 2: one ordinary notification per event."""

    def test_one_info_notification_per_event(self):
        self.set_opts('notifier', notification_event_types=['*'])
        recorder = self.listen(['notifications'])
        events = make_events()
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        notifier.notify(events)

        received = recorder.wait_for(2)
        self.assertEqual(2, len(received))
        self.assertEqual(['info', 'info'],
                         [m['priority'] for m in received])
        self.assertEqual(['compute.host.down', 'compute.instance.down'],
                         [m['event_type'] for m in received])
        self.assertEqual(
            {'host': 'compute-1', 'status': 'down', 'missed_beats': 3,
             'load': 0.5, 'since': '2024-05-01T11:59:59.900000',
             'message_id': events[0].message_id,
             'generated': '2024-05-01T12:00:00.250000'},
            received[0]['payload'])
        self.assertEqual(events[1].message_id,
                         received[1]['payload']['message_id'])

    def test_by_default_only_host_events_are_notified(self):
        recorder = self.listen(['notifications'])
        events = make_events() + [event_model.Event.create(
            'compute.instance.update', {'state': 'error'},
            generated=GENERATED)]
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        notifier.notify(events)

        self.assertEqual(['compute.host.down'],
                         [m['event_type'] for m in recorder.wait_for(1)])
        self.assertEqual(1, len(recorder.wait_for(2, timeout=0.3)))

    def test_event_fields_win_over_traits_of_the_same_name(self):
        event = event_model.Event.create(
            'compute.host.down', {'message_id': 'spoofed'},
            generated=GENERATED)

        payload = messaging_notifier.notification_payload(event)

        self.assertEqual(event.message_id, payload['message_id'])

    def test_empty_notification_topic_turns_them_off(self):
        spy = self.spy_sends()
        notifier = messaging_notifier.MessagingNotifier(
            self.conf, 'messaging://?notification_topic=')

        notifier.notify(make_events())

        self.assertIsNone(notifier.notification_sender)
        self.assertEqual(['alarm.all.sample'],
                         [c.args[0].topic for c in spy.mock.call_args_list])

    def test_empty_notification_topic_option_turns_them_off(self):
        self.set_opts('notifier', notification_topic='')
        spy = self.spy_sends()
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        notifier.notify(make_events())

        self.assertEqual(['alarm.all.sample'],
                         [c.args[0].topic for c in spy.mock.call_args_list])


class TestDelivery(MessagingTestCase):

    def test_alarm_batch_is_sent_before_the_notifications(self):
        self.set_opts('notifier', notification_event_types=['compute.*'])
        spy = self.spy_sends()
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        notifier.notify(make_events())

        self.assertEqual(
            ['alarm.all.sample', 'notifications.info', 'notifications.info'],
            [c.args[0].topic for c in spy.mock.call_args_list])
        self.assertEqual(['SAMPLE', 'INFO', 'INFO'],
                         [c.args[2]['priority']
                          for c in spy.mock.call_args_list])
        self.assertEqual({2.0}, {c.kwargs['version']
                                 for c in spy.mock.call_args_list})

    def test_alarm_action_sends_the_alarm_event_as_a_sink_would(self):
        self.set_opts('notifier', notification_event_types=['*'])
        spy = self.spy_sends()
        events = make_events()[:1]
        action = messaging_notifier.MessagingAction(self.conf,
                                                    'messaging://')
        alarm = notifier_base.AlarmNotification(
            'id', 'name', 'critical', 'ok', 'alarm', 'reason',
            {'type': 'event', 'event': events[0].serialize()})

        action.notify(alarm)

        messages = [c.args[2] for c in spy.mock.call_args_list]
        self.assertEqual(['event', events[0].event_type],
                         [m['event_type'] for m in messages])
        self.assertEqual(events, [event_model.Event.deserialize(m)
                                  for m in messages[0]['payload']])

    def test_retry_option_is_passed_to_the_transport(self):
        self.set_opts('notifier', messaging_retry=0)
        spy = self.spy_sends()
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        notifier.notify(make_events()[:1])

        self.assertEqual({0}, {c.kwargs['retry']
                               for c in spy.mock.call_args_list})

    def test_shares_the_process_transport_and_keeps_its_senders(self):
        first = messaging_notifier.MessagingNotifier(self.conf,
                                                     'messaging://')
        second = messaging_notifier.MessagingNotifier(
            self.conf, 'messaging://?topic=other')
        senders = (first.event_sender, first.notification_sender)

        first.notify(make_events())
        first.notify(make_events())

        self.assertEqual(senders,
                         (first.event_sender, first.notification_sender))
        self.assertIs(first.event_sender._transport,
                      second.event_sender._transport)
        self.assertIs(messaging.get_transport(self.conf),
                      first.event_sender._transport)

    def test_delivery_failure_is_a_delivery_error(self):
        transport = messaging.get_transport(self.conf)
        failure = oslo_messaging.MessageDeliveryFailure(
            'Unable to connect to AMQP server on broker:5672 after 2 '
            'tries')
        send = self.useFixture(fixtures.MockPatchObject(
            transport._driver, 'send_notification', side_effect=failure))
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                make_events())

        self.assertIs(failure, exc.__cause__)
        message = str(exc)
        self.assertIn("topic 'alarm.all'", message)
        self.assertIn('2 event(s)', message)
        self.assertIn('Unable to connect to AMQP server', message)
        self.assertIn('broker', message)
        self.assertIn('transport_url', message)
        # The notifications are not attempted once the alarm path failed.
        self.assertEqual(1, send.mock.call_count)

    def test_notification_failure_names_its_topic(self):
        transport = messaging.get_transport(self.conf)
        real_send = transport._driver.send_notification

        def fail_on_info(target, *args, **kwargs):
            if target.topic.endswith('.info'):
                raise oslo_messaging.MessageDeliveryFailure('channel closed')
            return real_send(target, *args, **kwargs)

        self.useFixture(fixtures.MockPatchObject(
            transport._driver, 'send_notification',
            side_effect=fail_on_info))
        notifier = messaging_notifier.MessagingNotifier(self.conf,
                                                        'messaging://')

        exc = self.assertRaises(exceptions.DeliveryError, notifier.notify,
                                make_events())

        self.assertIn("topic 'notifications'", str(exc))
        self.assertIn("'compute.host.down'", str(exc))


class TestConfiguration(MessagingTestCase):

    def test_load_through_entry_point(self):
        notifier = plugins.load_notifier(self.conf,
                                         'messaging://?topic=alarm.all')
        self.assertIsInstance(notifier, messaging_notifier.MessagingNotifier)
        self.assertEqual('alarm.all', notifier.event_sender.topic)
        self.assertEqual('notifications', notifier.notification_sender.topic)

    def test_host_in_url_is_refused_without_showing_the_password(self):
        exc = self.assertRaises(
            exceptions.ConfigurationError, plugins.load_notifier, self.conf,
            'messaging://guest:hunter2@broker:5672/?topic=alarm.all')
        self.assertIn('transport_url', str(exc))
        self.assertIn('broker', str(exc))
        self.assertNotIn('hunter2', str(exc))

    def test_unknown_parameter(self):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                messaging_notifier.MessagingNotifier,
                                self.conf, 'messaging://?topics=alarm.all')
        self.assertIn('topics', str(exc))
        self.assertIn('topic, notification_topic, publisher_id', str(exc))

    def test_empty_event_topic(self):
        self.assertRaises(exceptions.ConfigurationError,
                          messaging_notifier.MessagingNotifier,
                          self.conf, 'messaging://?topic=')

    def test_invalid_transport_url_does_not_show_the_password(self):
        self.conf.set_override('transport_url', '//guest:hunter2@broker/')
        self.addCleanup(self.conf.clear_override, 'transport_url')

        exc = self.assertRaises(exceptions.ConfigurationError,
                                messaging_notifier.MessagingNotifier,
                                self.conf, 'messaging://')

        self.assertIn('transport_url', str(exc))
        self.assertNotIn('hunter2', str(exc))
