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

"""Tests of the Nova fix-up controller against a real Nova API stand-in."""

import concurrent.futures
import time
import uuid

from doctor_plugin.common import activity
from doctor_plugin.controller import fixup
from doctor_plugin import event as event_model
from doctor_plugin.nova import client as nova
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.nova import test_client as test_nova
from doctor_plugin.topology import hosts as topology

HOST = 'compute-1'
#: Generous bound for a fix-up that should be quick; tests end sooner.
WAIT = 10.0


def host_event(event_type='compute.host.down', host=HOST, fault_id=None):
    return event_model.Event.create(event_type, {
        'host': host, 'monitor_event_id': fault_id or str(uuid.uuid4())})


class ControllerTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.standin = self.useFixture(
            test_nova.NovaStandInFixture(**self.standin_args())).nova
        self.standin.add_service(HOST)
        self.published = []

    def standin_args(self):
        return {}

    def make_controller(self, token=None, **overrides):
        test_nova.configure(self, self.standin, token, **overrides)
        client = nova.NovaClient(self.conf)
        self.addCleanup(client.close)
        controller = fixup.NovaController(
            self.conf, client, publish=self.published.extend,
            timeline=self.timeline)
        self.addCleanup(controller.close)
        return controller

    def add_instances(self, count, host=HOST):
        instances = [topology.Instance(f'vm-{i}', f'tenant-{i % 3}', host)
                     for i in range(count)]
        for inst in instances:
            self.standin.add_server(inst.id, inst.project_id, inst.host)
        return instances

    def resets(self):
        return self.standin.calls_to('POST', '/v2.1/servers/')


class TestHostDown(ControllerTestCase):

    def test_forces_down_and_sets_every_instance_to_error(self):
        controller = self.make_controller()
        instances = self.add_instances(5)
        ev = host_event(fault_id='fault-1')
        controller.handle(ev, instances)
        result = controller.wait('fault-1', WAIT)
        self.assertEqual('success', result.outcome)
        self.assertEqual(('force_down', 5, 5, 0, 0),
                         (result.action, result.instances_total,
                          result.instances_reset, result.instances_missing,
                          result.instances_failed))
        self.assertTrue(self.standin.service(HOST)['forced_down'])
        for inst in instances:
            self.assertEqual('ERROR', self.standin.server(inst.id)['status'])
        self.assertLessEqual(result.started, result.finished)
        marks = self.timeline.marks('fault-1')
        self.assertLessEqual(result.started, marks['T04'])
        self.assertLessEqual(marks['T03'], result.finished)
        self.assertEqual(ev.message_id, result.event_id)

    def test_a_verified_fix_up_leaves_a_host_already_down_alone(self):
        # Taken over from a member that forced it down and died.
        controller = self.make_controller()
        instances = self.add_instances(2)
        controller.handle(host_event(fault_id='fault-1'), instances)
        controller.wait('fault-1', WAIT)
        controller.handle(host_event(fault_id='fault-2'), instances,
                          verify=True)
        self.assertEqual('success', controller.wait('fault-2',
                                                    WAIT).outcome)
        self.assertEqual(1, self.standin.force_downs()[HOST])

    def test_a_verified_fix_up_still_acts_when_needed(self):
        controller = self.make_controller()
        controller.handle(host_event(fault_id='fault-1'),
                          self.add_instances(1), verify=True)
        self.assertEqual('success', controller.wait('fault-1',
                                                    WAIT).outcome)
        self.assertEqual(1, self.standin.force_downs()[HOST])

    def test_handle_returns_at_once(self):
        controller = self.make_controller()
        instances = self.add_instances(3)
        self.standin.set_latency(0.3)
        start = time.monotonic()
        future = controller.handle(host_event(), instances)
        self.assertLess(time.monotonic() - start, 0.1)
        self.assertFalse(future.done())
        self.assertEqual('success', future.result(WAIT).outcome)

    def test_resets_are_concurrent_but_bounded(self):
        limit, count, latency = 4, 16, 0.1
        controller = self.make_controller(max_parallel_resets=limit)
        instances = self.add_instances(count)
        controller.client.max_microversion()
        self.standin.set_latency(latency)
        controller.handle(host_event(fault_id='f'), instances)
        result = controller.wait('f', WAIT)
        self.assertEqual(count, result.instances_reset)
        calls = test_nova.calls_to(self.standin, 'POST', '/v2.1/servers/',
                                   count)
        # Each reset keeps the stand-in busy `latency` seconds from its
        # arrival: count how many overlapped at worst.
        spans = [(c.at, c.at + latency * 0.9) for c in calls]
        in_flight = max(sum(1 for start, end in spans
                            if start <= at < end) for at, _ in spans)
        self.assertLessEqual(in_flight, limit)
        self.assertGreater(in_flight, 1)
        self.assertLess(result.finished - result.started,
                        count * latency * 0.6)

    def test_a_deleted_instance_counts_as_missing(self):
        controller = self.make_controller()
        instances = self.add_instances(2)
        instances.append(topology.Instance('gone', 'tenant-x', HOST))
        controller.handle(host_event(fault_id='f'), instances)
        result = controller.wait('f', WAIT)
        self.assertEqual('success', result.outcome)
        self.assertEqual((2, 1, 0), (result.instances_reset,
                                     result.instances_missing,
                                     result.instances_failed))
        self.assertIn('T03', self.timeline.marks('f'))

    def test_a_refused_reset_makes_a_partial_result(self):
        controller = self.make_controller()
        instances = self.add_instances(3)
        self.standin.fail_next(1, status=409,
                               path_prefix='/v2.1/servers/vm-1/')
        controller.handle(host_event(fault_id='f'), instances)
        result = controller.wait('f', WAIT)
        self.assertEqual('partial', result.outcome)
        self.assertEqual((2, 1), (result.instances_reset,
                                  result.instances_failed))
        self.assertIn('409', result.error)
        self.assertTrue(self.standin.service(HOST)['forced_down'])
        self.assertNotIn('T03', self.timeline.marks('f'))

    def test_unknown_host_fails_with_its_name(self):
        controller = self.make_controller()
        controller.handle(host_event(host='compute-9', fault_id='f'), [])
        result = controller.wait('f', WAIT)
        self.assertEqual('failed', result.outcome)
        self.assertIn('compute-9', result.error)
        self.assertNotIn('T04', self.timeline.marks('f'))


