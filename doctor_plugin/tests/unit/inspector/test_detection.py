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

"""Tests for doctor_plugin.inspector.detection: the suspect/down machine."""

import threading

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import detection
from doctor_plugin.inspector import engine
from doctor_plugin.tests import base
from doctor_plugin.tests import notifications
from doctor_plugin.tests.unit.inspector import test_engine

SUSPECT = detection.HostState.SUSPECT
DOWN = detection.HostState.DOWN
UP = detection.HostState.UP


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def report(status='down', host='compute-1', monitor_id='mon-1',
           event_id=None, monitor='heartbeat', **traits):
    traits = dict({'host': host, 'status': status, 'monitor': monitor,
                   'monitor_id': monitor_id,
                   'monitor_event_id': event_id or f'{monitor_id}-{status}'},
                  **traits)
    traits = {k: v for k, v in traits.items() if v is not None}
    return event_model.Event.create(f'compute.host.{status}', traits)


def nova(status='down', host='compute-1', cause='heartbeat_timeout'):
    return report(status, host, monitor_id=None, monitor='nova',
                  event_id=f'nova-{status}-{cause}', cause=cause)


def isolation(monitor_id, status='isolated'):
    return event_model.Event.create(detection.ISOLATED_EVENT_TYPE, {
        'host': monitor_id, 'status': status, 'monitor': 'heartbeat',
        'monitor_id': monitor_id, 'monitor_event_id': f'iso-{status}'})


class CorroborationTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.set_opts(group='detection', required_reports=2,
                      monitors_per_host=3, corroboration_window=1.0,
                      suspect_timeout=90.0)

    def make(self, power_state=False):
        return detection.Corroboration(self.conf, self.clock,
                                       power_state=power_state)


class TestSingleReport(CorroborationTestCase):

    def test_k_of_one_forwards_every_report_at_once(self):
        self.set_opts(group='detection', required_reports=1)
        machine = self.make()
        ev = report()
        verdict = machine.observe(ev)
        self.assertIs(ev, verdict.forward)
        self.assertEqual((), verdict.publish)
        self.assertEqual(UP, machine.state('compute-1'))

    def test_first_report_makes_the_host_suspect(self):
        machine = self.make()
        verdict = machine.observe(report())
        self.assertIsNone(verdict.forward)
        self.assertEqual(SUSPECT, machine.state('compute-1'))
        [suspect] = verdict.publish
        self.assertEqual('compute.host.suspect', suspect.event_type)
        self.assertEqual({'host': 'compute-1', 'status': 'suspect',
                          'reports': 1, 'required_reports': 2,
                          'monitors_per_host': 3, 'monitor_ids': 'mon-1',
                          'monitor': 'heartbeat', 'monitor_id': 'mon-1',
                          'monitor_event_id': 'mon-1-down'},
                         suspect.trait_dict())

    def test_repeated_report_of_one_monitor_is_one_vote(self):
        machine = self.make()
        machine.observe(report())
        self.clock.advance(0.1)
        verdict = machine.observe(report(event_id='again'))
        self.assertIsNone(verdict.forward)
        self.assertEqual((), verdict.publish)
        self.assertEqual(SUSPECT, machine.state('compute-1'))

    def test_monitor_without_id_votes_by_its_name(self):
        machine = self.make()
        machine.observe(report(monitor_id=None, monitor='monitor_sample'))
        verdict = machine.observe(report(monitor_id=None,
                                         monitor='monitor_sample',
                                         event_id='second'))
        self.assertIsNone(verdict.forward)
        verdict = machine.observe(report(monitor_id=None,
                                         monitor='alertmanager'))
        self.assertIsNotNone(verdict.forward)

    def test_hosts_are_independent(self):
        machine = self.make()
        machine.observe(report(host='compute-1'))
        verdict = machine.observe(report(host='compute-2',
                                         monitor_id='mon-2'))
        self.assertIsNone(verdict.forward)
        self.assertEqual(SUSPECT, machine.state('compute-1'))
        self.assertEqual(SUSPECT, machine.state('compute-2'))

    def test_k_above_n_is_refused(self):
        self.set_opts(group='detection', required_reports=4)
        exc = self.assertRaises(exceptions.ConfigurationError, self.make)
        self.assertIn('required_reports <= monitors_per_host', str(exc))


