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

"""doctor_plugin inside real Ceilometer and Aodh, over the real RabbitMQ.

Run by ``tox -e interop``, which installs released aodh and ceilometer
beside doctor_plugin. Each test runs their own code in this process:
Ceilometer's event pipeline manager, Aodh's event alarm evaluator and
alarm notifier services with SQLite storage.
"""

import datetime
import os
from urllib import parse as urlparse
import uuid

import fixtures
import yaml

from doctor_plugin.bench import real_aodh
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin.integrations import aodh as aodh_integration
from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin.testing import broker
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.testing import config
from doctor_plugin.testing import consumer
from doctor_plugin.tests import alarm_files
from doctor_plugin.tests.functional import base
from doctor_plugin.topology import hosts as topology

TIMEOUT = 30


class InteropTestCase(base.FunctionalTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.dir = self.useFixture(fixtures.TempDir()).path
        self.receiver = consumer.ConsumerServer().start()
        self.addCleanup(self.receiver.stop)
        self.event_topic = f'alarm.interop-{self.run_id}'

    def start_inspector(self, bus=False):
        """Our inspector, with the tenants' alarms in alarms://.

        With ``bus``, it also publishes on ``event_topic``, where Aodh
        listens.
        """
        conf = self.useFixture(config.ConfFixture()).conf
        conf.set_override('transport_url', base.TRANSPORT_URL)
        # Its delivery database in the test's directory, not /var/lib.
        conf.set_override('state_path', self.dir)
        conf.set_override('port', 0, group='inspector')
        conf.set_override('enable_notification_listener', False,
                          group='inspector')
        self.secret = chain_mod.use_shared_secret(conf)
        path = alarm_files.write_tenant_alarms(
            self.dir, self.receiver.url, 'vm-x', 'tenant-c')
        sinks = [{'name': 'alarms', 'notifiers': [f'alarms://{path}']}]
        if bus:
            sinks.append({'name': 'bus', 'notifiers': [
                f'messaging://?topic={self.event_topic}'
                f'&notification_topic=']})
        pipe = pipeline_mod.Pipeline(
            conf, pipeline_mod.PipelineDefinition.from_dict(
                {'sources': [{'name': 'all', 'events': ['compute.*'],
                              'sinks': [s['name'] for s in sinks]}],
                 'sinks': sinks}))
        topo = topology.HostTopology([
            topology.Instance('vm-1', 'tenant-a', 'compute-1'),
            topology.Instance('vm-2', 'tenant-b', 'compute-1')])
        service = inspector_service.InspectorService(conf, pipeline=pipe,
                                                     topology=topo)
        service.start()
        self.addCleanup(service.stop)
        self.addCleanup(broker.delete_queues, base.TRANSPORT_URL,
                        broker.listener_queue_names([self.event_topic]))
        return service

    def start_aodh(self):
        aodh = real_aodh.AodhInProcess(base.TRANSPORT_URL,
                                       event_topic=self.event_topic)
        return aodh

    def paths(self, count):
        received = self.receiver.wait_for(count, TIMEOUT)
        self.assertEqual(count, len(received),
                         [a.path for a in received])
        return sorted(a.path for a in received)


class TestCeilometerPublisher(InteropTestCase):
    """(1) Ceilometer's event pipeline loads doctor:// by name."""

    def test_ceilometer_events_reach_our_inspector(self):
        from ceilometer.pipeline import event as ceilometer_event
        from ceilometer import service as ceilometer_service

        inspector = self.start_inspector()
        netloc = urlparse.urlsplit(inspector.url).netloc
        secret_file = os.path.join(self.dir, 'doctor-secret')
        with open(secret_file, 'w') as f:
            f.write(self.secret)
        path = os.path.join(self.dir, 'event_pipeline.yaml')
        with open(path, 'w') as f:
            yaml.safe_dump({
                'sources': [{'name': 'instances',
                             'events': ['compute.instance.*'],
                             'sinks': ['doctor']}],
                'sinks': [{'name': 'doctor',
                           'publishers': [f'doctor://{netloc}?secret_file='
                                          f'{secret_file}']}]}, f)
        conf = ceilometer_service.prepare_service(argv=['interop'],
                                                  config_files=[])
        conf.set_override('event_pipeline_cfg_file', path)
        manager = ceilometer_event.EventPipelineManager(conf)
        (sink,) = manager.pipelines
        self.assertEqual(['DoctorEventPublisher'],
                         [type(p).__name__ for p in sink.publishers])
        (endpoint,) = manager.get_main_endpoints()
        # A Nova notification as ceilometer-agent-notification takes it.
        endpoint.info([{
            'ctxt': {}, 'publisher_id': 'nova-compute.compute-1',
            'event_type': 'compute.instance.update', 'priority': 'info',
            'payload': {'instance_id': 'vm-x', 'tenant_id': 'tenant-c',
                        'state': 'error', 'host': 'compute-1'},
            'metadata': {'message_id': str(uuid.uuid4()),
                         'timestamp': datetime.datetime.utcnow()
                         .isoformat()}}])
        self.assertEqual(['/vm-x'], self.paths(1))
        (alarm,) = self.receiver.alarms
        self.assertEqual('vm-x-error', alarm.body['alarm_name'])
        self.assertEqual('tenant-c', alarm.trait('tenant_id'))


class TestAodhNotifier(InteropTestCase):
    """(2) Aodh's notifier loads doctor:// by the action's scheme."""

    def test_an_aodh_alarm_reports_a_host_fault(self):
        inspector = self.start_inspector()
        netloc = urlparse.urlsplit(inspector.url).netloc
        aodh = self.start_aodh()
        # As in aodh.conf: the secret, and the inspector it is for.
        aodh.conf.register_opts(aodh_integration.OPTS,
                                group=aodh_integration.GROUP)
        aodh.conf.set_override('inspector_secret', self.secret,
                               group=aodh_integration.GROUP)
        aodh.conf.set_override('inspectors', [netloc],
                               group=aodh_integration.GROUP)
        alarm_id = aodh.add_event_alarm(
            'compute-1-dead', 'admin', 'hardware.host.failure', [],
            [f'doctor://{netloc}?hostname=compute-1'])
        aodh.start()
        self.addCleanup(aodh.stop)
        aodh.send_alarm(alarm_id, 'alarm', 'compute-1 stopped answering',
                        {'type': 'threshold'})
        # Our inspector took it as a host fault and told both tenants.
        self.assertEqual(['/tenant-a', '/tenant-b'], self.paths(2))
        self.assertEqual({'aodh:compute-1-dead'},
                         {a.trait('monitor') for a in self.receiver.alarms})


class TestAodhEvaluatesOurEvents(InteropTestCase):
    """(3) A real Aodh event alarm fires on what messaging:// emits."""

    def test_doctors_per_vm_alarm_fires_in_aodh(self):
        inspector = self.start_inspector(bus=True)
        aodh = self.start_aodh()
        aodh_alarm = aodh.add_event_alarm(
            'vm-1-error', 'tenant-a', 'compute.instance.update',
            [{'field': 'traits.instance_id', 'op': 'eq', 'value': 'vm-1',
              'type': 'string'},
             {'field': 'traits.state', 'op': 'eq', 'value': 'error',
              'type': 'string'}],
            [f'{self.receiver.url}/aodh/vm-1'])
        aodh.start()
        self.addCleanup(aodh.stop)
        conf = self.useFixture(config.ConfFixture()).conf
        conf.set_override('inspector_url', inspector.url + '/events',
                          group='monitor')
        conf.set_override('inspector_secret', self.secret, group='monitor')
        fault = monitor_base.FaultReport('compute-1', 'down', 'interop',
                                         detected_at=0.0)
        reporter_mod.InspectorReporter(conf)(fault)
        # Our tenants, from alarms://, and Aodh's per-VM alarm, from the
        # events on the bus.
        self.assertEqual(['/aodh/vm-1', '/tenant-a', '/tenant-b'],
                         self.paths(3))
        (from_aodh,) = [a for a in self.receiver.alarms
                        if a.path == '/aodh/vm-1']
        self.assertEqual(aodh_alarm, from_aodh.body['alarm_id'])
        self.assertEqual('alarm', from_aodh.body['current'])
        self.assertEqual('vm-1', from_aodh.trait('instance_id'))
        self.assertEqual(fault.monitor_event_id,
                         from_aodh.trait('monitor_event_id'))
        self.assertEqual('alarm', aodh.alarm_state(aodh_alarm))
