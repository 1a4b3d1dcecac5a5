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

"""Tests for doctor_plugin.inspector.service with Nova behind it.

The inspector runs whole: its HTTP API on loopback, the in-process fake://
bus, a pipeline publishing there, and the Nova stand-in (a real HTTP
server) as Nova, reached through the real keystoneauth1 client.
"""

import datetime
import threading
import time
import uuid

import fixtures
import requests

from doctor_plugin.common import messaging
from doctor_plugin import exceptions
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.testing import nova as nova_standin
from doctor_plugin.tests import base
from doctor_plugin.tests import notifications
from doctor_plugin.topology import hosts as topology_mod

#: Bound on every HTTP call and wait of these tests, in seconds.
TIMEOUT = 10

#: (id, tenant, host, name) of the stand-in's servers.
SERVERS = [('vm-1', 'tenant-a', 'compute-1', 'one'),
           ('vm-2', 'tenant-b', 'compute-1', 'two'),
           ('vm-3', 'tenant-a', 'compute-1', 'three'),
           ('vm-4', 'tenant-c', 'compute-2', 'four')]


def unique(prefix):
    return f'{prefix}-{uuid.uuid4().hex[:12]}'


def doctor_report(host, status, monitor_event_id):
    """A Doctor ``PUT /events`` body: one event from a monitor."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return [{'id': unique('report'),
             'time': now.strftime('%Y-%m-%dT%H:%M:%S.%fZ'),
             'type': 'compute.host.down',
             'details': {'hostname': host, 'status': status,
                         'monitor': 'test-monitor',
                         'monitor_event_id': monitor_event_id}}]


class ServiceTestCase(base.TestCase):
    """A configuration as the demo makes it, on the fake:// bus."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        messaging.cleanup()
        self.addCleanup(messaging.cleanup)
        self.set_opts(transport_url=messaging.FAKE_TRANSPORT_URL)
        self.set_opts(group='inspector', port=0,
                      enable_notification_listener=False)
        self.secret = chain_mod.use_shared_secret(self.conf)
        #: The headers of an authenticated request.
        self.auth = {'X-Auth-Token': self.secret}
        self.event_topic = unique('alarm.test')
        self.notification_topic = unique('notifications.test')

    def nova_options(self, nova):
        self.set_opts(group='inspector', topology_source='nova',
                      controller='nova')
        self.set_opts(group='nova', auth_type='none',
                      endpoint_override=nova.compute_url, retries=1,
                      retry_backoff=0.01, request_timeout=2.0,
                      fixup_deadline=5.0)

    def make_pipeline(self):
        pipeline = pipeline_mod.Pipeline(
            self.conf, pipeline_mod.PipelineDefinition.from_dict(
                {'sources': [{'name': 'everything', 'events': ['*'],
                              'sinks': ['bus']}],
                 'sinks': [{'name': 'bus', 'notifiers': [
                     f'messaging://?topic={self.event_topic}'
                     f'&notification_topic={self.notification_topic}']}]},
                '<test pipeline>'))
        return pipeline

    def listen(self):
        """What the pipeline publishes, one notification per event."""
        collector = notifications.NotificationRecorder()
        listener = messaging.get_listener(
            messaging.get_transport(self.conf), [self.notification_topic],
            [collector])
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        return collector

    def make_service(self, **kwargs):
        """A service whose pipeline is closed even if it fails to build."""
        pipeline = self.make_pipeline()
        try:
            return inspector_service.InspectorService(
                self.conf, pipeline=pipeline, timeline=self.timeline,
                **kwargs)
        except BaseException:
            pipeline.close()
            raise

    def start(self, service):
        service.start()
        self.addCleanup(service.stop)
        return service


