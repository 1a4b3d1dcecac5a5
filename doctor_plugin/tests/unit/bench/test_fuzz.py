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

"""R4 in small: hostile input against a live inspector over HTTP.

The same code as ``doctor-plugin bench --scenario R4`` (a real
doctor-plugin-inspector process on loopback, hypothesis and schemathesis
inputs), with fewer inputs.
"""

import json

import fixtures
import requests

from doctor_plugin.bench import fuzz
from doctor_plugin.bench import harness
from doctor_plugin.tests import base

#: Inputs of the run: about 15 s on two busy CPUs.
INPUTS = 800


class TestR4(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(240, gentle=True))
        self.lines = []

    def test_no_5xx_no_crash_nothing_stuck(self):
        result = fuzz.run_r4(harness.BenchOptions(trials=INPUTS),
                             self.lines.append)
        figures = result.as_json()
        shown = json.dumps({k: figures[k] for k in (
            'failures', 'log_errors', 'by_route')}, indent=1)
        self.assertGreaterEqual(result.sent, INPUTS)
        self.assertEqual(0, result.lost, shown)
        self.assertEqual(0, figures['server_errors_5xx'], shown)
        self.assertEqual(0, figures['crashes'], shown)
        self.assertEqual(0, figures['stuck'], '\n'.join(self.lines))
        self.assertEqual(0, figures['unauthenticated_accepted'], shown)
        self.assertEqual(0, figures['nonconforming_responses'], shown)
        self.assertTrue(result.met)
        self.assertLess(figures['probe_ms'], fuzz.PROBE_TIMEOUT * 1000)
        routes = figures['by_route']
        for path, (method, _) in fuzz.ROUTES.items():
            # Every route got inputs, and some of them were valid.
            self.assertIn('200', routes.get(f'{method} {path}', {}), path)
        refused = [counts for route, counts in routes.items()
                   if route.endswith('(no valid token)')]
        self.assertGreater(sum(sum(c.values()) for c in refused), 0)
        for counts in refused:
            self.assertEqual(['401'], list(counts))


class TestLiveInspector(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.target = fuzz.LiveInspector(lambda line: None).start()
        self.addCleanup(self.target.stop)

    def put(self, data):
        return requests.put(self.target.url + '/events', data=data,
                            headers={'X-Auth-Token': self.target.secret,
                                     'Content-Type': 'application/json'},
                            timeout=10)

    def test_json_nested_past_the_stack_is_a_400(self):
        # json.loads raised RecursionError: a 500 and a traceback.
        for body in (b'[' * 5000 + b']' * 5000, b'{"a":' * 20000):
            resp = self.put(body)
            self.assertEqual(400, resp.status_code, resp.text)
            self.assertIn('nested too deeply',
                          resp.json()['error']['message'])
        self.assertEqual([], self.target.log_errors())

    def test_probe_sees_a_valid_report_through(self):
        self.assertLess(self.target.probe(), fuzz.PROBE_TIMEOUT)
        self.target.proc.kill()
        self.target.proc.wait(10)
        self.assertIsNone(self.target.probe())
        self.assertFalse(self.target.alive())