class TestCorroboration(CorroborationTestCase):

    def test_k_reports_within_the_window_make_it_down(self):
        machine = self.make()
        machine.observe(report(monitor_id='mon-1'))
        self.clock.advance(0.9)
        second = report(monitor_id='mon-2')
        verdict = machine.observe(second)
        self.assertEqual(DOWN, machine.state('compute-1'))
        self.assertEqual(second.message_id, verdict.forward.message_id)
        self.assertEqual('mon-1,mon-2', verdict.forward.trait('confirmed_by'))
        self.assertEqual(2, verdict.forward.trait('reports'))
        self.assertEqual('compute.host.down', verdict.forward.event_type)

    def test_reports_further_apart_than_the_window_do_not_agree(self):
        machine = self.make()
        machine.observe(report(monitor_id='mon-1'))
        self.clock.advance(1.5)
        verdict = machine.observe(report(monitor_id='mon-2'))
        self.assertIsNone(verdict.forward)
        self.assertEqual(SUSPECT, machine.state('compute-1'))
        # A third within the window of the second does.
        self.clock.advance(0.5)
        verdict = machine.observe(report(monitor_id='mon-3'))
        self.assertEqual('mon-2,mon-3', verdict.forward.trait('confirmed_by'))

    def test_refreshed_vote_counts_from_its_refresh(self):
        machine = self.make()
        machine.observe(report(monitor_id='mon-1'))
        self.clock.advance(1.5)
        machine.observe(report(monitor_id='mon-1', event_id='retry'))
        self.clock.advance(0.5)
        verdict = machine.observe(report(monitor_id='mon-2'))
        self.assertIsNotNone(verdict.forward)

    def test_reports_of_a_down_host_go_on_to_the_correlation(self):
        machine = self.make()
        machine.observe(report(monitor_id='mon-1'))
        machine.observe(report(monitor_id='mon-2'))
        third = report(monitor_id='mon-3')
        self.assertIs(third, machine.observe(third).forward)

    def test_recovery_of_a_down_host_goes_on_and_resets_it(self):
        machine = self.make()
        machine.observe(report(monitor_id='mon-1'))
        machine.observe(report(monitor_id='mon-2'))
        up = report('up', monitor_id='mon-3')
        self.assertIs(up, machine.observe(up).forward)
        self.assertEqual(UP, machine.state('compute-1'))
        # The next failure must be corroborated again.
        verdict = machine.observe(report(monitor_id='mon-1', event_id='2'))
        self.assertIsNone(verdict.forward)


class TestWithdrawal(CorroborationTestCase):

    def test_monitor_hearing_the_host_again_clears_the_suspicion(self):
        machine = self.make()
        first = machine.observe(report()).publish[0]
        verdict = machine.observe(report('up'))
        self.assertIsNone(verdict.forward)
        [cleared] = verdict.publish
        self.assertEqual('compute.host.suspect', cleared.event_type)
        self.assertEqual('cleared', cleared.trait('status'))
        self.assertNotEqual(first.message_id, cleared.message_id)
        self.assertEqual(UP, machine.state('compute-1'))

    def test_a_withdrawn_vote_does_not_count(self):
        machine = self.make()
        machine.observe(report(monitor_id='mon-1'))
        machine.observe(report('up', monitor_id='mon-1'))
        verdict = machine.observe(report(monitor_id='mon-2'))
        self.assertIsNone(verdict.forward)
        self.assertEqual(SUSPECT, machine.state('compute-1'))

    def test_other_votes_keep_it_suspect(self):
        machine = self.make()
        machine.observe(report(monitor_id='mon-1'))
        self.clock.advance(2)
        machine.observe(report(monitor_id='mon-2'))
        verdict = machine.observe(report('up', monitor_id='mon-1'))
        self.assertEqual((None, ()), (verdict.forward, verdict.publish))
        self.assertEqual(SUSPECT, machine.state('compute-1'))

    def test_up_of_a_host_never_suspected_goes_on(self):
        machine = self.make()
        up = report('up')
        self.assertIs(up, machine.observe(up).forward)

    def test_votes_expire_after_the_suspect_timeout(self):
        machine = self.make()
        machine.observe(report())
        self.clock.advance(89)
        self.assertEqual([], machine.expire())
        self.clock.advance(2)
        [cleared] = machine.expire()
        self.assertEqual('cleared', cleared.trait('status'))
        self.assertEqual(UP, machine.state('compute-1'))
        self.assertEqual([], machine.expire())


