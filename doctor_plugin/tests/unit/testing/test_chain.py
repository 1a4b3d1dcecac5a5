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

"""Tests for doctor_plugin.testing.chain: placement and settings."""

import collections

from doctor_plugin.testing import chain
from doctor_plugin.tests import base


class TestPlacement(base.TestCase):

    def test_one_host_round_robin(self):
        settings = chain.ChainSettings(vms=6, tenants=3)
        instances = chain.placement(settings)
        self.assertEqual({'compute-0'}, {i.host for i in instances})
        self.assertEqual(['tenant-000', 'tenant-001', 'tenant-002'] * 2,
                         [i.project_id for i in instances])
        self.assertEqual(6, len({i.id for i in instances}))

    def test_rack_tenants_span_neighbouring_hosts(self):
        settings = chain.ChainSettings(hosts=40, vms=250, tenants=100,
                                       tenants_per_host=10, host='rack')
        instances = chain.placement(settings)
        self.assertEqual(10000, len({i.id for i in instances}))
        by_host = collections.defaultdict(set)
        spans = collections.defaultdict(set)
        for inst in instances:
            by_host[inst.host].add(inst.project_id)
            spans[inst.project_id].add(inst.host)
        self.assertEqual(40, len(by_host))
        self.assertEqual({10}, {len(t) for t in by_host.values()})
        self.assertEqual(100, len(spans))
        self.assertEqual({4}, {len(h) for h in spans.values()})
        self.assertEqual('rack-000', chain.host_names(settings)[0])


class TestChainSettings(base.TestCase):

    def test_listener_process_needs_a_real_broker(self):
        settings = chain.ChainSettings(alarms_in='listener',
                                       listener_process=True)
        exc = self.assertRaises(ValueError, chain.Chain, settings,
                                self.timeline)
        self.assertIn('fake://', str(exc))
