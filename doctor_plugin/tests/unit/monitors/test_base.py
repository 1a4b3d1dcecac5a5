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

"""Tests of the monitor contract: the wire form of a fault report."""

import socket

from doctor_plugin.monitors import base
from doctor_plugin.tests import base as test_base


class TestFaultReport(test_base.TestCase):

    def test_down_carries_the_monitor_id_and_the_silent_planes(self):
        report = base.FaultReport('compute-1', 'down', 'heartbeat',
                                  1700000000.25, 'event-1',
                                  monitor_id='mon-a',
                                  planes=('management', 'tenant'))
        self.assertEqual(
            {'id': 'event-1', 'time': '2023-11-14T22:13:20.250000',
             'type': 'compute.host.down',
             'details': {'hostname': 'compute-1', 'status': 'down',
                         'monitor': 'heartbeat',
                         'monitor_event_id': 'event-1',
                         'monitor_id': 'mon-a',
                         'planes': 'management,tenant'}},
            report.as_doctor_event())

    def test_degraded_and_isolated_have_their_own_types(self):
        degraded = base.FaultReport('compute-1', 'degraded', 'heartbeat',
                                    1.0, 'e', monitor_id='mon-a',
                                    planes=('tenant',),
                                    event_type=base.HOST_DEGRADED)
        self.assertEqual('compute.host.degraded',
                         degraded.as_doctor_event()['type'])
        self.assertEqual('tenant',
                         degraded.as_doctor_event()['details']['planes'])
        isolated = base.FaultReport('mon-a', 'isolated', 'heartbeat', 1.0,
                                    'e', monitor_id='mon-a',
                                    event_type=base.MONITOR_ISOLATED)
        event = isolated.as_doctor_event()
        self.assertEqual('doctor.monitor.isolated', event['type'])
        self.assertNotIn('planes', event['details'])
        self.assertTrue(all(isinstance(v, str) and v
                            for v in event['details'].values()))

    def test_optional_details_are_left_out_when_empty(self):
        event = base.FaultReport('compute-1', 'up', 'tcp',
                                 1.0).as_doctor_event()
        self.assertEqual({'hostname', 'status', 'monitor',
                          'monitor_event_id'}, set(event['details']))

    def test_monitor_id_defaults_to_the_host_name(self):
        self.assertEqual(socket.gethostname(), base.monitor_id(self.conf))
        self.set_opts(group='monitor', monitor_id='rack-7-monitor')
        self.assertEqual('rack-7-monitor', base.monitor_id(self.conf))
