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

"""Tests for doctor_plugin.inspector.engine."""

import datetime
import os
import threading

import fixtures

from doctor_plugin.common import activity
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import engine
from doctor_plugin import pipeline
from doctor_plugin.testing import consumer
from doctor_plugin.tests import base
from doctor_plugin.tests import notifications
from doctor_plugin.topology import hosts as topology

Instance = topology.Instance
TEXT = event_model.TraitType.TEXT
INT = event_model.TraitType.INT


closed_port = base.closed_port


def host_event(event_type='compute.host.down', host='compute-1',
               message_id=None, **traits):
    traits = dict({'host': host, 'monitor_event_id': 'fault-1'}, **traits)
    if host is None:
        del traits['host']
    return event_model.Event.create(event_type, traits,
                                    message_id=message_id)


def make_pipeline(conf, urls=('log://',)):
    return pipeline.Pipeline(conf, pipeline.PipelineDefinition.from_dict({
        'sources': [{'name': 'all', 'events': ['*'], 'sinks': ['out']}],
        'sinks': [{'name': 'out', 'notifiers': list(urls)}]}))


class TestRecentIds(base.TestCase):

    def test_remembers_up_to_size(self):
        recent = engine.RecentIds(2)
        for key in ('a', 'b', 'c'):
            recent.add(key)
        self.assertNotIn('a', recent)
        self.assertIn('b', recent)
        self.assertIn('c', recent)

    def test_readding_refreshes(self):
        recent = engine.RecentIds(2)
        recent.add('a')
        recent.add('b')
        recent.add('a')
        recent.add('c')
        self.assertIn('a', recent)
        self.assertNotIn('b', recent)

    def test_size_zero_remembers_nothing(self):
        recent = engine.RecentIds(0)
        recent.add('a')
        self.assertNotIn('a', recent)


class InspectorTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        # Per-instance events and host correlation have tests of their own;
        # here each test sees only what it is about.
        self.set_opts(group='inspector', instance_events=False)
        self.set_opts(group='inspector', host_report_window=0.0)
        self.topology = topology.HostTopology([
            Instance('vm-1', 'tenant-a', 'compute-1'),
            Instance('vm-2', 'tenant-b', 'compute-1'),
            Instance('vm-3', 'tenant-a', 'compute-1'),
            Instance('vm-4', 'tenant-c', 'compute-2'),
        ])

    def make_inspector(self, urls=('log://',), record=True):
        pipe = make_pipeline(self.conf, urls)
        self.addCleanup(pipe.close)
        self.recorder = notifications.BatchRecorder()
        if record:
            pipe.notifiers['log://'] = self.recorder
        inspector = engine.Inspector(self.conf, pipe, self.topology,
                                     self.timeline)
        self.addCleanup(inspector.close)
        return inspector


