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

"""Tests for doctor_plugin.bench.harness."""

import importlib.metadata
import io
import json
import math
import platform

from doctor_plugin.bench import harness
from doctor_plugin import exceptions
from doctor_plugin.tests import base


def result(**overrides):
    values = dict(
        scenario='host_down', transport='fake', trials=3,
        latency_ms={'p50': 1.5, 'p90': 2.25, 'p99': 3.0, 'max': 3.125},
        sent=3, received=3, lost=0, duplicates=0,
        target='p99 < 1000 ms', met=True, env={'python': '3.11'})
    values.update(overrides)
    return harness.ScenarioResult(**values)


class TestPercentile(base.TestCase):

    def test_nearest_rank(self):
        values = [float(v) for v in range(1, 11)]
        self.assertEqual(5.0, harness.percentile(values, 50))
        self.assertEqual(9.0, harness.percentile(values, 90))
        self.assertEqual(10.0, harness.percentile(values, 99))
        self.assertEqual(10.0, harness.percentile(values, 100))

    def test_rank_rounds_up(self):
        # Nearest rank: ceil(0.5 * 5) = 3, never the 2.5th value rounded
        # down.
        self.assertEqual(3.0, harness.percentile(
            [1.0, 2.0, 3.0, 4.0, 5.0], 50))
        self.assertEqual(2.0, harness.percentile([1.0, 2.0, 3.0], 50))

    def test_zero_percentile_is_the_minimum(self):
        self.assertEqual(1.0, harness.percentile([1.0, 2.0], 0))

    def test_empty_is_none(self):
        self.assertIsNone(harness.percentile([], 50))


class TestLatencySummary(base.TestCase):

    def test_sorts_and_rounds(self):
        summary = harness.latency_summary([3.00049, 1.0, 2.0, 4.12345])
        self.assertEqual({'p50': 2.0, 'p90': 4.123, 'p99': 4.123,
                          'max': 4.123}, summary)

    def test_empty_is_none(self):
        # JSON has no NaN: a figure without samples is null.
        summary = harness.latency_summary([])
        self.assertEqual({'p50': None, 'p90': None, 'p99': None,
                          'max': None}, summary)


class TestEnvironment(base.TestCase):

    def test_describes_the_run(self):
        env = harness.environment('rabbit://guest:guest@127.0.0.1:5672/')
        self.assertEqual('rabbit', env['transport'])
        self.assertEqual(platform.python_version(), env['python'])
        self.assertEqual(importlib.metadata.version('oslo.messaging'),
                         env['oslo.messaging'])
        self.assertIsInstance(env['cpus'], int)
        # Never the credentials of the transport URL.
        self.assertNotIn('guest', json.dumps(env))


class TestScenarioResult(base.TestCase):

    def test_as_json_flattens_extra(self):
        data = result(extra={'tenants': 4}).as_json()
        self.assertEqual(4, data['tenants'])
        self.assertNotIn('extra', data)
        self.assertEqual(
            {'scenario', 'transport', 'trials', 'latency_ms', 'sent',
             'received', 'lost', 'duplicates', 'target', 'met', 'env',
             'tenants'}, set(data))
        self.assertEqual(json.loads(json.dumps(data)), data)

    def test_as_table(self):
        table = result(extra={'tenants': 4}).as_table()
        self.assertEqual(
            'host_down  transport=fake  trials=3\n'
            '  latency ms: p50 1.50  p90 2.25  p99 3.00  max 3.12\n'
            '  sent 3  received 3  lost 0  duplicates 0\n'
            '  tenants: 4\n'
            '  target: p99 < 1000 ms  -> MET', table)

    def test_as_table_without_samples(self):
        table = result(latency_ms=harness.latency_summary([])).as_table()
        self.assertIn('latency ms: p50 n/a  p90 n/a  p99 n/a  max n/a',
                      table)

    def test_as_table_not_met(self):
        table = result(met=False, lost=1, received=2).as_table()
        self.assertTrue(table.endswith('-> NOT MET'), table)
        self.assertIn('received 2  lost 1', table)


def _reject_constant(name):
    raise ValueError(f'not strict JSON: {name}')


class TestStrictJSON(base.TestCase):
    """``--json`` output is RFC 8259 JSON, which has no NaN or Infinity."""

    def written(self, results):
        out = io.StringIO()
        harness.write_json(results, out)
        # What JSON.parse and other strict parsers do with NaN.
        return json.loads(out.getvalue(), parse_constant=_reject_constant)

    def test_a_scenario_without_samples_writes_null(self):
        # R1 and R3 measure no latency when nothing is delivered.
        data = self.written([result(
            latency_ms=harness.latency_summary([]),
            extra={'redelivery_ms': harness.latency_summary([]),
                   'ratio': math.nan, 'rates': [1.0, math.inf]})])
        self.assertEqual({'p50': None, 'p90': None, 'p99': None,
                          'max': None}, data['latency_ms'])
        self.assertIsNone(data['redelivery_ms']['p99'])
        self.assertIsNone(data['ratio'])
        self.assertEqual([1.0, None], data['rates'])

    def test_several_results_are_a_list(self):
        data = self.written([result(), result(scenario='B3')])
        self.assertEqual(['host_down', 'B3'], [d['scenario'] for d in data])

    def test_a_non_finite_figure_is_never_written(self):
        # A figure that bypasses as_json's clean-up fails loudly instead
        # of writing NaN.
        bad = result()
        bad.as_json = lambda: {'p50': math.nan}
        self.assertRaises(ValueError, harness.write_json, [bad],
                          io.StringIO())


class TestRequire(base.TestCase):

    def test_names_the_extra(self):
        exc = self.assertRaises(exceptions.DoctorPluginError,
                                harness.require, 'R4', 'json',
                                'doctor_no_such_module')
        self.assertIn('R4 needs json and doctor_no_such_module', str(exc))
        self.assertIn('pip install "doctor-plugin[bench]"', str(exc))

    def test_installed(self):
        self.assertIsNone(harness.require('R4', 'json'))
