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

"""Tests for doctor_plugin.listener.service."""

import os

import fixtures

from doctor_plugin.alarms import definitions
from doctor_plugin.alarms import evaluator
from doctor_plugin.common import messaging
from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.listener import service as listener
from doctor_plugin.testing import consumer
from doctor_plugin.tests import base


def host_down(project_id='tenant-a'):
    return event_model.Event.create(
        'compute.host.down', {'host': 'compute-1', 'project_id': project_id,
                              'monitor_event_id': 'fault-1'})


class ListenerTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group='notifier', webhook_max_retries=0)
        self.receiver = consumer.ConsumerServer().start()
        self.addCleanup(self.receiver.stop)

    def make_evaluator(self):
        ev = evaluator.EventAlarmEvaluator(
            self.conf, definitions.parse({'alarms': [{
                'name': 'host-down-a', 'project_id': 'tenant-a',
                'repeat_actions': True,
                'event_rule': {'event_type': 'compute.host.down'},
                'alarm_actions': [f'{self.receiver.url}/a']}]}),
            timeline=self.timeline)
        self.addCleanup(ev.close)
        return ev

    def received_ids(self, count):
        # Actions run in parallel: their arrival order is not defined.
        return sorted(a.body['reason_data']['event']['message_id']
                      for a in self.receiver.wait_for(count, timeout=2))


class TestEventEndpoint(ListenerTestCase):

    def setUp(self):
        super().setUp()
        self.endpoint = listener.EventEndpoint(self.make_evaluator())

    def sample(self, payload):
        self.endpoint.sample({}, 'ceilometer.notification', 'event',
                             payload, {'message_id': 'msg-1'})

    def test_filter_takes_only_event_notifications(self):
        rule = listener.EventEndpoint.filter_rule
        self.assertTrue(rule.match({}, 'ceilometer', 'event', {}, {}))
        self.assertFalse(rule.match({}, 'doctor', 'compute.host.down', {},
                                    {}))
        self.assertFalse(rule.match({}, 'ceilometer', 'events', {}, {}))

    def test_evaluates_every_event_of_the_payload(self):
        first, second = host_down(), host_down()
        self.sample([first.serialize(), second.serialize()])
        self.assertEqual(sorted([first.message_id, second.message_id]),
                         self.received_ids(2))

    def test_single_event_payload(self):
        ev = host_down()
        self.sample(ev.serialize())
        self.assertEqual([ev.message_id], self.received_ids(1))

    def test_malformed_events_are_dropped_good_ones_evaluated(self):
        logger = self.useFixture(fixtures.FakeLogger(
            name='doctor_plugin.delivery.rejects'))
        first, last = host_down(), host_down()
        no_type = host_down().serialize()
        del no_type['event_type']
        bad_time = dict(host_down().serialize(), generated='yesterday')
        bad_trait = dict(host_down().serialize(), traits=[['host', 1]])
        self.sample([first.serialize(), 'not an event', no_type, bad_time,
                     bad_trait, None, last.serialize()])
        self.assertEqual(sorted([first.message_id, last.message_id]),
                         self.received_ids(2))
        drops = [line for line in logger.output.splitlines()
                 if line.startswith('Rejected malformed')]
        self.assertEqual(5, len(drops), logger.output)
        self.assertIn('msg-1 from ceilometer.notification (1 rejected so '
                      'far)', drops[0])
        self.assertIn("'event_type'", drops[1])
        self.assertIn("'generated'", drops[2])
        # Each kept once, for the operator.
        kept = self.endpoint.evaluator.outbox.store.rejected()
        self.assertEqual(5, len(kept))
        self.assertEqual({'alarm-listener'}, {r['source'] for r in kept})

    def test_only_malformed_events(self):
        self.sample([{'event_type': 'compute.host.down'}])
        self.assertEqual([], self.receiver.wait_for(1, timeout=0.2))


