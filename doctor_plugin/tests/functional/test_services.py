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

"""The console scripts as an operator runs them: processes, config files."""

import os
import secrets
import signal
import subprocess
import sys
import time

import fixtures
import requests
import yaml

from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.testing import broker
from doctor_plugin.testing import consumer as consumer_mod
from doctor_plugin.testing import services
from doctor_plugin.tests.functional import base


free_port = services.free_port


class TestServices(base.FunctionalTestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.outputs = {}
        self.consumer = consumer_mod.ConsumerServer().start()
        self.addCleanup(self.consumer.stop)
        self.port = free_port()
        self.secret = secrets.token_hex(32)
        self.auth = {'X-Auth-Token': self.secret}
        topic = f'alarm.svc-{self.run_id}'
        self.write('pipeline.yaml', {
            'sources': [{'name': 'faults', 'events': ['compute.host.*'],
                         'sinks': ['bus']}],
            'sinks': [{'name': 'bus', 'notifiers': [
                f'messaging://?topic={topic}&notification_topic=',
                'log://']}]})
        self.write('topology.yaml', {'hosts': {'compute-7': [
            {'id': 'vm-a', 'project_id': 'tenant-a'},
            {'id': 'vm-b', 'project_id': 'tenant-b'}]}})
        self.write('alarms.yaml', {'alarms': [
            {'name': f'host-down-{t}', 'project_id': t,
             'event_rule': {'event_type': 'compute.host.down'},
             'alarm_actions': [f'{self.consumer.url}/{t}']}
            for t in ('tenant-a', 'tenant-b')]})
        with open(os.path.join(self.dir, 'doctor_plugin.conf'), 'w') as f:
            f.write(f"""[DEFAULT]
transport_url = {base.TRANSPORT_URL}
state_path = {self.dir}
pipeline_cfg_file = {self.dir}/pipeline.yaml
[inspector]
port = {self.port}
shared_secret = {self.secret}
topology_file = {self.dir}/topology.yaml
notification_topics = versioned_notifications.svc-{self.run_id}
notification_pool = doctor-inspector.svc-{self.run_id}
[alarms]
definitions_file = {self.dir}/alarms.yaml
[listener]
event_topics = {topic}
""")
        self.addCleanup(
            broker.delete_queues, base.TRANSPORT_URL,
            broker.listener_queue_names([topic])
            + [f'doctor-inspector.svc-{self.run_id}'])

    def write(self, name, data):
        with open(os.path.join(self.dir, name), 'w') as f:
            yaml.safe_dump(data, f)

    def spawn(self, script):
        # To a file, not a pipe: a pipe nobody reads fills up with the
        # service's log and blocks it, at the latest when it logs its stop.
        log = open(os.path.join(self.dir, f'{script}.log'), 'w+')
        proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), script),
             '--config-file', os.path.join(self.dir, 'doctor_plugin.conf')],
            stdout=log, stderr=subprocess.STDOUT, text=True)

        def stop():
            if log.closed:
                return
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    # Once, on a loaded 2-CPU machine, the listener took
                    # over 15 s; the log below says what it was doing.
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            log.seek(0)
            # What it said, for the assertions on its exit status.
            self.outputs[script] = log.read()
            log.close()
        self.addCleanup(stop)

        def output():
            with open(log.name) as f:
                return f.read()
        proc.output = output
        return proc, stop

    def wait_healthy(self, proc, url, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.fail(f'service exited with {proc.returncode}: '
                          f'{proc.output()}')
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.fail(f'{url} did not answer within {timeout} s')

    def test_inspector_and_listener_processes(self):
        listener, stop_listener = self.spawn('doctor-plugin-listener')
        inspector, stop_inspector = self.spawn('doctor-plugin-inspector')
        base_url = f'http://127.0.0.1:{self.port}'
        self.wait_healthy(inspector, f'{base_url}/healthz')
        # The listener has no HTTP endpoint: give it time to bind its queue.
        time.sleep(2)
        self.assertIsNone(listener.poll())
        fault = monitor_base.FaultReport('compute-7', 'down', 'functional',
                                         detected_at=time.time())
        resp = requests.put(f'{base_url}/events',
                            json=[fault.as_doctor_event()],
                            headers=self.auth, timeout=5)
        self.assertEqual(200, resp.status_code, resp.text)
        alarms = self.consumer.wait_for(2, timeout=15)
        self.assertEqual(['/tenant-a', '/tenant-b'],
                         sorted(a.path for a in alarms))
        for alarm in alarms:
            self.assertEqual(fault.monitor_event_id,
                             alarm.trait('monitor_event_id'))
        stop_inspector()
        stop_listener()
        self.assertEqual(0, inspector.returncode,
                         self.outputs['doctor-plugin-inspector'])
        self.assertEqual(0, listener.returncode,
                         self.outputs['doctor-plugin-listener'])

    def report(self, status='down', host='compute-7'):
        fault = monitor_base.FaultReport(host, status, 'functional',
                                         detected_at=time.time())
        resp = requests.put(f'http://127.0.0.1:{self.port}/events',
                            json=[fault.as_doctor_event()],
                            headers=self.auth, timeout=5)
        self.assertEqual(200, resp.status_code, resp.text)
        return fault

    def test_inspector_evaluates_alarms_itself(self):
        # The pipeline of etc/doctor_plugin/pipeline.yaml: bus and alarms.
        topic = f'alarm.svc-{self.run_id}'
        self.write('pipeline.yaml', {
            'sources': [{'name': 'faults', 'events': ['compute.host.*'],
                         'sinks': ['bus', 'alarms']}],
            'sinks': [{'name': 'bus', 'notifiers': [
                f'messaging://?topic={topic}&notification_topic=']},
                {'name': 'alarms', 'notifiers': ['alarms://']}]})
        inspector, stop_inspector = self.spawn('doctor-plugin-inspector')
        self.wait_healthy(inspector,
                          f'http://127.0.0.1:{self.port}/healthz')
        fault = self.report()
        alarms = self.consumer.wait_for(2, timeout=15)
        self.assertEqual(['/tenant-a', '/tenant-b'],
                         sorted(a.path for a in alarms))
        self.assertEqual({fault.monitor_event_id},
                         {a.trait('monitor_event_id') for a in alarms})
        # A new tenant alarm takes effect on SIGHUP, for the next fault.
        self.write('alarms.yaml', {'alarms': [
            {'name': 'host-down-tenant-b-v2', 'project_id': 'tenant-b',
             'event_rule': {'event_type': 'compute.host.down'},
             'alarm_actions': [f'{self.consumer.url}/tenant-b/v2']}]})
        inspector.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while ('Reloaded alarm definitions' not in inspector.output()
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertIn('Reloaded alarm definitions', inspector.output())
        self.consumer.clear()
        # The host recovers and fails again.
        self.report('up')
        self.report('down')
        (alarm,) = self.consumer.wait_for(1, timeout=15)
        self.assertEqual('/tenant-b/v2', alarm.path)
        stop_inspector()
        self.assertEqual(0, inspector.returncode,
                         self.outputs['doctor-plugin-inspector'])

    def test_no_shared_secret_is_a_startup_error(self):
        path = os.path.join(self.dir, 'doctor_plugin.conf')
        with open(path) as f:
            text = f.read()
        with open(path, 'w') as f:
            f.write(text.replace(f'shared_secret = {self.secret}\n', ''))
        proc, _ = self.spawn('doctor-plugin-inspector')
        proc.wait(timeout=30)
        out = proc.output()
        self.assertEqual(2, proc.returncode, out)
        self.assertIn('Set [inspector] shared_secret', out)
        self.assertIn('[monitor] inspector_secret', out)

    def test_misspelt_plugin_is_a_startup_error(self):
        self.write('pipeline.yaml', {
            'sources': [{'name': 'faults', 'events': ['*'],
                         'sinks': ['s']}],
            'sinks': [{'name': 's', 'notifiers': ['mesaging://']}]})
        proc, _ = self.spawn('doctor-plugin-inspector')
        proc.wait(timeout=30)
        out = proc.output()
        self.assertEqual(2, proc.returncode, out)
        self.assertIn("'mesaging'", out)
        self.assertIn('doctor_plugin.notifiers', out)
        self.assertIn('messaging', out.split('Available plugins:')[1])
        self.assertIn('pipeline.yaml', out)
