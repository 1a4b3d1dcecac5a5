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

"""Tests of the doctor:// plugins for Ceilometer and Aodh.

The inspector runs whole (HTTP API on loopback, fake:// bus, an alarms://
sink) with a real consumer webhook behind it; the plugins are called as
Ceilometer and Aodh call them. Their own processes are in the interop
tests (tox -e interop).
"""

import copy
import os
from urllib import parse as urlparse
import uuid

import fixtures
from oslo_config import cfg
import requests

from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin.integrations import aodh
from doctor_plugin.integrations import ceilometer
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin.testing import consumer
from doctor_plugin.tests import alarm_files
from doctor_plugin.tests.unit.inspector import test_service
from doctor_plugin.tests.unit.transformers import test_alertmanager
from doctor_plugin.tests.unit.transformers import test_libvirt
from doctor_plugin.topology import hosts as topology

TIMEOUT = 10


class InspectorTestCase(test_service.ServiceTestCase):
    """The service's test set-up (fake:// bus, port 0), with alarms://."""

    def setUp(self):
        super().setUp()
        self.set_opts(group='notifier', webhook_max_retries=0)
        self.receiver = consumer.ConsumerServer().start()
        self.addCleanup(self.receiver.stop)
        tmp = self.useFixture(fixtures.TempDir()).path
        path = alarm_files.write_tenant_alarms(tmp, self.receiver.url,
                                               'vm-1', 'tenant-a')
        self.secret_file = os.path.join(tmp, 'inspector-secret')
        with open(self.secret_file, 'w') as f:
            f.write(self.secret + '\n')
        pipe = pipeline_mod.Pipeline(
            self.conf, pipeline_mod.PipelineDefinition.from_dict(
                {'sources': [{'name': 'all', 'events': ['compute.*'],
                              'sinks': ['alarms']}],
                 'sinks': [{'name': 'alarms', 'notifiers': [
                     f'alarms://{path}']}]}))
        topo = topology.HostTopology([
            topology.Instance('vm-1', 'tenant-a', 'compute-1'),
            topology.Instance('vm-2', 'tenant-b', 'compute-1')])
        self.conf.set_override('instance_events', False, group='inspector')
        self.service = inspector_service.InspectorService(
            self.conf, pipeline=pipe, topology=topo, timeline=self.timeline)
        self.service.start()
        self.addCleanup(self.service.stop)
        self.netloc = urlparse.urlsplit(self.service.url).netloc

    def paths(self, count):
        return sorted(a.path for a in self.receiver.wait_for(count,
                                                             TIMEOUT))


class TestCeilometerPublisher(InspectorTestCase):

    def publisher(self, url=None):
        return ceilometer.DoctorEventPublisher(
            None, urlparse.urlsplit(
                url or f'doctor://{self.netloc}?secret_file='
                       f'{self.secret_file}'))

    def test_loads_by_scheme_from_ceilometers_namespace(self):
        publisher = plugins.load_driver(
            'ceilometer.event.publisher', 'doctor', None,
            urlparse.urlsplit(f'doctor://{self.netloc}'))
        self.assertIsInstance(publisher, ceilometer.DoctorEventPublisher)

    def test_events_reach_the_inspectors_alarms(self):
        # Ceilometer's Event has the attributes of ours.
        self.publisher().publish_events([event_model.Event.create(
            'compute.instance.update',
            {'instance_id': 'vm-1', 'state': 'error',
             'tenant_id': 'tenant-a'})])
        self.assertEqual(['/vm-1'], self.paths(1))

    def test_a_host_event_is_fanned_out_per_tenant(self):
        self.publisher().publish_events([event_model.Event.create(
            'compute.host.down', {'host': 'compute-1',
                                  'monitor_event_id': str(uuid.uuid4())})])
        self.assertEqual(['/tenant-a', '/tenant-b'], self.paths(2))

    def test_serialized_as_ceilometer_sends_events(self):
        ev = event_model.Event.create('compute.host.down',
                                      {'host': 'c', 'count': 2})
        self.assertEqual(ev.serialize(), ceilometer.serialize(ev))

    def test_malformed_events_get_a_400_naming_them(self):
        resp = requests.put(self.service.url + '/events/ceilometer',
                            json=[{'event_type': 'x'}], headers=self.auth,
                            timeout=TIMEOUT)
        self.assertEqual(400, resp.status_code)
        self.assertEqual('0', resp.json()['error']['field'])
        self.assertIn('message_id', resp.json()['error']['message'])

    def test_urls_without_inspector_or_with_unknown_options(self):
        for url, fragment in (('doctor://', 'doctor://HOST:PORT'),
                              (f'doctor://{self.netloc}?x=1', 'x'),
                              (f'doctor://{self.netloc}?scheme=ftp', 'ftp'),
                              (f'doctor://{self.netloc}?timeout=s',
                               'numbers')):
            exc = self.assertRaises(exceptions.ConfigurationError,
                                    self.publisher, url)
            self.assertIn(fragment, str(exc))

    def test_samples_are_refused(self):
        self.assertRaises(NotImplementedError,
                          self.publisher().publish_samples, [])

    def test_unreachable_inspector_raises(self):
        with self.assertLogs(ceilometer.LOG.logger.name, 'ERROR'):
            self.assertRaises(
                exceptions.DeliveryError,
                self.publisher('doctor://127.0.0.1:9?retries=0').
                publish_events, [event_model.Event.create('x', {})])


