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

"""The benchmark's host-failure scenarios, run short, over RabbitMQ.

The same code path as ``doctor-plugin bench``: the consumer, the alarm
listener and the Nova stand-in each in a process of its own.
"""

import json

from doctor_plugin.bench import cluster
from doctor_plugin.bench import fencing
from doctor_plugin.bench import harness
from doctor_plugin.bench import partitions
from doctor_plugin.bench import scenarios
from doctor_plugin.testing import netns
from doctor_plugin.testing import services
from doctor_plugin.tests import base as test_base
from doctor_plugin.tests.functional import base


class TestHostFailureScenarios(base.FunctionalTestCase):

    def test_b1_short_run_counts_every_alarm_and_fix_up(self):
        log = []
        options = harness.BenchOptions(transport_url=base.TRANSPORT_URL,
                                       trials=5, warmup=1, timeout=10.0)
        result = scenarios.run_host_failures(
            'B1-short', scenarios._bench_settings(
                options, vms=20, tenants=4, host='bench-test'),
            5, 1000.0, options, log.append)
        self.assertEqual([], log)
        self.assertEqual(20, result.sent)
        self.assertEqual(0, result.lost)
        self.assertEqual(0, result.duplicates)
        self.assertEqual({'success': 5},
                         result.extra['nova_fixup_outcomes'])
        fixup = result.extra['nova_fixup_ms']
        self.assertGreater(fixup['p50'], 0)
        self.assertTrue(result.met)


class TestClusterScenarios(base.FunctionalTestCase):
    """R5 and B1-cluster, short: real inspectors on Redis and PostgreSQL."""

    def setUp(self):
        super().setUp()
        self.require(services.problems())
        self.options = harness.BenchOptions(
            transport_url=base.TRANSPORT_URL, trials=1, duration=2.0,
            warmup=1)

    def test_r5_one_kill_loses_nothing_and_acts_once(self):
        log = []
        result = cluster.run_r5(self.options, log.append)
        self.assertEqual(1, len(log), log)
        self.assertEqual(0, result.lost, result.extra)
        self.assertEqual(0, result.extra['double_fixups'])
        self.assertEqual(0, result.extra['double_alarms'])
        self.assertEqual(0, result.extra['not_fixed_up'], result.extra)
        # The victim's next hosts were handled after the member timeout
        # (2 s) dropped it, not before: a survivor acted, not the dead.
        takeover = result.extra['takeover_ms']
        self.assertGreater(takeover['p50'], 1000)
        self.assertLess(takeover['p99'], cluster.TAKEOVER_TARGET_MS)
        self.assertIsNotNone(result.extra['resume_ms']['p50'])

    def test_b1_cluster_measures_each_size(self):
        self.options.trials = 3
        result = cluster.run_b1_cluster(self.options, lambda line: None)
        self.assertEqual(['1', '2', '3'],
                         sorted(result.extra['latency_ms_by_members']))
        self.assertEqual(9, result.received)


class TestPartitionScenarios(base.FunctionalTestCase):
    """B9 and B11, short: a site of namespaces (needs CAP_NET_ADMIN)."""

    def setUp(self):
        super().setUp()
        self.require(netns.capability_problem())
        self.options = harness.BenchOptions(
            transport_url=base.TRANSPORT_URL, trials=4, duration=2.0)

    def test_b11_detects_every_failure_and_no_false_one(self):
        log = []
        result = partitions.run_b11(self.options, log.append)
        self.assertEqual(4, result.received, log)
        self.assertEqual(0, result.extra['false_positives'])
        self.assertEqual(0, result.lost)
        self.assertIsNotNone(result.latency_ms['p99'])
        json.dumps(result.as_json(), allow_nan=False)

    def test_b9_counts_each_case(self):
        result = partitions.run_b9(self.options, lambda line: None)
        self.assertEqual(sorted(c.name for c in partitions.CASES),
                         sorted(result.extra['cases']))
        for figures in result.extra['cases'].values():
            self.assertEqual(2.0, figures['duration_s'])
        self.assertEqual(0, result.extra['false_downs'], result.extra)
        self.assertEqual(0, result.extra['fixups'], result.extra)
        self.assertEqual(0, result.extra['tenant_alarms'], result.extra)
        self.assertTrue(result.extra['cases']['management_link_down'][
            'fault_seen'], result.extra)


class TestFencingScenario(test_base.TestCase):
    """F1 needs no broker: the BMC stand-in and Nova's, on loopback."""

    def test_f1_short_run_fences_every_trial(self):
        self.assertIs(fencing.run_f1, scenarios.SCENARIOS['F1'])
        options = harness.BenchOptions(trials=5, warmup=1)
        log = []
        result = fencing.run_f1(options, log.append)
        data = json.loads(json.dumps(result.as_json(), allow_nan=False))
        self.assertEqual(('F1', 5, 5, 0, 0),
                         (data['scenario'], data['trials'],
                          data['received'], data['lost'],
                          data['fence_failures']), log)
        self.assertGreater(data['latency_ms']['p50'], 0)
        self.assertLess(data['latency_ms']['max'], 5000)
        self.assertEqual('p99 <= 1000 ms, 0 fence failures', data['target'])
