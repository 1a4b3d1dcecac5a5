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
        cpu = data['fake_runs'][0]['cpu_percent_of_one_core']
        self.assertEqual({'bench (inspector + publisher)', 'consumer'},
                         set(cpu))
        out = io.StringIO()
        harness.write_json([result], out)
        self.assertEqual(data['sent'], json.loads(out.getvalue())['sent'])