class TestFanOut(InspectorTestCase):

    def test_one_event_per_tenant(self):
        inspector = self.make_inspector()
        ev = host_event(severity='critical')

        published = inspector.process([ev])

        self.assertEqual([published], self.recorder.batches)
        self.assertIs(ev, published[0])
        tenants = published[1:]
        self.assertEqual(['tenant-a', 'tenant-b'],
                         [e.trait('project_id') for e in tenants])
        self.assertEqual(['vm-1,vm-3', 'vm-2'],
                         [e.trait('instance_ids') for e in tenants])
        self.assertEqual([2, 1], [e.trait('instance_count') for e in tenants])
        for tenant_event in tenants:
            self.assertEqual('compute.host.down', tenant_event.event_type)
            self.assertEqual(ev.generated, tenant_event.generated)
            self.assertEqual('compute-1', tenant_event.trait('host'))
            self.assertEqual('critical', tenant_event.trait('severity'))
            self.assertEqual('fault-1',
                             tenant_event.trait('monitor_event_id'))
            types = {t.name: t.dtype for t in tenant_event.traits}
            self.assertEqual(TEXT, types['project_id'])
            self.assertEqual(TEXT, types['instance_ids'])
            self.assertEqual(INT, types['instance_count'])
            self.assertEqual({}, tenant_event.raw)

    def test_message_ids_are_deterministic_and_distinct(self):
        ev = host_event()
        first = self.make_inspector().fan_out(ev)
        again = self.make_inspector().fan_out(ev)
        ids = [e.message_id for e in first]
        self.assertEqual(ids, [e.message_id for e in again])
        self.assertEqual(2, len(set(ids)))
        self.assertNotIn(ev.message_id, ids)
        other = self.make_inspector().fan_out(host_event())
        self.assertEqual(set(), set(ids) & {e.message_id for e in other})

    def test_host_traits_of_the_same_name_are_replaced(self):
        ev = host_event(project_id='admin', instance_ids='stale',
                        instance_count=99)
        (tenant_a, tenant_b) = self.make_inspector().fan_out(ev)
        names = [t.name for t in tenant_a.traits]
        self.assertEqual(1, names.count('project_id'))
        self.assertEqual(1, names.count('instance_count'))
        self.assertEqual('tenant-a', tenant_a.trait('project_id'))
        self.assertEqual(2, tenant_a.trait('instance_count'))
        self.assertEqual('vm-2', tenant_b.trait('instance_ids'))

    def test_every_host_event_type_fans_out(self):
        inspector = self.make_inspector()
        for event_type in sorted(engine.HOST_EVENT_TYPES):
            published = inspector.process([host_event(event_type)])
            self.assertEqual(3, len(published), event_type)
            self.assertEqual({event_type},
                             {e.event_type for e in published})

    def test_host_without_instances(self):
        inspector = self.make_inspector()
        ev = host_event(host='compute-9')
        self.assertEqual([ev], inspector.process([ev]))
        self.assertEqual([[ev]], self.recorder.batches)

    def test_host_event_without_host_trait(self):
        inspector = self.make_inspector()
        ev = host_event(host=None)
        self.assertEqual([ev], inspector.process([ev]))

    def test_other_event_types_are_not_fanned_out(self):
        inspector = self.make_inspector()
        ev = host_event('compute.instance.update')
        self.assertEqual([ev], inspector.process([ev]))

    def test_batch_keeps_order(self):
        inspector = self.make_inspector()
        down1 = host_event(host='compute-1')
        update = host_event('compute.instance.update')
        down2 = host_event(host='compute-2')
        published = inspector.process([down1, update, down2])
        self.assertEqual(6, len(published))
        self.assertIs(down1, published[0])
        self.assertEqual(['tenant-a', 'tenant-b'],
                         [e.trait('project_id') for e in published[1:3]])
        self.assertIs(update, published[3])
        self.assertIs(down2, published[4])
        self.assertEqual('tenant-c', published[5].trait('project_id'))


class TestDeduplication(InspectorTestCase):

    def test_repeated_message_id_is_published_once(self):
        inspector = self.make_inspector()
        ev = host_event(message_id='detection-1')
        repeat = host_event(message_id='detection-1')
        self.assertEqual(3, len(inspector.process([ev])))
        self.assertEqual([], inspector.process([repeat]))
        self.assertEqual(1, len(self.recorder.batches))

    def test_new_events_of_a_batch_still_go_out(self):
        inspector = self.make_inspector()
        old = host_event(message_id='detection-1')
        inspector.process([old])
        new = host_event('compute.instance.update')
        self.assertEqual([new], inspector.process([old, new]))
        self.assertEqual([new], self.recorder.batches[-1])

    def test_repeat_within_one_batch_is_published_once(self):
        inspector = self.make_inspector()
        ev = host_event(message_id='detection-1')
        repeat = host_event(message_id='detection-1')
        published = inspector.process([ev, repeat])
        self.assertEqual(3, len(published))
        self.assertEqual(1, [e.message_id for e in published].count(
            'detection-1'))

    def test_disabled_with_zero_cache(self):
        self.set_opts(group='inspector', dedup_cache_size=0)
        inspector = self.make_inspector()
        ev = host_event()
        inspector.process([ev])
        self.assertEqual(3, len(inspector.process([ev])))
        self.assertEqual(2, len(self.recorder.batches))


