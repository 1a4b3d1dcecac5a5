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

"""Corroborated detection over a real network of namespaces.

Each test runs a :class:`~doctor_plugin.testing.site.Site`: three compute
hosts sending heartbeats on a management and a tenant plane, three
monitors (k = 2 of n = 3) and the inspector, each a real process in a
network namespace of its own, with the real RabbitMQ. Faults are links
set down and packet loss in the namespaces. A real failure must be
detected and acted on; the partitions of B9 must not look like one.

These need root (CAP_NET_ADMIN): on a developer machine without it they
skip, and under ``CI=true`` they fail, as every test of a service does.
"""

import time

from testtools import content

from doctor_plugin.bench import partitions
from doctor_plugin.testing import netns
from doctor_plugin.testing import services
from doctor_plugin.testing import site as site_mod
from doctor_plugin.tests import base

#: How long each partition is held here (B9 holds each for 10 minutes).
HOLD = 10.0


class SiteTestCase(base.TestCase):

    inspector_options: dict = {'inspector': {'flap_window': 0}}

    def setUp(self):
        super().setUp()
        self.require(netns.capability_problem())
        self.require(services.problem('RabbitMQ'))
        self.site = self.make_site()
        self.addOnException(self._attach_logs)
        self.addCleanup(self.site.stop)
        self.site.start()
        self.bus = self.site.bus

    def make_site(self):
        return site_mod.Site(inspector_options=self.inspector_options)

    def _attach_logs(self, exc_info):
        for name in ['inspector'] + self.site.monitor_names:
            self.addDetailUniqueName(
                f'{name}.log',
                content.text_content(self.site.log_of(name, 60)))

    def assert_untouched(self, since):
        """No host declared down, no Nova fix-up, no tenant alarmed."""
        self.assertEqual([], self.site.false_downs(since=since))
        self.assertEqual(0, self.site.force_downs())
        self.assertEqual(0, self.site.tenant_alarms())


class TestRealFailure(SiteTestCase):

    def test_a_dead_host_is_confirmed_by_two_monitors(self):
        host = self.site.host_names[0]
        fault = self.site.fail_host(host)
        suspect = self.bus.wait('compute.host.suspect', host, since=fault,
                                status='suspect')
        down = self.bus.wait('compute.host.down', host, since=fault)
        self.assertIsNotNone(suspect)
        self.assertIsNotNone(down)
        self.assertLessEqual(suspect.at, down.at)
        confirmed = down.traits['confirmed_by'].split(',')
        self.assertEqual(2, len(confirmed), confirmed)
        self.assertEqual(set(), set(confirmed) - set(self.site.monitor_names))
        # The tenants with VMs on it are told, and Nova forced it down once.
        self.assertTrue(self.site.alarms.wait_hosts([host], 10))
        self.assertTrue(self.site.wait_force_downs(1, 10),
                        self.site.force_downs())
        self.site.recover_host(host)
        self.assertIsNotNone(self.bus.wait('compute.host.up', host,
                                           since=fault))
        # No other host was declared down. (One monitor may have doubted
        # one, on a machine this loaded: that is what k = 2 absorbs.)
        others = set(self.site.host_names) - {host}
        self.assertEqual(set(), {d.host for d in self.site.false_downs(
            since=fault)} & others)

    def test_one_monitor_dead_failures_are_still_detected(self):
        self.site.kill(self.site.monitor_names[-1])
        time.sleep(3.0)
        latencies, missed = partitions.detection_trials(
            self.site, 6, self.log, 'B10')
        self.assertEqual(0, missed)
        self.assertEqual(6, len(latencies))

    def log(self, line):
        self.addDetailUniqueName('trial', content.text_content(line))


class TestPartitions(SiteTestCase):
    """B9's cases, each held for :data:`HOLD` seconds."""

    def hold(self, name):
        case = {c.name: c for c in partitions.CASES}[name]
        start = time.time()
        figures = partitions.partition_case(self.site, case, HOLD)
        self.assertEqual(0, figures['false_downs'], figures)
        self.assert_untouched(start)
        return start, figures

    def test_monitor_cut_off(self):
        start, figures = self.hold('monitor_cut_off')
        monitor = self.site.monitor_names[0]
        # It knew it was isolated, and says so once it can.
        self.assertIsNotNone(self.bus.wait(
            'doctor.monitor.isolated', since=start, status='connected',
            monitor_id=monitor), self.site.log_of(monitor))
        # It reported no host down, so it reports none up either.
        self.assertEqual([], self.bus.select('compute.host.up',
                                             since=start))

    def test_management_link_down_is_degraded_not_down(self):
        host = self.site.host_names[0]
        start, figures = self.hold('management_link_down')
        self.assertTrue(figures['fault_seen'], figures)
        degraded = self.bus.wait('compute.host.degraded', host, since=start,
                                 status='degraded')
        self.assertEqual(site_mod.MANAGEMENT, degraded.traits['planes'])
        self.assertIsNotNone(self.bus.wait(
            'compute.host.degraded', host, since=start, status='restored'))

    def test_loss_on_one_plane(self):
        self.hold('management_loss_30')


