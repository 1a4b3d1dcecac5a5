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

"""Tests for doctor_plugin.bench.throughput (B5, B8)."""

import io
import json
from unittest import mock

from doctor_plugin.bench import harness
from doctor_plugin.bench import throughput
from doctor_plugin.tests import base


class TestReports(base.TestCase):

    def test_rounds_alternate_down_and_up(self):
        with mock.patch.object(throughput, 'HOSTS', 3):
            reports = throughput.report_payload('run', 0, 6, 0.0)
        self.assertEqual(['down'] * 3 + ['up'] * 3,
                         [r['details']['status'] for r in reports])
        self.assertEqual(6, len({r['details']['monitor_event_id']
                                 for r in reports}))
        self.assertEqual(1, len({r['time'] for r in reports}))


class TestTransitions(base.TestCase):

    def test_each_alarm_fires_once_over_the_runs(self):
        workload = mock.Mock(fired=set())
        with mock.patch.object(throughput, 'HOSTS', 3):
            self.assertEqual(2, throughput.Workload.transitions(workload, 2))
            self.assertEqual(4, throughput.Workload.transitions(workload,
                                                                100))
            self.assertEqual(0, throughput.Workload.transitions(workload,
                                                                100))


class TestArrivals(base.TestCase):

    def test_reports_arrive_with_their_host_event(self):
        arrivals = throughput.Arrivals('run')
        host = {'message_id': 'a', 'event_type': 'compute.host.down',
                'traits': [['monitor_event_id', 1, 'run-0']]}
        tenant = {'message_id': 'b', 'event_type': 'compute.host.down',
                  'traits': [['monitor_event_id', 1, 'run-0'],
                             ['project_id', 1, 'tenant-000']]}
        other = {'message_id': 'c', 'event_type': 'compute.host.down',
                 'traits': [['monitor_event_id', 1, 'old-0']]}
        arrivals.add_events([host, tenant, other], 1.0)
        arrivals.add_events([host], 2.0)
        figures = arrivals.figures(1)
        self.assertEqual(1, figures['received'])
        self.assertEqual(1, figures['duplicates'])
        self.assertEqual({'events_received': 2, 'event_duplicates': 1,
                          'events_per_s': 2.0}, arrivals.event_figures())


class TestB5OnFake(base.TestCase):

    def test_result_shape(self):
        options = harness.BenchOptions(transport_url='fake://',
                                       duration=0.5)
        with mock.patch.object(throughput, 'HOSTS', 20):
            result = throughput.run_b5(options, lambda message: None)
        data = result.as_json()
        for key in ('throughput_per_s', 'fake_throughput_per_s', 'sent',
                    'received', 'lost', 'duplicates', 'target', 'met',
                    'env'):
            self.assertIn(key, data)
        self.assertEqual('B5', data['scenario'])
        self.assertGreater(data['sent'], 0)
        self.assertEqual(data['sent'], data['received'])
        self.assertEqual(0, data['lost'])
        self.assertEqual(0, data['duplicates'])
        self.assertGreater(data['fake_throughput_per_s'], 0)
        self.assertEqual(data['fake_throughput_per_s'],
                         data['throughput_per_s'])
        self.assertEqual([], data['rabbit_runs'])
        run = data['fake_runs'][0]
        cpu = run['cpu_percent_of_one_core']
        self.assertEqual({'bench (inspector + publisher + listener)',
                          'consumer'}, set(cpu))
        # Every event of a report reached the bus's far end: a down
        # report is its host event, its tenant's and one per instance;
        # an up report, its host event and its tenant's.
        self.assertEqual(0, data['event_duplicates'])
        self.assertGreaterEqual(data['events_received'], 2 * data['sent'])
        self.assertGreater(run['events_per_s'], run['throughput_per_s'])
        # The alarms fire on their transitions only (repeat_actions:
        # false): once per host and state, whatever the reports.
        self.assertEqual(min(data['sent'], 40), data['webhooks_expected'])
        self.assertEqual(data['webhooks_expected'], data['webhooks'])
        self.assertEqual(0, data['webhook_duplicates'])
        out = io.StringIO()
        harness.write_json([result], out)
        self.assertEqual(data['sent'], json.loads(out.getvalue())['sent'])