class TestDeliveryFailure(InspectorTestCase):

    def test_failure_raises_and_the_retry_goes_through(self):
        # Without the outbox; with it the delivery is retried instead
        # (tests/unit/delivery).
        self.set_opts(group='delivery', durable=False)
        self.set_opts(group='notifier', webhook_max_retries=0)
        port = closed_port()
        url = f'http://doctor:s3cret@127.0.0.1:{port}/alarm'
        inspector = self.make_inspector(urls=[url], record=False)
        ev = host_event(host='compute-2')

        exc = self.assertRaises(exceptions.DeliveryError,
                                inspector.process, [ev])
        self.assertIn(f'doctor:***@127.0.0.1:{port}', str(exc))
        self.assertNotIn('s3cret', str(exc))
        self.assertNotIn('T05', self.timeline.marks('fault-1'))

        receiver = consumer.ConsumerServer(port=port).start()
        self.addCleanup(receiver.stop)
        published = inspector.process([ev])

        self.assertEqual(2, len(published))
        received = receiver.wait_for(2, timeout=2)
        self.assertEqual(
            [e.message_id for e in published],
            [a.body['reason_data']['event']['message_id'] for a in received])
        self.assertIn('T05', self.timeline.marks('fault-1'))
        # Delivered now, so remembered.
        self.assertEqual([], inspector.process([ev]))


class TestTimeline(InspectorTestCase):

    def test_marks_transformed_affected_and_notified(self):
        inspector = self.make_inspector()
        inspector.process([host_event()])
        marks = self.timeline.marks('fault-1')
        self.assertEqual(['T02', 'T05', 'T06'], sorted(marks))
        self.assertLessEqual(marks['T06'], marks['T02'])
        self.assertLessEqual(marks['T02'], marks['T05'])

    def test_non_host_event_is_not_marked_affected(self):
        inspector = self.make_inspector()
        inspector.process([host_event('compute.instance.update')])
        self.assertEqual(['T05', 'T06'],
                         sorted(self.timeline.marks('fault-1')))


class TestTopologySource(base.TestCase):

    def test_topology_file_is_loaded(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'topology.yaml')
        with open(path, 'w') as f:
            f.write('hosts:\n  compute-5:\n'
                    '    - {id: vm-5, project_id: tenant-e}\n')
        self.set_opts(group='inspector', topology_file=path)
        pipe = make_pipeline(self.conf)
        self.addCleanup(pipe.close)
        inspector = engine.Inspector(self.conf, pipe, timeline=self.timeline)
        tenant_event, instance_event = inspector.fan_out(
            host_event(host='compute-5'))
        self.assertEqual('tenant-e', tenant_event.trait('project_id'))
        self.assertEqual('vm-5', instance_event.trait('instance_id'))

    def test_no_topology_file_means_no_fan_out(self):
        pipe = make_pipeline(self.conf)
        self.addCleanup(pipe.close)
        inspector = engine.Inspector(self.conf, pipe, timeline=self.timeline)
        self.assertEqual(0, len(inspector.topology))
        self.assertEqual([], inspector.fan_out(host_event()))


class TestInstanceEvents(InspectorTestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group='inspector', instance_events=True)

    def test_one_error_event_per_instance_on_failure(self):
        inspector = self.make_inspector()
        ev = host_event(severity='critical')
        published = inspector.process([ev])
        # The tenants' events first, the instances' in a batch of their
        # own after them.
        (tenants, updates) = self.recorder.batches
        self.assertEqual(published, tenants + updates)
        self.assertEqual(['compute.host.down'] * 3,
                         [e.event_type for e in tenants])
        self.assertEqual({'compute.instance.update'},
                         {e.event_type for e in updates})
        self.assertEqual(['vm-1', 'vm-2', 'vm-3'],
                         [e.trait('instance_id') for e in updates])
        for update in updates:
            self.assertEqual('error', update.trait('state'))
            self.assertEqual('compute-1', update.trait('host'))
            self.assertEqual('fault-1', update.trait('monitor_event_id'))
            self.assertEqual('critical', update.trait('severity'))
            self.assertEqual(update.trait('tenant_id'),
                             update.trait('project_id'))
        self.assertEqual(['tenant-a', 'tenant-b', 'tenant-a'],
                         [e.trait('tenant_id') for e in updates])
        # Stable ids: a retried report yields the same events.
        again = engine.Inspector(self.conf, inspector.pipeline,
                                 self.topology, self.timeline)
        self.assertEqual([e.message_id for e in updates],
                         [e.message_id for e in again.fan_out(ev)
                          if e.event_type == 'compute.instance.update'])

    def test_no_instance_events_on_recovery(self):
        inspector = self.make_inspector()
        published = inspector.process([host_event('compute.host.up')])
        self.assertNotIn('compute.instance.update',
                         {e.event_type for e in published})

    def test_option_turns_them_off(self):
        self.set_opts(group='inspector', instance_events=False)
        inspector = self.make_inspector()
        published = inspector.process([host_event()])
        self.assertEqual(3, len(published))