class TestAodhNotifier(InspectorTestCase):

    def setUp(self):
        super().setUp()
        # Aodh's configuration, read from its file: aodh-notifier never
        # runs our prepare_service, so the notifier registers its [doctor]
        # options on Aodh's configuration itself.
        path = self.useFixture(fixtures.TempDir()).join('aodh.conf')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(f'[{aodh.GROUP}]\ninspector_secret = {self.secret}\n'
                    f'inspectors = {self.netloc}\n')
        aodh_conf = cfg.ConfigOpts()
        aodh_conf(['--config-file', path], project='aodh',
                  default_config_files=[])
        self.notifier = plugins.load_driver('aodh.notifier', 'doctor',
                                            aodh_conf)

    def notify(self, current, url=None, reason_data=None):
        self.notifier.notify(
            urlparse.urlsplit(url or f'doctor://{self.netloc}'
                                     f'?hostname=compute-1'),
            str(uuid.uuid4()), 'compute-1-dead', 'critical', 'ok', current,
            'threshold crossed', reason_data or {'type': 'threshold'})

    def test_alarm_reports_the_host_down(self):
        self.notify('alarm')
        self.assertEqual(['/tenant-a', '/tenant-b'], self.paths(2))
        self.assertEqual('down', self.service.engine.hosts.state(
            'compute-1'))

    def test_ok_reports_it_up(self):
        self.notify('alarm')
        self.paths(2)
        self.notify('ok')
        self.assertEqual('up', self.service.engine.hosts.state('compute-1'))

    def test_insufficient_data_reports_nothing(self):
        self.notify('insufficient data')
        self.assertIsNone(self.service.engine.hosts.state('compute-1'))

    def test_host_from_an_event_alarms_event(self):
        self.notify('alarm', url=f'doctor://{self.netloc}', reason_data={
            'type': 'event', 'event': {'traits': [
                ['node', 1, 'compute-1']]}})
        self.assertEqual(['/tenant-a', '/tenant-b'], self.paths(2))

    def test_no_host_is_logged_not_reported(self):
        with self.assertLogs(aodh.LOG.logger.name, 'ERROR') as cm:
            self.notify('alarm', url=f'doctor://{self.netloc}')
        self.assertIn('?hostname=', cm.output[0])
        self.assertIsNone(self.service.engine.hosts.state('compute-1'))


class TestMonitoringPaths(InspectorTestCase):
    """Alertmanager's and collectd's webhooks on the inspector's API."""

    def post(self, path, body):
        return requests.post(self.service.url + path, json=body,
                             headers=self.auth, timeout=TIMEOUT)

    def test_alertmanager_alert_fans_out_to_the_tenants(self):
        payload = copy.deepcopy(test_alertmanager.ALERTMANAGER)
        payload['alerts'][0]['labels']['instance'] = 'compute-1:9100'
        resp = self.post('/events/alertmanager', payload)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual(1, len(resp.json()['events']))
        self.assertEqual(['/tenant-a', '/tenant-b'], self.paths(2))
        self.assertEqual({'alertmanager'},
                         {a.trait('monitor') for a in self.receiver.alarms})

    def test_collectd_notification_fans_out_to_the_tenants(self):
        payload = copy.deepcopy(test_alertmanager.COLLECTD)
        payload[0]['labels']['instance'] = 'compute-1'
        resp = self.post('/events/collectd', payload)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual(['/tenant-a', '/tenant-b'], self.paths(2))

    def test_malformed_gets_a_400_naming_the_field(self):
        payload = copy.deepcopy(test_alertmanager.ALERTMANAGER)
        payload['alerts'][0]['status'] = 'pending'
        resp = self.post('/events/alertmanager', payload)
        self.assertEqual(400, resp.status_code)
        self.assertEqual('alerts.0.status', resp.json()['error']['field'])

    def test_each_path_has_its_method(self):
        resp = requests.put(self.service.url + '/events/alertmanager',
                            json={}, headers=self.auth, timeout=TIMEOUT)
        self.assertEqual(405, resp.status_code)
        self.assertEqual('POST', resp.headers['Allow'])
        resp = requests.get(self.service.url + '/nothing', headers=self.auth,
                            timeout=TIMEOUT)
        self.assertIn('POST /events/collectd', resp.json()['error']
                      ['message'])

    def test_libvirt_crash_fires_the_vms_alarm_with_its_project(self):
        # The agent knows the domain, the inspector's topology its tenant.
        resp = self.post('/events/libvirt', test_libvirt.CRASH)
        self.assertEqual(200, resp.status_code, resp.text)
        self.assertEqual(['/vm-1'], self.paths(1))
        (alarm,) = self.receiver.alarms
        self.assertEqual('tenant-a', alarm.trait('project_id'))
        self.assertEqual('stopped/crashed', alarm.trait('cause'))


class TestMonitorOnTheBus(InspectorTestCase):
    """A monitor with report_to = bus.

    The inspector's doctor transformer takes the report off the (fake://)
    bus.
    """

    def setUp(self):
        self.bus_topic = f'doctor_monitor.{uuid.uuid4().hex[:8]}'
        super().setUp()

    def start_listener(self):
        from doctor_plugin.inspector import listener as listener_mod
        self.conf.set_override('notification_topics', [self.bus_topic],
                               group='inspector')
        listener = listener_mod.NotificationListener(
            self.conf, self.service.engine,
            [plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE, 'doctor',
                                 self.conf)])
        listener.start()
        self.addCleanup(listener.stop)

    def test_bus_report_reaches_the_tenants(self):
        from doctor_plugin.monitors import base as monitor_base
        from doctor_plugin.monitors import reporter as reporter_mod
        self.start_listener()
        self.set_opts(group='monitor', report_to='bus',
                      notification_topic=self.bus_topic)
        reporter = reporter_mod.make_reporter(self.conf)
        self.assertIsInstance(reporter, reporter_mod.BusReporter)
        reporter(monitor_base.FaultReport('compute-1', 'down', 'heartbeat',
                                          detected_at=1.0e9))
        self.assertEqual(['/tenant-a', '/tenant-b'], self.paths(2))