class TestAlarmListener(ListenerTestCase):

    def setUp(self):
        super().setUp()
        # The notifier and the listener share the process's transport for
        # this URL, as in one service: the fake driver's queues live in it.
        self.set_opts(transport_url=messaging.FAKE_TRANSPORT_URL)
        messaging.cleanup()
        self.addCleanup(messaging.cleanup)

    def test_events_from_the_bus_fire_alarms(self):
        alarm_listener = listener.AlarmListener(self.conf,
                                                self.make_evaluator())
        alarm_listener.start()
        self.addCleanup(alarm_listener.stop)
        notifier = plugins.load_notifier(
            self.conf, 'messaging://?topic=alarm.all&notification_topic=')
        mine, other = host_down(), host_down(project_id='tenant-b')

        notifier.notify([other, mine])

        self.assertEqual([mine.message_id], self.received_ids(1))
        self.assertIn('T07', self.timeline.marks('fault-1'))

    def test_from_conf(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'alarms.yaml')
        with open(path, 'w') as f:
            f.write('alarms:\n'
                    '  - name: host-down\n'
                    '    event_rule: {event_type: compute.host.down}\n')
        self.set_opts(group='alarms', definitions_file=path)
        alarm_listener = listener.AlarmListener.from_conf(self.conf)
        self.addCleanup(alarm_listener.evaluator.close)
        self.assertEqual(['host-down'],
                         [a.name for a in alarm_listener.evaluator.alarms])

    def test_from_conf_missing_file(self):
        self.set_opts(group='alarms',
                      definitions_file='no-such-alarms-7b1e.yaml')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                listener.AlarmListener.from_conf, self.conf)
        self.assertEqual('no-such-alarms-7b1e.yaml', exc.source)
        self.assertIn('[alarms] definitions_file', exc.problem)


class TestListenerTakeover(ListenerTestCase):
    """A listener resumes the deliveries a dead listener left behind."""

    def setUp(self):
        super().setUp()
        self.set_opts(transport_url=messaging.FAKE_TRANSPORT_URL)
        messaging.cleanup()
        self.addCleanup(messaging.cleanup)
        self.set_opts(group='delivery', retry_initial_interval=0.05,
                      retry_max_interval=0.1, poll_interval=0.1)

    def evaluator_to(self, url):
        ev = evaluator.EventAlarmEvaluator(
            self.conf, definitions.parse({'alarms': [{
                'name': 'host-down-a', 'project_id': 'tenant-a',
                'event_rule': {'event_type': 'compute.host.down'},
                'alarm_actions': [url]}]}),
            timeline=self.timeline)
        self.addCleanup(ev.close)
        return ev

    def test_a_survivor_adopts_a_dead_listeners_deliveries(self):
        port = base.closed_port()
        # The dead listener recorded an alarm its tenant did not take.
        self.set_opts(group='delivery', owner='ctl-dead')
        dead = self.evaluator_to(f'http://127.0.0.1:{port}/a')
        dead.evaluate([host_down()])
        store = dead.outbox.store
        self.assertTrue(base.wait_until(
            lambda: store.pending_by_owner(), 5))
        dead.close()
        (owner,) = store.pending_by_owner()
        self.assertTrue(owner.startswith('ctl-dead:'))
        receiver = consumer.ConsumerServer(port=port).start()
        self.addCleanup(receiver.stop)
        # A listener of the same group, on a real tooz backend.
        backend = self.useFixture(fixtures.TempDir()).path
        self.set_opts(group='coordination', backend_url=f'file://{backend}',
                      heartbeat_interval=0.05)
        self.set_opts(group='delivery', owner='ctl-b')
        survivor = listener.AlarmListener(
            self.conf, self.evaluator_to(f'{self.receiver.url}/a'))
        survivor.start()
        self.addCleanup(survivor.stop)
        self.assertEqual(1, len(receiver.wait_for(1, timeout=5)))
        self.assertTrue(base.wait_until(
            lambda: not survivor.evaluator.outbox.store.pending_by_owner(),
            5))
        self.assertIn(owner, survivor.takeover.adopted)

    def test_without_coordination_no_group_is_joined(self):
        alarm_listener = listener.AlarmListener(self.conf,
                                                self.make_evaluator())
        self.assertIsNone(alarm_listener.membership)