class TestConfirmingSignals(CorroborationTestCase):

    def test_nova_heartbeat_timeout_confirms_a_standing_report(self):
        machine = self.make()
        first = report()
        machine.observe(first)
        self.clock.advance(65)
        verdict = machine.observe(nova())
        self.assertEqual(DOWN, machine.state('compute-1'))
        # The monitor's report goes on, saying what confirmed it.
        self.assertEqual(first.message_id, verdict.forward.message_id)
        self.assertEqual('mon-1,nova_service',
                         verdict.forward.trait('confirmed_by'))

    def test_nova_alone_does_not_make_it_down(self):
        machine = self.make()
        verdict = machine.observe(nova())
        self.assertIsNone(verdict.forward)
        self.assertEqual(SUSPECT, machine.state('compute-1'))
        # A monitor's report is then confirmed by it.
        verdict = machine.observe(report())
        self.assertEqual('mon-1,nova_service',
                         verdict.forward.trait('confirmed_by'))

    def test_nova_signal_off_is_not_a_confirmation(self):
        self.set_opts(group='detection', confirming_signals=[])
        machine = self.make()
        machine.observe(report())
        verdict = machine.observe(nova())
        self.assertIsNone(verdict.forward)
        self.assertEqual(SUSPECT, machine.state('compute-1'))

    def test_operator_force_down_needs_no_report(self):
        machine = self.make()
        ev = nova(cause='forced_down')
        verdict = machine.observe(ev)
        self.assertEqual(ev.message_id, verdict.forward.message_id)
        self.assertEqual('forced_down',
                         verdict.forward.trait('confirmed_by'))

    def test_power_state_is_asked_for_when_suspect(self):
        machine = self.make(power_state=True)
        verdict = machine.observe(report())
        self.assertEqual('compute-1', verdict.query_power)
        verdict = machine.confirm('compute-1', detection.POWER_STATE)
        self.assertEqual('mon-1,power_state',
                         verdict.forward.trait('confirmed_by'))
        self.assertEqual(DOWN, machine.state('compute-1'))

    def test_power_state_not_asked_without_a_reader_or_signal(self):
        self.assertIsNone(self.make().observe(report()).query_power)
        self.set_opts(group='detection', confirming_signals=['nova_service'])
        machine = self.make(power_state=True)
        self.assertIsNone(machine.observe(report()).query_power)

    def test_late_confirmation_of_a_cleared_host_is_ignored(self):
        machine = self.make(power_state=True)
        machine.observe(report())
        machine.observe(report('up'))
        verdict = machine.confirm('compute-1', detection.POWER_STATE)
        self.assertIsNone(verdict.forward)
        self.assertEqual(UP, machine.state('compute-1'))

    def test_second_plane_confirms_when_enabled(self):
        machine = self.make()
        verdict = machine.observe(report(planes='management,tenant'))
        self.assertIsNone(verdict.forward)
        self.set_opts(group='detection',
                      confirming_signals=['nova_service', 'plane'])
        machine = self.make()
        self.assertIsNone(machine.observe(
            report(planes='management')).forward)
        verdict = machine.observe(report(monitor_id='mon-2',
                                         planes='management,tenant'))
        self.assertIsNotNone(verdict.forward)
        machine = self.make()
        verdict = machine.observe(report(planes='management,tenant'))
        self.assertEqual('mon-1,plane',
                         verdict.forward.trait('confirmed_by'))


class TestIsolation(CorroborationTestCase):

    def test_isolated_monitor_is_discounted(self):
        machine = self.make()
        ev = isolation('mon-1')
        self.assertIs(ev, machine.observe(ev).forward)
        self.assertEqual({'mon-1'}, machine.isolated())
        self.assertIsNone(machine.observe(report(monitor_id='mon-1')).forward)
        self.assertEqual(UP, machine.state('compute-1'))
        machine.observe(report(monitor_id='mon-2'))
        verdict = machine.observe(report(monitor_id='mon-1', event_id='x'))
        self.assertIsNone(verdict.forward)
        self.assertEqual(SUSPECT, machine.state('compute-1'))

    def test_isolation_withdraws_its_votes(self):
        machine = self.make()
        machine.observe(report(monitor_id='mon-1', host='compute-1'))
        machine.observe(report(monitor_id='mon-1', host='compute-2'))
        machine.observe(report(monitor_id='mon-2', host='compute-2',
                               event_id='y'))
        verdict = machine.observe(isolation('mon-1'))
        [cleared] = verdict.publish
        self.assertEqual('compute-1', cleared.trait('host'))
        self.assertEqual(UP, machine.state('compute-1'))
        self.assertEqual(DOWN, machine.state('compute-2'))

    def test_connected_again_counts_again(self):
        machine = self.make()
        machine.observe(isolation('mon-1'))
        machine.observe(isolation('mon-1', 'connected'))
        self.assertEqual(frozenset(), machine.isolated())
        machine.observe(report(monitor_id='mon-1'))
        self.assertIsNotNone(
            machine.observe(report(monitor_id='mon-2')).forward)

    def test_discount_applies_with_k_of_one(self):
        self.set_opts(group='detection', required_reports=1)
        machine = self.make()
        machine.observe(isolation('mon-1'))
        self.assertIsNone(machine.observe(report(monitor_id='mon-1')).forward)
        ev = report(monitor_id='mon-2')
        self.assertIs(ev, machine.observe(ev).forward)


