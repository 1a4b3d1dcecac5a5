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

"""Fencing through the whole controller: the BMC, then Nova.

The controller runs as the inspector runs it, against the Nova stand-in
(HTTP, in this process) and the BMC stand-in (IPMI 2.0 over UDP, in a
process of its own, as a BMC is another machine). The stand-ins record
when they saw each call, so the order of the power off and the
force-down is read from their own clocks.
"""

import time
import uuid

from doctor_plugin.controller import fixup
from doctor_plugin import event as event_model
from doctor_plugin.nova import client as nova
from doctor_plugin.testing import bmc as bmc_mod
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.fencers import fixtures as bmc_fixtures
from doctor_plugin.tests.unit.nova import test_client as test_nova
from doctor_plugin.topology import hosts as topology

HOST = 'compute-1'
#: Bound for a fix-up that should end quickly; tests end sooner.
WAIT = 20.0


def host_event(event_type='compute.host.down', host=HOST):
    fault_id = str(uuid.uuid4())
    return fault_id, event_model.Event.create(
        event_type, {'host': host, 'monitor_event_id': fault_id})


class FencingTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.nova = self.useFixture(test_nova.NovaStandInFixture()).nova
        self.nova.add_service(HOST)
        self.instances = [topology.Instance(f'vm-{i}', 'tenant-0', HOST)
                          for i in range(3)]
        for inst in self.instances:
            self.nova.add_server(inst.id, inst.project_id, inst.host)
        self.bmc = self.useFixture(bmc_fixtures.BmcFixture([HOST]))
        self.published = []

    def controller(self, **fencing):
        test_nova.configure(self, self.nova, fixup_deadline=15.0)
        self.set_opts('fencing', driver='ipmi', bmc_file=self.bmc.path,
                      **fencing)
        client = nova.NovaClient(self.conf)
        self.addCleanup(client.close)
        controller = fixup.NovaController(
            self.conf, client, publish=self.published.extend,
            timeline=self.timeline)
        self.addCleanup(controller.close)
        return controller

    def fault(self, controller, verify=False):
        fault_id, event = host_event()
        controller.handle(event, self.instances, verify=verify)
        return fault_id

    def force_down_calls(self):
        return [c for c in self.nova.calls_to('PUT', '/v2.1/os-services')
                if isinstance(c.body, dict)
                and c.body.get('forced_down') is True]

    def published_traits(self, fault_id):
        (event,) = [e for e in self.published
                    if e.trait('monitor_event_id') == fault_id]
        self.assertEqual('doctor.controller.result', event.event_type)
        return event.trait_dict()

    def assert_left_alone(self):
        self.assertEqual([], self.force_down_calls())
        self.assertEqual([], self.nova.calls_to('POST', '/v2.1/servers/'))
        self.assertFalse(self.nova.service(HOST)['forced_down'])


class TestFenceThenForceDown(FencingTestCase):

    def test_the_bmc_powers_off_before_nova_forces_down(self):
        controller = self.controller()
        fault_id = self.fault(controller)
        result = controller.wait(fault_id, WAIT)
        self.assertEqual('success', result.outcome, result.error)
        self.assertEqual(('fenced', '', 1), (result.fence_outcome,
                                             result.fence_error,
                                             result.fence_attempts))
        (power_off,) = self.bmc.requests(HOST)
        self.assertTrue(power_off.accepted)
        (off,) = self.bmc.changes(HOST)
        (force_down,) = self.force_down_calls()
        # By the stand-ins' own clocks: off first, then forced down.
        self.assertLess(power_off.at, force_down.at)
        self.assertLessEqual(off.at, force_down.at)
        resets = self.nova.calls_to('POST', '/v2.1/servers/')
        self.assertEqual(3, len(resets))
        self.assertLess(off.at, min(c.at for c in resets))
        marks = self.timeline.marks(fault_id)
        self.assertLessEqual(marks['fenced'], marks['T04'])
        self.assertLessEqual(marks['fenced'], marks['T03'])
        traits = self.published_traits(fault_id)
        self.assertEqual(('success', 'fenced', ''),
                         (traits['outcome'], traits['fence_outcome'],
                          traits['fence_error']))
        self.assertGreater(traits['fence_ms'], 0)
        self.assertAlmostEqual(result.fence_ms, traits['fence_ms'],
                               places=2)

    def test_a_host_already_off_is_forced_down_without_a_power_off(self):
        self.bmc.control(HOST, power='off')
        controller = self.controller()
        fault_id = self.fault(controller)
        result = controller.wait(fault_id, WAIT)
        self.assertEqual(('success', 'already_off'),
                         (result.outcome, result.fence_outcome))
        self.assertEqual([], self.bmc.requests(HOST))
        self.assertEqual(1, len(self.force_down_calls()))
        self.assertIn('fenced', self.timeline.marks(fault_id))

    def test_a_verified_fix_up_does_not_fence_a_host_off_again(self):
        controller = self.controller()
        first = self.fault(controller)
        controller.wait(first, WAIT)
        # Taken over by another member: the host is off and forced down.
        second = self.fault(controller, verify=True)
        result = controller.wait(second, WAIT)
        self.assertEqual(('success', 'already_off'),
                         (result.outcome, result.fence_outcome))
        self.assertEqual(1, len(self.bmc.requests(HOST)))
        self.assertEqual(1, len(self.force_down_calls()))

    def test_a_host_coming_up_is_not_fenced_nor_powered_on(self):
        self.bmc.control(HOST, power='off')
        controller = self.controller()
        fault_id, up = host_event('compute.host.up')
        controller.handle(up, [])
        result = controller.wait(fault_id, WAIT)
        self.assertEqual(('success', 'unforce', ''),
                         (result.outcome, result.action,
                          result.fence_outcome))
        self.assertEqual([], self.bmc.requests(HOST))
        self.assertNotIn('fenced', self.timeline.marks(fault_id))