class TestHostUp(ControllerTestCase):

    def test_unforces_and_leaves_instances_alone(self):
        controller = self.make_controller()
        instances = self.add_instances(2)
        controller.client.force_down(HOST)
        controller.handle(host_event('compute.host.up', fault_id='up'),
                          instances)
        result = controller.wait('up', WAIT)
        self.assertEqual(('unforce', 'success', 0),
                         (result.action, result.outcome,
                          result.instances_total))
        self.assertFalse(self.standin.service(HOST)['forced_down'])
        self.assertEqual([], self.resets())
        self.assertNotIn('T04', self.timeline.marks('up'))

    def test_other_events_need_no_fix_up(self):
        controller = self.make_controller()
        future = controller.handle(host_event('compute.host.disabled'), [])
        self.assertIsNone(future.result(0))
        self.assertEqual([], self.standin.calls_to('PUT', '/'))


class TestNovaOutage(ControllerTestCase):

    def test_fix_up_completes_when_nova_comes_back(self):
        controller = self.make_controller(retries=0)
        instances = self.add_instances(4)
        self.standin.go_down('refuse')
        controller.handle(host_event(fault_id='f'), instances)
        time.sleep(0.4)
        back = time.time()
        self.standin.come_back()
        result = controller.wait('f', WAIT)
        self.assertEqual('success', result.outcome)
        self.assertEqual(4, result.instances_reset)
        self.assertTrue(self.standin.service(HOST)['forced_down'])
        self.assertGreaterEqual(self.timeline.marks('f')['T04'], back)

    def test_fix_up_survives_a_nova_answering_503(self):
        controller = self.make_controller(retries=0)
        instances = self.add_instances(2)
        self.standin.go_down('503')
        controller.handle(host_event(fault_id='f'), instances)
        time.sleep(0.3)
        self.standin.come_back()
        result = controller.wait('f', WAIT)
        self.assertEqual('success', result.outcome)

    def test_gives_up_at_the_deadline(self):
        controller = self.make_controller(retries=0, fixup_deadline=0.3)
        instances = self.add_instances(2)
        self.standin.go_down('refuse')
        start = time.monotonic()
        controller.handle(host_event(fault_id='f'), instances)
        result = controller.wait('f', WAIT)
        self.assertLess(time.monotonic() - start, 3.0)
        self.assertEqual('failed', result.outcome)
        self.assertEqual(2, result.instances_failed)
        self.assertIn('did not answer', result.error)

    def test_close_stops_waiting_for_nova(self):
        controller = self.make_controller(retries=0, fixup_deadline=60)
        self.standin.go_down('refuse')
        future = controller.handle(host_event(fault_id='f'),
                                   self.add_instances(2))
        time.sleep(0.1)
        start = time.monotonic()
        controller.close(timeout=5)
        self.assertLess(time.monotonic() - start, 3.0)
        result = future.result(0)
        self.assertEqual('failed', result.outcome)
        self.assertIn('closed', result.error)


