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

"""Tests for doctor_plugin.bench.memory (B7)."""

import collections

from doctor_plugin.bench import memory
from doctor_plugin.testing import nova as nova_standin
from doctor_plugin.tests import base


class TestCloud(base.TestCase):

    def test_shape(self):
        servers = list(memory.cloud(instances=600, hosts=30, tenants=20))
        self.assertEqual(600, len({s[0] for s in servers}))
        per_host = collections.Counter(s[2] for s in servers)
        self.assertEqual(30, len(per_host))
        self.assertEqual({20}, set(per_host.values()))
        self.assertEqual(20, len({s[1] for s in servers}))

    def test_status_figures(self):
        self.assertGreater(memory._status_mb('VmRSS'), 1.0)
        self.assertGreaterEqual(memory._status_mb('VmHWM'),
                                memory._status_mb('VmRSS') - 1.0)


class TestMeasure(base.TestCase):

    def test_loads_in_a_fresh_process(self):
        nova = nova_standin.NovaStandIn().start()
        self.addCleanup(nova.stop)
        nova.add_servers(memory.cloud(instances=1200, hosts=12, tenants=5))
        figures = memory.measure_in_subprocess(nova.compute_url,
                                               timeout=120)
        self.assertEqual(1200, figures['instances'])
        self.assertEqual(12, figures['hosts'])
        self.assertGreater(figures['rss_mb'], figures['baseline_rss_mb'])
        self.assertGreaterEqual(figures['peak_rss_after_resync_mb'],
                                figures['rss_mb'] - 1.0)