class TestFencingFails(FencingTestCase):

    def assert_not_fenced(self, fault_id, result, fence_outcome):
        self.assertEqual(('not_fenced', fence_outcome),
                         (result.outcome, result.fence_outcome))
        self.assertIn('could not be fenced', result.error)
        self.assertIn('not forced down', result.error)
        self.assert_left_alone()
        traits = self.published_traits(fault_id)
        self.assertEqual(('not_fenced', fence_outcome),
                         (traits['outcome'], traits['fence_outcome']))
        self.assertEqual(result.fence_error, traits['fence_error'])
        self.assertNotIn('fenced', self.timeline.marks(fault_id))

    def test_a_refusing_bmc_with_skip_leaves_nova_alone(self):
        self.bmc.control(HOST, refuse_power_off=bmc_mod.REFUSED)
        controller = self.controller(on_failure='skip_fixup')
        fault_id = self.fault(controller)
        result = controller.wait(fault_id, WAIT)
        self.assert_not_fenced(fault_id, result, 'failed')
        self.assertIn('Command not supported in present state',
                      result.fence_error)
        self.assertIn('on_failure = skip_fixup', result.error)
        self.assertEqual(1, result.fence_attempts)

    def test_a_refusing_bmc_with_wait_is_fenced_once_it_accepts(self):
        self.bmc.control(HOST, refuse_power_off=bmc_mod.REFUSED)
        controller = self.controller(on_failure='wait')
        fault_id = self.fault(controller)
        # Refused for a while: Nova is left alone meanwhile.
        deadline = time.monotonic() + WAIT
        while (len(self.bmc.requests(HOST)) < 2
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertGreaterEqual(len(self.bmc.requests(HOST)), 2)
        self.assertEqual([], self.force_down_calls())
        self.bmc.control(HOST, refuse_power_off=None)
        result = controller.wait(fault_id, WAIT)
        self.assertEqual(('success', 'fenced'),
                         (result.outcome, result.fence_outcome))
        self.assertGreaterEqual(result.fence_attempts, 3)
        accepted = [r for r in self.bmc.requests(HOST) if r.accepted]
        self.assertEqual(1, len(accepted))
        (force_down,) = self.force_down_calls()
        self.assertLess(accepted[0].at, force_down.at)

    def test_a_host_coming_back_supersedes_a_waiting_fence(self):
        self.bmc.control(HOST, refuse_power_off=bmc_mod.REFUSED)
        controller = self.controller(on_failure='wait')
        down_id = self.fault(controller)
        deadline = time.monotonic() + WAIT
        while not self.bmc.requests(HOST) and time.monotonic() < deadline:
            time.sleep(0.05)
        up_id, up = host_event('compute.host.up')
        controller.handle(up, [])
        down = controller.wait(down_id, WAIT)
        self.assertEqual('superseded', down.outcome)
        self.assertEqual('success', controller.wait(up_id, WAIT).outcome)
        self.assertEqual([], self.force_down_calls())
        self.assertEqual('on', self.bmc_power())
        self.assertFalse(any(r.accepted for r in self.bmc.requests(HOST)))

    def bmc_power(self):
        changes = self.bmc.changes(HOST)
        return changes[-1].state if changes else 'on'

    def test_a_silent_bmc_times_out(self):
        self.bmc.control(HOST, silent=True)
        controller = self.controller(timeout=1.0)
        fault_id = self.fault(controller)
        result = controller.wait(fault_id, WAIT)
        self.assert_not_fenced(fault_id, result, 'timed_out')
        self.assertIn('no answer within 1 s', result.fence_error)
        self.assertLess(result.fence_ms, 2000)

    def test_a_wrong_password_fails_with_a_clear_error(self):
        self.bmc.add_entries({HOST: self.bmc.entry(HOST,
                                                   password='wrong-pw')})
        controller = self.controller()
        fault_id = self.fault(controller)
        result = controller.wait(fault_id, WAIT)
        self.assert_not_fenced(fault_id, result, 'failed')
        self.assertIn("refused the login of user 'fencer': Incorrect "
                      "password provided; check the username and "
                      f"password in {self.bmc.path}", result.fence_error)
        self.assertNotIn('wrong-pw', result.error)