class TestSupersede(ControllerTestCase):

    def test_a_host_back_up_is_not_forced_down_by_a_stale_retry(self):
        controller = self.make_controller(retries=0)
        instances = self.add_instances(2)
        self.standin.go_down('refuse')
        down = controller.handle(host_event(fault_id='down'), instances)
        time.sleep(0.2)
        up = controller.handle(host_event('compute.host.up',
                                          fault_id='up'), instances)
        self.assertEqual('superseded', down.result(WAIT).outcome)
        self.standin.come_back()
        self.assertEqual('success', up.result(WAIT).outcome)
        time.sleep(0.3)  # time enough for a stale retry, if there was one
        self.assertFalse(self.standin.service(HOST)['forced_down'])
        self.assertEqual([], self.standin.calls_to('POST', '/v2.1/servers/'))

    def test_only_the_same_host_is_superseded(self):
        self.standin.add_service('compute-2')
        controller = self.make_controller()
        one = controller.handle(host_event(fault_id='a'), [])
        two = controller.handle(host_event(host='compute-2',
                                           fault_id='b'), [])
        self.assertEqual(['success', 'success'],
                         [f.result(WAIT).outcome for f in (one, two)])


class TestAuthFailure(ControllerTestCase):

    def standin_args(self):
        return {'token': 'r1ght'}

    def test_auth_errors_stop_at_once(self):
        controller = self.make_controller(token='wr0ng', fixup_deadline=60)
        instances = self.add_instances(3)
        start = time.monotonic()
        controller.handle(host_event(fault_id='f'), instances)
        result = controller.wait('f', WAIT)
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertEqual('failed', result.outcome)
        self.assertIn('[nova]', result.error)
        self.assertFalse(self.standin.service(HOST)['forced_down'])
        self.assertLessEqual(len(self.resets()), 3)


class TestResults(ControllerTestCase):

    def test_result_is_published_as_an_event(self):
        controller = self.make_controller()
        instances = self.add_instances(2)
        ev = host_event(fault_id='f')
        controller.handle(ev, instances)
        result = controller.wait('f', WAIT)
        (published,) = self.published
        self.assertEqual('doctor.controller.result', published.event_type)
        traits = published.trait_dict()
        self.assertEqual({
            'host': HOST, 'monitor_event_id': 'f', 'action': 'force_down',
            'outcome': 'success', 'instances_total': 2,
            'instances_reset': 2, 'instances_missing': 0,
            'instances_failed': 0, 'error': '', 'fence_outcome': 'none',
            'fence_error': '', 'fence_attempts': 1},
            {k: v for k, v in traits.items()
             if k not in ('duration_ms', 'fence_ms')})
        self.assertAlmostEqual(result.fence_ms, traits['fence_ms'],
                               places=2)
        self.assertAlmostEqual(result.duration_ms, traits['duration_ms'],
                               places=2)
        types = {t.name: t.dtype for t in published.traits}
        self.assertEqual(event_model.TraitType.INT,
                         types['instances_reset'])
        self.assertEqual(event_model.TraitType.FLOAT, types['duration_ms'])
        self.assertEqual(published.message_id,
                         result.to_event().message_id)

    def test_a_failing_publisher_does_not_lose_the_result(self):
        def publish(events):
            raise RuntimeError('bus down')
        test_nova.configure(self, self.standin)
        client = nova.NovaClient(self.conf)
        self.addCleanup(client.close)
        controller = fixup.NovaController(self.conf, client, publish,
                                          self.timeline)
        self.addCleanup(controller.close)
        controller.handle(host_event(fault_id='f'), [])
        self.assertEqual('success', controller.wait('f', WAIT).outcome)
        self.assertEqual(['f'], [r.monitor_event_id
                                 for r in controller.results])

    def test_wait_times_out(self):
        controller = self.make_controller()
        self.assertRaises(TimeoutError, controller.wait, 'unknown', 0.05)

    def test_results_are_futures_too(self):
        controller = self.make_controller()
        future = controller.handle(host_event(fault_id='f'), [])
        self.assertIsInstance(future, concurrent.futures.Future)
        self.assertIs(controller.wait('f', WAIT), future.result(WAIT))


class TestYieldToNotification(ControllerTestCase):

    def test_nova_calls_wait_while_notification_work_runs(self):
        controller = self.make_controller()
        work = activity.Activity()
        controller.yield_to(work.wait_idle)
        instances = self.add_instances(3)
        with work:
            controller.handle(host_event(fault_id='fault-y'), instances)
            time.sleep(0.2)
            # Not a call went out while the inspector was busy.
            self.assertEqual([], self.standin.calls_to('PUT', '/v2.1/'))
            self.assertEqual([], self.resets())
        result = controller.wait('fault-y', WAIT)
        self.assertEqual('success', result.outcome)
        self.assertEqual(3, result.instances_reset)

    def test_a_busy_inspector_delays_but_never_starves_the_fix_up(self):
        controller = self.make_controller()
        work = activity.Activity()
        controller.yield_to(work.wait_idle)
        instances = self.add_instances(2)
        with work:
            started = time.monotonic()
            controller.handle(host_event(fault_id='fault-s'), instances)
            result = controller.wait('fault-s', WAIT)
        self.assertEqual('success', result.outcome)
        self.assertGreaterEqual(time.monotonic() - started,
                                fixup.MAX_YIELD)