class TestWithNova(ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.nova = nova_standin.NovaStandIn().start()
        self.addCleanup(self.nova.stop)
        self.nova.add_servers(SERVERS)
        self.nova_options(self.nova)

    def ids_on(self, service, host):
        return sorted(i.id for i in
                      service.engine.topology.instances_on(host))

    def put_events(self, service, body):
        resp = requests.put(service.url + '/events', json=body,
                            headers=self.auth, timeout=TIMEOUT)
        self.assertEqual(200, resp.status_code, resp.text)
        return resp.json()

    def test_topology_loaded_from_nova(self):
        service = self.start(self.make_service())
        self.assertIsNotNone(service.nova_client)
        self.assertIsNotNone(service.topology_sync)
        self.assertIs(service.topology_sync.topology,
                      service.engine.topology)
        self.assertTrue(service.topology_sync.loaded.is_set())
        self.assertEqual(['vm-1', 'vm-2', 'vm-3'],
                         self.ids_on(service, 'compute-1'))
        self.assertEqual(['vm-4'], self.ids_on(service, 'compute-2'))
        self.assertEqual(topology_mod.Instance(
            'vm-2', 'tenant-b', 'compute-1', 'two'),
            service.engine.topology.get('vm-2'))
        # Listed through the real client, all tenants.
        (call,) = self.nova.calls_to('GET', '/servers/detail')
        self.assertEqual('1', call.query['all_tenants'])
        self.assertIsNone(service.topology_listener)

    def test_fault_fans_out_then_nova_is_fixed_up_and_recovers(self):
        # The per-VM events too, which by default go in the event batch
        # only.
        self.set_opts('notifier', notification_event_types=['*'])
        collector = self.listen()
        service = self.start(self.make_service())
        self.assertIsNotNone(service.controller)

        reply = self.put_events(service, doctor_report('compute-1', 'down',
                                                       'fault-1'))
        # The host event, one per tenant (a, b), one per instance (3).
        self.assertEqual(6, reply['published'])

        def tenant_events():
            return [p for p in collector.of('compute.host.down')
                    if 'project_id' in p]

        self.assertTrue(collector.wait_until(
            lambda: len(tenant_events()) >= 2), collector.received)
        by_tenant = {p['project_id']: p for p in tenant_events()}
        self.assertEqual(['tenant-a', 'tenant-b'], sorted(by_tenant))
        self.assertEqual(['vm-1', 'vm-3'], sorted(
            by_tenant['tenant-a']['instance_ids'].split(',')))
        self.assertEqual(2, by_tenant['tenant-a']['instance_count'])
        self.assertEqual('vm-2', by_tenant['tenant-b']['instance_ids'])
        for payload in by_tenant.values():
            self.assertEqual('compute-1', payload['host'])
            self.assertEqual('fault-1', payload['monitor_event_id'])
        self.assertTrue(collector.wait_until(
            lambda: len(collector.of('compute.instance.update')) >= 3))
        self.assertEqual(['vm-1', 'vm-2', 'vm-3'], sorted(
            p['instance_id'] for p in
            collector.of('compute.instance.update')))

        result = service.controller.wait('fault-1', TIMEOUT)
        self.assertEqual('success', result.outcome, result.error)
        self.assertEqual(('compute-1', 'force_down'),
                         (result.host, result.action))
        self.assertEqual((3, 3, 0, 0),
                         (result.instances_total, result.instances_reset,
                          result.instances_missing,
                          result.instances_failed))
        self.assertTrue(self.nova.service('compute-1')['forced_down'])
        for server_id in ('vm-1', 'vm-2', 'vm-3'):
            self.assertEqual('ERROR', self.nova.server(server_id)['status'])
        # The other host is left alone.
        self.assertFalse(self.nova.service('compute-2')['forced_down'])
        self.assertEqual('ACTIVE', self.nova.server('vm-4')['status'])
        # The fix-up went out after the tenants' events, as its own event.
        self.assertTrue(collector.wait_until(
            lambda: collector.of('doctor.controller.result')))
        (published,) = collector.of('doctor.controller.result')
        self.assertEqual(('compute-1', 'success', 'fault-1'),
                         (published['host'], published['outcome'],
                          published['monitor_event_id']))
        kinds = [n['event_type'] for n in collector.received]
        self.assertLess(kinds.index('compute.host.down'),
                        kinds.index('doctor.controller.result'))

        self.put_events(service, doctor_report('compute-1', 'up',
                                               'fault-1-up'))
        result = service.controller.wait('fault-1-up', TIMEOUT)
        self.assertEqual('success', result.outcome, result.error)
        self.assertEqual('unforce', result.action)
        self.assertFalse(self.nova.service('compute-1')['forced_down'])
        # Recovery leaves the instances to the operator or the VNFM.
        self.assertEqual('ERROR', self.nova.server('vm-1')['status'])
        self.assertTrue(collector.wait_until(
            lambda: collector.of('compute.host.up')))
        puts = self.nova.calls_to('PUT', '/os-services/')
        self.assertEqual([True, False],
                         [call.body['forced_down'] for call in puts])

    def test_instance_notifications_keep_the_topology_current(self):
        topic = unique('versioned_notifications.test')
        self.set_opts(group='inspector', enable_notification_listener=True,
                      notification_topics=[topic],
                      notification_pool=unique('pool.events'),
                      topology_notification_pool=unique('pool.topology'),
                      # No periodic reload: only a notification can tell.
                      topology_resync_interval=0)
        service = self.start(self.make_service())
        self.assertIsNotNone(service.topology_listener)
        self.assertIsNone(service.engine.topology.get('vm-5'))
        self.nova.enable_notifications(messaging.FAKE_TRANSPORT_URL, topic)
        self.nova.add_server('vm-5', 'tenant-d', 'compute-2', 'five')
        self.nova.emit_instance_update('vm-5', 'instance.create.end')

        deadline = time.monotonic() + TIMEOUT
        while (service.engine.topology.get('vm-5') is None
               and time.monotonic() < deadline):
            time.sleep(0.01)
        created = service.engine.topology.get('vm-5')
        self.assertIsNotNone(created)
        self.assertEqual(('tenant-d', 'compute-2', 'five'),
                         (created.project_id, created.host, created.name))
        self.assertEqual(['vm-4', 'vm-5'], self.ids_on(service, 'compute-2'))
        # It came from the bus: Nova's API was read once, at start.
        self.assertEqual(1, len(self.nova.calls_to('GET',
                                                   '/servers/detail')))

    def test_given_topology_wins_over_nova(self):
        topology = topology_mod.HostTopology(
            [topology_mod.Instance('vm-x', 'tenant-x', 'compute-1')])
        service = self.start(self.make_service(topology=topology))
        self.assertIs(topology, service.engine.topology)
        self.assertIsNone(service.topology_sync)
        # The controller still needs Nova.
        self.assertIsNotNone(service.nova_client)
        self.assertIsNotNone(service.controller)
        self.assertEqual([], self.nova.calls_to('GET', '/servers/detail'))


class TestConfiguration(ServiceTestCase):

    def test_nova_without_auth_type_is_refused(self):
        for option in ('controller', 'topology_source'):
            self.conf.clear_override('controller', group='inspector')
            self.conf.clear_override('topology_source', group='inspector')
            self.set_opts(group='inspector', **{option: 'nova'})
            exc = self.assertRaises(exceptions.ConfigurationError,
                                    self.make_service)
            self.assertIn('auth_type', str(exc), option)
            self.assertEqual('[nova]', exc.source)

    def test_defaults_use_no_nova(self):
        self.assertEqual('file', self.conf.inspector.topology_source)
        self.assertEqual('none', self.conf.inspector.controller)
        service = self.start(self.make_service())
        self.assertIsNone(service.controller)
        self.assertIsNone(service.nova_client)
        self.assertIsNone(service.topology_sync)
        self.assertIsNone(service.topology_listener)
        self.assertIsNone(service.engine.controller)
        self.assertEqual(0, len(service.engine.topology))
        resp = requests.get(service.url + '/healthz', timeout=TIMEOUT)
        self.assertEqual({'status': 'ok'}, resp.json())

    def test_stop_before_start_returns(self):
        # A service whose start() failed (say, the broker was unreachable)
        # is stopped by its caller: that must not hang.
        service = self.make_service()
        stopper = threading.Thread(target=service.stop, daemon=True)
        stopper.start()
        stopper.join(5)
        self.assertFalse(stopper.is_alive(), 'stop() hangs before start()')