class RecordingController:
    def __init__(self, recorder):
        self.recorder = recorder
        self.calls = []

    def handle(self, host_event, instances, verify=False):
        # What the consumers were sent before the controller was called.
        self.calls.append((host_event.event_type, [i.id for i in instances],
                           len(self.recorder.batches)))


class TestController(InspectorTestCase):

    def test_controller_runs_after_publication(self):
        inspector = self.make_inspector()
        controller = RecordingController(self.recorder)
        inspector.controller = controller
        inspector.process([host_event()])
        self.assertEqual([('compute.host.down', ['vm-1', 'vm-2', 'vm-3'], 1)],
                         controller.calls)

    def test_controller_not_called_when_publication_fails(self):
        inspector = self.make_inspector(record=False)
        inspector.pipeline.notifiers['log://'] = FailingNotifier()
        controller = RecordingController(self.recorder)
        inspector.controller = controller
        self.assertRaises(exceptions.DeliveryError, inspector.process,
                          [host_event()])
        self.assertEqual([], controller.calls)


class FailingNotifier:
    def notify(self, events, alarm=None):
        raise exceptions.DeliveryError('broker down')

    def close(self):
        pass


class TestHostCorrelation(InspectorTestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group='inspector', host_report_window=60.0)

    def test_second_monitor_reporting_same_failure_is_dropped(self):
        inspector = self.make_inspector()
        inspector.process([host_event(monitor_event_id='m1')])
        self.assertEqual([], inspector.process(
            [host_event(monitor_event_id='nova-1', monitor='nova')]))
        self.assertEqual(1, len(self.recorder.batches))

    def test_down_then_up_emits_the_recovery(self):
        inspector = self.make_inspector()
        inspector.process([host_event(monitor_event_id='m1')])
        published = inspector.process(
            [host_event('compute.host.up', monitor_event_id='m2')])
        self.assertEqual('compute.host.up', published[0].event_type)
        self.assertEqual({'tenant-a', 'tenant-b'},
                         {e.trait('project_id') for e in published[1:]})

    def test_late_echo_of_the_failure_does_not_undo_the_recovery(self):
        # Nova's service.update for the forced-down service, observed
        # before the monitor saw the host up, delivered after it.
        t = datetime.datetime(2026, 11, 25, 10, 0, 0)
        second = datetime.timedelta(seconds=1)
        inspector = self.make_inspector()
        controller = RecordingController(self.recorder)
        inspector.controller = controller
        inspector.process([host_event(monitor_event_id='m1', time=t)])
        inspector.process([host_event('compute.host.up',
                                      monitor_event_id='m2',
                                      time=t + 2 * second)])
        self.assertEqual([], inspector.process([host_event(
            monitor_event_id='nova-1', monitor='nova', time=t + second)]))
        self.assertEqual('up', inspector.hosts.state('compute-1'))
        self.assertEqual(['compute.host.down', 'compute.host.up'],
                         [call[0] for call in controller.calls])

    def test_failed_publication_is_not_taken_for_a_repeat(self):
        inspector = self.make_inspector(record=False)
        inspector.pipeline.notifiers['log://'] = FailingNotifier()
        self.assertRaises(exceptions.DeliveryError, inspector.process,
                          [host_event(monitor_event_id='m1')])
        inspector.pipeline.notifiers['log://'] = self.recorder
        self.assertEqual(3, len(inspector.process(
            [host_event(monitor_event_id='m1-retry')])))


class TestActivity(InspectorTestCase):

    def test_busy_while_publishing_idle_after(self):
        inspector = self.make_inspector()
        seen = []

        class Probe(notifications.BatchRecorder):
            def notify(self, events, alarm=None):
                seen.append(inspector.activity.wait_idle(0))

        inspector.pipeline.notifiers['log://'] = Probe()
        inspector.process([host_event(monitor_event_id='m1')])
        self.assertEqual([False], seen)
        self.assertTrue(inspector.activity.wait_idle(0))

    def test_wait_idle_returns_when_the_work_ends(self):
        work = activity.Activity()
        done = []
        with work:
            waiter = threading.Thread(
                target=lambda: done.append(work.wait_idle(5)))
            waiter.start()
            waiter.join(0.1)
            self.assertTrue(waiter.is_alive())
        waiter.join(5)
        self.assertEqual([True], done)
