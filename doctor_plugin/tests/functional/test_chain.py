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

"""The Doctor chain over the real RabbitMQ with real HTTP consumers."""

import contextlib
import io
import json
import time

import oslo_messaging
import requests

from doctor_plugin.cmd import cli
from doctor_plugin.common import messaging
from doctor_plugin import demo
from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.testing import broker
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.tests.functional import base


def auth_headers(chain):
    """What the chain's monitors send to authenticate to its inspector."""
    return {'X-Auth-Token': chain.conf.monitor.inspector_secret}


class TestChainOverRabbit(base.FunctionalTestCase):

    def _chain(self, **kwargs):
        settings = chain_mod.ChainSettings(
            transport_url=base.TRANSPORT_URL,
            event_topic=f'alarm.test-{self.run_id}', **kwargs)
        chain = chain_mod.Chain(settings, self.timeline).start()
        self.addCleanup(chain.stop)
        return chain

    def test_demo_over_rabbit(self):
        out = io.StringIO()
        settings = chain_mod.ChainSettings(
            transport_url=base.TRANSPORT_URL, vms=30, tenants=3,
            event_topic=f'alarm.test-{self.run_id}')
        rc = demo.run_demo(settings, timeout=10,
                           write=lambda line: out.write(line + '\n'))
        text = out.getvalue()
        self.assertEqual(0, rc, text)
        self.assertIn('T09', text)
        self.assertIn('notification time T09 − T01', text)
        self.assertIn('received 3 alarm(s)', text)
        self.assertIn('"current": "alarm"', text)

    def test_demo_command_runs_the_stand_ins_apart(self):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(['demo', '--transport-url', base.TRANSPORT_URL,
                           '--vms', '12', '--tenants', '3',
                           '--timeout', '10'])
        text = out.getvalue()
        self.assertEqual(0, rc, text + err.getvalue())
        self.assertIn('received 3 alarm(s)', text)
        self.assertIn('Nova fix-up: success', text)
        # The inspector evaluated the alarms itself.
        self.assertIn('T07', text)
        self.assertIn('T08', text)

    def test_demo_with_the_alarms_evaluated_across_the_bus(self):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(['demo', '--transport-url', base.TRANSPORT_URL,
                           '--vms', '12', '--tenants', '3',
                           '--alarms-in', 'listener', '--timeout', '10'])
        text = out.getvalue()
        self.assertEqual(0, rc, text + err.getvalue())
        self.assertIn('received 3 alarm(s)', text)
        # The listener is a process of its own over a real broker.
        self.assertIn('T07 and T08 are marked in the alarm listener', text)

    def test_host_fault_reaches_every_tenant(self):
        chain = self._chain(vms=12, tenants=4)
        fault = monitor_base.FaultReport('compute-0', 'down', 'functional',
                                         detected_at=time.time())
        self.timeline.mark(fault.monitor_event_id, 'T01', fault.detected_at)
        resp = requests.put(f'{chain.inspector.url}/events',
                            json=[fault.as_doctor_event()],
                            headers=auth_headers(chain), timeout=5)
        self.assertEqual(200, resp.status_code, resp.text)
        alarms = chain.consumer.wait_for(4, timeout=10)
        self.assertEqual(4, len(alarms))
        paths = sorted(a.path for a in alarms)
        self.assertEqual([f'/tenants/tenant-{t:03d}' for t in range(4)],
                         paths)
        for alarm in alarms:
            tenant = alarm.path.rsplit('/', 1)[1]
            self.assertEqual(tenant, alarm.trait('project_id'))
            self.assertEqual(3, alarm.trait('instance_count'))
            ids = alarm.trait('instance_ids').split(',')
            # Round-robin placement: tenant t owns vm t, t+4, t+8.
            t = int(tenant.rsplit('-', 1)[1])
            self.assertEqual([f'vm-{i:06d}' for i in (t, t + 4, t + 8)],
                             ids)
            self.assertEqual('critical', alarm.body['severity'])
            self.assertEqual('insufficient data', alarm.body['previous'])
            self.assertEqual('alarm', alarm.body['current'])
            self.assertEqual('event', alarm.body['reason_data']['type'])
        self.assertIsNotNone(
            self.timeline.notification_time(fault.monitor_event_id))

    def test_invalid_report_reaches_nobody(self):
        chain = self._chain(vms=4, tenants=2)
        bad = monitor_base.FaultReport('compute-0', 'down', 'functional',
                                       detected_at=time.time())
        body = bad.as_doctor_event()
        body['details']['status'] = 'broken'
        resp = requests.put(f'{chain.inspector.url}/events', json=[body],
                            headers=auth_headers(chain), timeout=5)
        self.assertEqual(400, resp.status_code)
        self.assertEqual('0.details.status',
                         resp.json()['error']['field'])
        self.assertEqual([], chain.consumer.wait_for(1, timeout=1.0))

    def test_nova_service_update_on_the_bus(self):
        topic = f'versioned_notifications.test-{self.run_id}'
        chain = self._chain(vms=6, tenants=2, nova_topic=topic)
        # Nova's notifier declares the queue it sends to.
        self.addCleanup(broker.delete_queues, base.TRANSPORT_URL,
                        broker.listener_queue_names([topic]))
        nova = oslo_messaging.Notifier(
            messaging.get_transport(chain.conf), publisher_id='nova-compute:'
            'compute-0', driver='messagingv2', topics=[topic])
        time.sleep(0.5)
        nova.info({}, 'service.update', {
            'nova_object.name': 'ServiceStatusPayload',
            'nova_object.namespace': 'nova',
            'nova_object.version': '1.1',
            'nova_object.data': {
                'host': 'compute-0', 'binary': 'nova-compute',
                'topic': 'compute', 'report_count': 42,
                'disabled': False, 'disabled_reason': None,
                'availability_zone': None, 'last_seen_version': 66,
                'forced_down': True, 'version': 66,
                'uuid': 'fa69c544-906b-4a6a-a9c6-c1f7a8078c73'}})
        alarms = chain.consumer.wait_for(2, timeout=10)
        self.assertEqual(2, len(alarms), [a.body for a in alarms])
        self.assertEqual({'compute-0'}, {a.trait('host') for a in alarms})
        event = alarms[0].body['reason_data']['event']
        self.assertEqual('compute.host.down', event['event_type'])
        json.dumps(event)
