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

"""R1–R4 at full size: the broker restarted, the consumer down for 30 s,
the inspector killed, and 10,000 hostile HTTP inputs plus 3,140 hostile
bus messages. Run alone (``tox -e reliability``): R1 stops the local
RabbitMQ for a few seconds, which would fail any other test using it at
the time.
"""

import shutil
import sys

from doctor_plugin.bench import fuzz
from doctor_plugin.bench import harness
from doctor_plugin.bench import poison
from doctor_plugin.bench import reliability
from doctor_plugin.tests.functional import base


class TestReliability(base.FunctionalTestCase):

    def run_scenario(self, run, **options):
        result = run(harness.BenchOptions(
            transport_url=base.TRANSPORT_URL, **options),
            lambda line: print(line, file=sys.stderr))
        # The figures, in the test's output for the issue note.
        print(result.as_table())
        self.assertTrue(result.met, result.as_table())
        self.assertEqual(0, result.lost, result.as_table())
        return result

    def test_r1_broker_restart_loses_and_duplicates_nothing(self):
        if shutil.which('rabbitmqctl') is None:
            self.fail('R1 needs rabbitmqctl (the local RabbitMQ) to stop '
                      'and start the broker')
        result = self.run_scenario(reliability.run_r1)
        self.assertEqual(reliability.R1_EVENTS, result.received)
        self.assertEqual(0, result.duplicates)
        self.assertGreaterEqual(result.extra['broker_down_s'],
                                reliability.BROKER_DOWN)

    def test_r2_consumer_outage_delivers_all_in_order(self):
        result = self.run_scenario(reliability.run_r2)
        self.assertEqual(reliability.R2_EVENTS, result.received)
        self.assertEqual(0, result.extra['alarms_out_of_order'])
        self.assertGreaterEqual(result.extra['outage_s'],
                                reliability.R2_OUTAGE)

    def test_r3_killed_inspector_loses_nothing(self):
        result = self.run_scenario(reliability.run_r3)
        self.assertEqual(reliability.R3_EVENTS, result.received)

    def test_r4_hostile_input_breaks_nothing(self):
        result = self.run_scenario(poison.run_r4)
        self.assertGreaterEqual(result.sent, fuzz.R4_INPUTS
                                + poison.MESSAGES)
        for figure in ('server_errors_5xx', 'crashes', 'stuck',
                       'unauthenticated_accepted'):
            self.assertEqual(0, result.extra[figure], figure)
        self.assertEqual(0, result.extra['bus_queue_left'])
        self.assertEqual(poison.VALID_AFTER,
                         result.extra['bus_valid_through'])