class TestInspectorCorroborates(test_engine.InspectorTestCase):
    """The engine tells tenants and Nova only of corroborated failures."""

    def setUp(self):
        super().setUp()
        self.set_opts(group='detection', required_reports=2,
                      monitors_per_host=3)

    def types(self):
        return [ev.event_type for batch in self.recorder.batches
                for ev in batch]

    def inspector_with(self, **kwargs):
        """An inspector recording what it publishes, with ``kwargs``."""
        pipe = test_engine.make_pipeline(self.conf)
        self.addCleanup(pipe.close)
        self.recorder = notifications.BatchRecorder()
        pipe.notifiers['log://'] = self.recorder
        inspector = engine.Inspector(self.conf, pipe, self.topology,
                                     self.timeline, **kwargs)
        self.addCleanup(inspector.close)
        return inspector

    def test_suspect_goes_on_the_bus_only(self):
        inspector = self.make_inspector()
        published = inspector.process([report()])
        self.assertEqual(['compute.host.suspect'],
                         [ev.event_type for ev in published])
        self.assertEqual(['compute.host.suspect'], self.types())

    def test_second_monitor_makes_tenants_hear_of_it(self):
        inspector = self.make_inspector()
        inspector.process([report(monitor_id='mon-1')])
        published = inspector.process([report(monitor_id='mon-2')])
        tenants = sorted(ev.trait('project_id') for ev in published
                         if ev.trait('project_id'))
        self.assertEqual(['tenant-a', 'tenant-b'], tenants)
        self.assertEqual('compute.host.down', published[0].event_type)
        self.assertEqual('mon-1,mon-2', published[0].trait('confirmed_by'))

    def test_controller_acts_only_when_down(self):
        calls = []

        class Controller:
            def handle(self, ev, instances, verify=False):
                calls.append((ev.trait('host'), len(instances)))

        inspector = self.inspector_with(controller=Controller())
        inspector.process([report(monitor_id='mon-1')])
        self.assertEqual([], calls)
        inspector.process([report(monitor_id='mon-2')])
        self.assertEqual([('compute-1', 3)], calls)

    def test_power_off_confirms_through_the_reader(self):
        asked = []
        answered = threading.Event()

        def power_state(host):
            asked.append(host)
            answered.set()
            return 'off'

        inspector = self.inspector_with(power_state=power_state)
        inspector.process([report()])
        self.assertTrue(answered.wait(5))
        self.assertEqual(['compute-1'], asked)
        for _ in range(500):
            if 'compute.host.down' in self.types():
                break
            threading.Event().wait(0.01)
        self.assertIn('compute.host.down', self.types())
        self.assertEqual(DOWN, inspector.detection.state('compute-1'))

    def test_power_on_does_not_confirm(self):
        answered = threading.Event()

        def power_state(host):
            answered.set()
            return 'on'

        inspector = self.inspector_with(power_state=power_state)
        inspector.process([report()])
        self.assertTrue(answered.wait(5))
        threading.Event().wait(0.1)
        self.assertNotIn('compute.host.down', self.types())
        self.assertEqual(SUSPECT, inspector.detection.state('compute-1'))

    def test_degraded_report_is_published_without_fan_out(self):
        inspector = self.make_inspector()
        ev = event_model.Event.create(detection.DEGRADED_EVENT_TYPE, {
            'host': 'compute-1', 'status': 'degraded',
            'planes': 'management', 'monitor_id': 'mon-1'})
        published = inspector.process([ev])
        self.assertEqual([detection.DEGRADED_EVENT_TYPE],
                         [e.event_type for e in published])