class FencingTestCase(SiteTestCase):
    """Fencing through IPMI over the namespaces' management plane."""

    fencing = 'skip_fixup'
    bmc_credentials_ok = True

    def make_site(self):
        return site_mod.Site(inspector_options={
            'inspector': {'flap_window': 0},
            'fencing': {'timeout': 2.0},
            'nova': {'fixup_deadline': 30}},
            fencing=self.fencing,
            bmc_credentials_ok=self.bmc_credentials_ok)

    def fail(self, host):
        fault = self.site.fail_host(host)
        self.assertIsNotNone(self.bus.wait('compute.host.down', host,
                                           since=fault))
        return fault

    def result(self, host, since, timeout=20.0):
        """The controller's result of ``host``'s force-down."""
        found = self.bus.wait('doctor.controller.result', host, since=since,
                              timeout=timeout, action='force_down')
        self.assertIsNotNone(found, self.site.log_of('inspector'))
        return found.traits

    def force_down_calls(self):
        return [c for c in self.site.nova.calls_to('PUT', '/v2.1/os-services')
                if isinstance(c.body, dict)
                and c.body.get('forced_down') is True]


class TestFencing(FencingTestCase):

    def test_a_down_host_is_powered_off_before_nova_is_told(self):
        host = self.site.host_names[0]
        fault = self.fail(host)
        result = self.result(host, fault)
        self.assertEqual(('success', 'fenced'),
                         (result['outcome'], result['fence_outcome']))
        off = self.site.bmc.wait_for_change(self.site.bmc_port(host), 'off',
                                            5)
        self.assertIsNotNone(off)
        (force_down,) = self.force_down_calls()
        self.assertLess(off.at, force_down.at)
        # The other hosts' BMCs were not touched.
        self.assertEqual([], [c for c in self.site.bmc.changes()
                              if c.port != self.site.bmc_port(host)])

    def test_an_unreachable_bmc_leaves_nova_alone(self):
        self.site.nodes['bmc'].cut_off()
        host = self.site.host_names[1]
        fault = self.fail(host)
        # The tenants are told all the same.
        self.assertTrue(self.site.alarms.wait_hosts([host], 10))
        result = self.result(host, fault)
        self.assertEqual(('not_fenced', 'timed_out'),
                         (result['outcome'], result['fence_outcome']))
        self.assertEqual([], self.force_down_calls())

    def test_a_host_already_off_is_not_fenced_again(self):
        host = self.site.host_names[2]
        self.site.bmc.control(port=self.site.bmc_port(host), power='off')
        fault = self.fail(host)
        result = self.result(host, fault)
        self.assertEqual(('success', 'already_off'),
                         (result['outcome'], result['fence_outcome']))
        self.assertEqual(1, len(self.force_down_calls()))

    def test_power_off_confirms_a_single_report(self):
        # Two monitors of three dead: one report can never become two.
        for name in self.site.monitor_names[1:]:
            self.site.kill(name)
        time.sleep(3.0)
        host = self.site.host_names[0]
        self.site.bmc.control(port=self.site.bmc_port(host), power='off')
        fault = self.site.fail_host(host)
        down = self.bus.wait('compute.host.down', host, since=fault)
        self.assertIsNotNone(down, self.site.log_of('inspector'))
        self.assertEqual(f'{self.site.monitor_names[0]},power_state',
                         down.traits['confirmed_by'])

    def test_power_on_keeps_a_single_report_suspect(self):
        for name in self.site.monitor_names[1:]:
            self.site.kill(name)
        time.sleep(3.0)
        host = self.site.host_names[0]
        fault = self.site.fail_host(host)
        self.assertIsNotNone(self.bus.wait('compute.host.suspect', host,
                                           since=fault))
        time.sleep(3.0)
        self.assertEqual([], self.site.false_downs(since=fault))
        self.assertEqual([], self.force_down_calls())


class TestFencingWithWrongCredentials(FencingTestCase):

    bmc_credentials_ok = False

    def test_fencing_fails_and_nova_is_left_alone(self):
        host = self.site.host_names[0]
        fault = self.fail(host)
        result = self.result(host, fault)
        self.assertEqual(('not_fenced', 'failed'),
                         (result['outcome'], result['fence_outcome']))
        self.assertIn('skip_fixup', result['error'])
        self.assertEqual([], self.force_down_calls())


class TestFencingThatWaits(FencingTestCase):

    fencing = 'wait'

    def test_nova_is_told_once_the_bmc_answers(self):
        bmc = self.site.nodes['bmc']
        bmc.cut_off()
        host = self.site.host_names[0]
        fault = self.fail(host)
        time.sleep(4.0)
        self.assertEqual([], self.force_down_calls())
        bmc.restore()
        result = self.result(host, fault, timeout=30)
        self.assertEqual(('success', 'fenced'),
                         (result['outcome'], result['fence_outcome']))
        self.assertGreater(int(result['fence_attempts']), 1)
        self.assertEqual(1, len(self.force_down_calls()))
