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

"""Tests for doctor_plugin.topology.nova."""

import copy
import threading
import time

import fixtures
import oslo_messaging

from doctor_plugin.common import messaging
from doctor_plugin import exceptions
from doctor_plugin.nova import client as nova_client
from doctor_plugin.testing import nova as nova_standin
from doctor_plugin.tests import base
from doctor_plugin.topology import hosts as topology
from doctor_plugin.topology import nova as nova_topology

T0 = '2024-05-01T10:00:00Z'
T1 = '2024-05-01T10:00:01Z'
T2 = '2024-05-01T10:00:02Z'
T3 = '2024-05-01T10:00:03Z'

TENANT = '6f70656e737461636b20342065766572'
VM1 = '178b0921-8f85-4257-88b6-2e743b5a975c'
VM2 = '2a5b5b5e-7e0b-4a1e-9d5c-8a1b2c3d4e5f'
VM3 = '3c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f'

# The shape of Nova's InstanceActionPayload 1.x (doc/notification_samples),
# trimmed of the nested objects the sync does not read.
ACTION_PAYLOAD = {
    'nova_object.name': 'InstanceActionPayload',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.8',
    'nova_object.data': {
        'architecture': 'x86_64',
        'availability_zone': 'nova',
        'created_at': '2012-10-29T13:42:11Z',
        'deleted_at': None,
        'display_name': 'some-server',
        'display_description': 'some-server',
        'fault': None,
        'host': 'compute',
        'host_name': 'some-server',
        'ip_addresses': [],
        'key_name': 'my-key',
        'launched_at': '2012-10-29T13:42:11Z',
        'image_uuid': '155d900f-4e14-4e4c-a73d-069cbf4541e6',
        'metadata': {},
        'locked': False,
        'node': 'fake-mini',
        'os_type': None,
        'progress': 0,
        'reservation_id': 'r-npxv0e40',
        'state': 'active',
        'task_state': None,
        'power_state': 'running',
        'tenant_id': TENANT,
        'terminated_at': None,
        'auto_disk_config': 'MANUAL',
        'updated_at': '2012-10-29T13:42:11Z',
        'user_id': 'fake',
        'uuid': VM1,
        'request_id': 'req-5b6c791d-5709-4f36-8fbe-c3e02869e35d',
        'action_initiator_user': 'fake',
        'action_initiator_project': TENANT,
    },
}


def payload(uuid=VM1, host='compute-1', state='active', updated_at=T1,
            name='server-1', tenant_id=TENANT, object_name=None, **data):
    body = copy.deepcopy(ACTION_PAYLOAD)
    body['nova_object.data'].update(
        uuid=uuid, host=host, node=host, state=state, updated_at=updated_at,
        display_name=name, tenant_id=tenant_id, **data)
    if object_name:
        body['nova_object.name'] = object_name
    return body


def server(uuid, host, updated=T0, status='ACTIVE', tenant_id=TENANT,
           name='server'):
    return {'id': uuid, 'tenant_id': tenant_id, 'name': name,
            'status': status, 'OS-EXT-SRV-ATTR:host': host,
            'updated': updated}


class FakeSource:
    """Nova's server list, paged; ``during`` runs after the first page."""

    def __init__(self, servers=(), page_size=2):
        self.servers = list(servers)
        self.page_size = page_size
        self.during = None
        self.fail = None
        self.calls = 0

    def list_servers(self, host=None, page_size=1000):
        self.calls += 1
        if self.fail:
            raise self.fail
        servers = list(self.servers)
        for i, srv in enumerate(servers):
            if i == self.page_size and self.during:
                self.during()
            yield srv
        if len(servers) <= self.page_size and self.during:
            self.during()


class SyncTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.now = 1000.0
        self.source = FakeSource()
        self.sync = nova_topology.NovaTopologySync(
            self.conf, self.source, clock=lambda: self.now)
        self.topology = self.sync.topology
        self.logger = self.useFixture(fixtures.FakeLogger(
            name='doctor_plugin.topology.nova'))

    def notify(self, event_type='instance.update', body=None, metadata=None,
               priority='info', **kwargs):
        body = body if body is not None else payload(**kwargs)
        return getattr(self.sync.endpoint, priority)(
            {}, 'nova-compute:compute-1', event_type, body,
            metadata or {'message_id': 'msg-1',
                         'timestamp': '2024-05-01 10:00:00.000000'})

    def where(self, instance_id):
        inst = self.topology.get(instance_id)
        return inst.host if inst else None


class TestNotifications(SyncTestCase):

    def test_create_end_adds(self):
        self.assertIsNone(self.notify('instance.create.end',
                                      object_name='InstanceCreatePayload'))
        inst = self.topology.get(VM1)
        self.assertEqual(topology.Instance(VM1, TENANT, 'compute-1',
                                           'server-1'), inst)
        self.assertEqual(1714557601.0, inst.updated)
        self.assertEqual((inst,), self.topology.instances_on('compute-1'))

    def test_host_changes_move(self):
        self.notify('instance.create.end', updated_at=T0)
        for event_type, host, at in (
                ('instance.live_migration_post.end', 'compute-2', T1),
                ('instance.evacuate', 'compute-3', T2),
                ('instance.resize_finish.end', 'compute-4', T3)):
            self.notify(event_type, host=host, updated_at=at)
            self.assertEqual(host, self.where(VM1), event_type)
            self.assertEqual([host], self.topology.hosts)

    def test_instance_update_payload(self):
        self.notify('instance.update', object_name='InstanceUpdatePayload',
                    state_update={'nova_object.data': {'state': 'active'}})
        self.assertEqual('compute-1', self.where(VM1))

    def test_delete_end_removes(self):
        self.notify('instance.create.end', updated_at=T0)
        self.notify('instance.delete.end', state='deleted', updated_at=T1)
        self.assertIsNone(self.topology.get(VM1))
        self.assertEqual([], self.topology.hosts)

    def test_soft_delete_and_shelve_offload_leave_the_host(self):
        self.notify('instance.create.end', updated_at=T0)
        self.notify('instance.create.end', uuid=VM2, updated_at=T0)
        self.notify('instance.soft_delete.end', state='soft-delete',
                    updated_at=T1)
        self.notify('instance.shelve_offload.end', uuid=VM2, host=None,
                    state='shelved_offloaded', updated_at=T1)
        self.assertEqual(0, len(self.topology))

    def test_restore_after_soft_delete(self):
        self.notify('instance.soft_delete.end', state='soft-delete',
                    updated_at=T1)
        self.notify('instance.restore.end', updated_at=T2)
        self.assertEqual('compute-1', self.where(VM1))

    def test_unshelve_after_offload(self):
        self.notify('instance.shelve_offload.end', host=None,
                    state='shelved_offloaded', updated_at=T1)
        self.notify('instance.unshelve.end', host='compute-5',
                    updated_at=T2)
        self.assertEqual('compute-5', self.where(VM1))

    def test_older_notification_does_not_overwrite(self):
        self.notify('instance.live_migration_post.end', host='compute-2',
                    updated_at=T2)
        self.notify('instance.update', host='compute-1', updated_at=T1)
        self.assertEqual('compute-2', self.where(VM1))

    def test_same_time_last_arrival_wins(self):
        self.notify(host='compute-1', updated_at=T1)
        self.notify(host='compute-2', updated_at=T1)
        self.assertEqual('compute-2', self.where(VM1))

    def test_create_after_its_delete_does_not_resurrect(self):
        self.notify('instance.delete.end', state='deleted', updated_at=T2)
        self.notify('instance.create.end', updated_at=T1)
        # Even one claiming a later time: a deleted instance is gone.
        self.notify('instance.update', updated_at=T3)
        self.assertIsNone(self.topology.get(VM1))

    def test_older_restore_after_soft_delete_is_ignored(self):
        self.notify('instance.soft_delete.end', state='soft-delete',
                    updated_at=T2)
        self.notify('instance.restore.end', updated_at=T1)
        self.assertIsNone(self.topology.get(VM1))

    def test_delete_is_final_whatever_its_time(self):
        self.notify('instance.update', updated_at=T3)
        self.notify('instance.delete.end', state='deleted', updated_at=T1)
        self.assertIsNone(self.topology.get(VM1))

    def test_falls_back_to_the_notification_timestamp(self):
        body = payload(host='compute-2')
        del body['nova_object.data']['updated_at']
        self.notify(body=body, metadata={
            'message_id': 'm', 'timestamp': '2024-05-01 10:00:02.500000'})
        self.assertEqual(1714557602.5, self.topology.get(VM1).updated)
        self.notify(host='compute-1', updated_at=T2)
        self.assertEqual('compute-2', self.where(VM1))

    def test_tombstones_expire(self):
        self.notify('instance.delete.end', state='deleted', updated_at=T2)
        self.now += self.conf.inspector.topology_tombstone_lifetime + 1
        self.notify('instance.create.end', uuid=VM2, updated_at=T1)
        self.assertEqual({}, dict(self.sync._tombstones))
        self.notify('instance.create.end', updated_at=T1)
        self.assertEqual('compute-1', self.where(VM1))

    def test_every_priority_is_handled(self):
        for n, priority in enumerate(('audit', 'debug', 'info', 'warn',
                                      'error', 'critical')):
            self.notify(priority=priority, uuid=f'vm-{n}')
        self.assertEqual(6, len(self.topology))

    def test_filter_rule_takes_instance_notifications_only(self):
        rule = nova_topology.InstanceNotificationEndpoint.filter_rule
        self.assertTrue(rule.match({}, 'nova', 'instance.create.end', {},
                                   {}))
        self.assertFalse(rule.match({}, 'nova', 'service.update', {}, {}))
        self.assertFalse(rule.match({}, 'nova', 'compute.instance.update',
                                    {}, {}))


class TestMalformedNotifications(SyncTestCase):

    def assertDropped(self, body, fragment):
        self.assertIsNone(self.notify('instance.update', body=body))
        self.assertEqual(0, len(self.topology))
        self.assertIn('Dropping malformed instance.update notification '
                      'msg-1 from nova-compute:compute-1', self.logger.output)
        self.assertIn(fragment, self.logger.output)

    def test_not_a_dict(self):
        self.assertDropped(['x'], 'nova_object.data: missing')

    def test_legacy_payload(self):
        self.assertDropped({'instance_id': VM1, 'host': 'compute-1'},
                           'notification_format')

    def test_without_uuid(self):
        body = payload()
        del body['nova_object.data']['uuid']
        self.assertDropped(body, 'nova_object.data.uuid: must be a '
                                 'non-empty string')

    def test_bad_tenant(self):
        self.assertDropped(payload(tenant_id=7),
                           'nova_object.data.tenant_id')

    def test_bad_host(self):
        self.assertDropped(payload(host=['compute-1']),
                           'nova_object.data.host')

    def test_bad_time(self):
        self.assertDropped(payload(updated_at='yesterday'),
                           "nova_object.data.updated_at: must be an ISO "
                           "8601 time, got 'yesterday'")

    def test_failure_to_apply_is_logged_not_raised(self):
        self.useFixture(fixtures.MockPatchObject(
            self.sync, 'apply', side_effect=RuntimeError('boom')))
        self.assertIsNone(self.notify())
        self.assertIn('Could not apply instance.update notification msg-1',
                      self.logger.output)


class TestResync(SyncTestCase):

    def test_loads_servers_on_hosts(self):
        self.source.servers = [
            server(VM1, 'compute-1'),
            server(VM2, 'compute-2', name='two'),
            server('vm-soft', 'compute-1', status='SOFT_DELETED'),
            server('vm-shelved', None, status='SHELVED_OFFLOADED'),
            server('vm-building', None, status='BUILD'),
            server('vm-deleted', 'compute-1', status='DELETED'),
            {'id': 'vm-bad'},
            'not a server',
        ]
        self.assertEqual(2, self.sync.resync())
        self.assertEqual(['compute-1', 'compute-2'], self.topology.hosts)
        self.assertEqual(topology.Instance(VM2, TENANT, 'compute-2', 'two'),
                         self.topology.get(VM2))
        self.assertEqual(1714557600.0, self.topology.get(VM1).updated)
        self.assertTrue(self.sync.loaded.is_set())
        self.assertIn('Skipped 2 malformed servers', self.logger.output)

    def test_skips_a_server_whose_status_is_not_a_string(self):
        self.source.servers = [server(VM1, 'compute-1'),
                               server(VM2, 'compute-2', status=['ACTIVE'])]
        self.assertEqual(1, self.sync.resync())
        self.assertEqual(['compute-1'], self.topology.hosts)
        self.assertIn('Skipped 1 malformed servers', self.logger.output)

    def test_forgets_what_nova_no_longer_lists(self):
        # A delete notification that never came.
        self.notify('instance.create.end', uuid=VM3, updated_at=T0)
        self.source.servers = [server(VM1, 'compute-1')]
        self.sync.resync()
        self.assertIsNone(self.topology.get(VM3))
        self.assertEqual(1, len(self.topology))

    def test_newer_listing_repairs_a_missed_move(self):
        self.notify('instance.create.end', host='compute-1', updated_at=T0)
        self.source.servers = [server(VM1, 'compute-2', updated=T1)]
        self.sync.resync()
        self.assertEqual('compute-2', self.where(VM1))

    def test_newer_notification_beats_older_listing(self):
        # A page read before the move was notified (and applied).
        self.notify('instance.live_migration_post.end', host='compute-2',
                    updated_at=T2)
        self.source.servers = [server(VM1, 'compute-1', updated=T1)]
        self.sync.resync()
        self.assertEqual('compute-2', self.where(VM1))

    def test_updates_while_paging_are_kept(self):
        self.source.servers = [server(VM1, 'compute-1', updated=T0),
                               server(VM2, 'compute-1', updated=T0),
                               server('vm-4', 'compute-1', updated=T0)]

        def during():
            # After the first page: VM1 moves, VM2 is deleted and VM3 is
            # created; the resync's data on them is older.
            self.notify('instance.live_migration_post.end', uuid=VM1,
                        host='compute-2', updated_at=T1)
            self.notify('instance.delete.end', uuid=VM2, state='deleted',
                        updated_at=T1)
            self.notify('instance.create.end', uuid=VM3, host='compute-3',
                        updated_at=T1)
            # Applied during the paging: visible at once.
            self.assertEqual('compute-3', self.where(VM3))

        self.source.during = during
        self.assertEqual(3, self.sync.resync())
        self.assertEqual('compute-2', self.where(VM1))
        self.assertIsNone(self.topology.get(VM2))
        self.assertEqual('compute-3', self.where(VM3))
        self.assertEqual('compute-1', self.where('vm-4'))

    def test_soft_tombstone_older_than_listing_is_overridden(self):
        self.notify('instance.shelve_offload.end', host=None,
                    state='shelved_offloaded', updated_at=T1)
        self.source.servers = [server(VM1, 'compute-1', updated=T2)]
        self.sync.resync()
        self.assertEqual('compute-1', self.where(VM1))

    def test_hard_tombstone_beats_listing(self):
        self.notify('instance.delete.end', state='deleted', updated_at=T1)
        self.source.servers = [server(VM1, 'compute-1', updated=T3)]
        self.sync.resync()
        self.assertIsNone(self.topology.get(VM1))

    def test_failed_resync_keeps_the_map(self):
        self.source.servers = [server(VM1, 'compute-1')]
        self.sync.resync()
        self.source.fail = exceptions.NovaUnavailable('nova is down')
        self.assertRaises(exceptions.NovaUnavailable, self.sync.resync)
        self.assertEqual('compute-1', self.where(VM1))
        # Notifications are no longer tracked as "during a resync".
        self.assertIsNone(self.sync._changed)

    def test_failure_while_paging_keeps_the_map(self):
        self.source.servers = [server(VM1, 'compute-1'),
                               server(VM2, 'compute-1'),
                               server(VM3, 'compute-1')]
        self.sync.resync()

        def during():
            raise exceptions.NovaUnavailable('page 2 failed')

        self.source.during = during
        self.assertRaises(exceptions.NovaUnavailable, self.sync.resync)
        self.assertEqual(3, len(self.topology))


class TestLifeCycle(SyncTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatchObject(nova_topology, 'RETRY_MIN',
                                                 0.01))
        self.addCleanup(self.sync.stop)

    def wait_until(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                self.fail('timed out')
            time.sleep(0.01)

    def test_start_loads_synchronously(self):
        self.source.servers = [server(VM1, 'compute-1')]
        self.assertIs(self.sync, self.sync.start())
        self.assertEqual('compute-1', self.where(VM1))

    def test_start_survives_nova_down_and_retries(self):
        self.source.servers = [server(VM1, 'compute-1')]
        self.source.fail = exceptions.NovaUnavailable('connection refused')
        self.sync.start()
        self.assertEqual(0, len(self.topology))
        self.assertFalse(self.sync.loaded.is_set())
        self.assertIn('Could not load the instances from Nova: connection '
                      'refused', self.logger.output)
        self.wait_until(lambda: self.source.calls >= 3)
        self.source.fail = None
        self.assertTrue(self.sync.loaded.wait(5))
        self.assertEqual('compute-1', self.where(VM1))

    def test_request_resync(self):
        self.set_opts(group='inspector', topology_resync_interval=0)
        self.sync.start()
        self.source.servers = [server(VM1, 'compute-1')]
        self.sync.request_resync()
        self.wait_until(lambda: self.where(VM1) == 'compute-1')
        self.assertEqual(2, self.source.calls)

    def test_periodic_resync(self):
        self.set_opts(group='inspector', topology_resync_interval=1)
        self.sync.start()
        self.source.servers = [server(VM1, 'compute-1')]
        self.wait_until(lambda: self.where(VM1) == 'compute-1')

    def test_stop_ends_the_thread(self):
        self.sync.start()
        thread = self.sync._thread
        self.sync.stop()
        self.assertFalse(thread.is_alive())


class TestTimestamps(base.TestCase):

    def test_formats(self):
        for text in ('2024-05-01T10:00:00Z', '2024-05-01T10:00:00+00:00',
                     '2024-05-01T12:00:00+02:00', '2024-05-01 10:00:00',
                     '2024-05-01T10:00:00.000000'):
            self.assertEqual(1714557600.0,
                             nova_topology.to_timestamp(text, 'f'), text)
        self.assertEqual(1714557600.25, nova_topology.to_timestamp(
            '2024-05-01T10:00:00.25Z', 'f'))

    def test_invalid(self):
        exc = self.assertRaises(exceptions.InvalidPayload,
                                nova_topology.to_timestamp, 12, 'a.b')
        self.assertEqual('a.b', exc.field)


class TestBus(SyncTestCase):
    """Real notifications through oslo.messaging's fake transport."""

    def setUp(self):
        super().setUp()
        self.set_opts(transport_url=messaging.FAKE_TRANSPORT_URL)
        messaging.cleanup()
        self.addCleanup(messaging.cleanup)

    def test_notifications_reach_the_map(self):
        listener = nova_topology.get_listener(self.conf, self.sync)
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        notifier = oslo_messaging.Notifier(
            messaging.get_transport(self.conf),
            publisher_id='nova-compute:compute-1', driver='messagingv2',
            topics=['versioned_notifications'])
        notifier.info({}, 'instance.create.end',
                      payload(uuid=VM1, updated_at=T0))
        notifier.info({}, 'instance.create.end',
                      payload(uuid=VM2, updated_at=T0))
        # Not ours: filtered out, not dropped as malformed.
        notifier.info({}, 'service.update', {'nova_object.data': {}})
        notifier.info({}, 'instance.live_migration_post.end',
                      payload(uuid=VM1, host='compute-2', updated_at=T1))
        notifier.info({}, 'instance.delete.end',
                      payload(uuid=VM2, state='deleted', updated_at=T1))
        notifier.error({}, 'instance.update', 'garbage')
        done = threading.Event()

        def check():
            return (self.where(VM1) == 'compute-2'
                    and self.topology.get(VM2) is None
                    and 'Dropping malformed' in self.logger.output)

        deadline = time.monotonic() + 5
        while not check() and time.monotonic() < deadline:
            done.wait(0.01)
        self.assertTrue(check(), self.logger.output)
        self.assertEqual(1, self.logger.output.count('Dropping malformed'))

    def test_own_pool(self):
        self.assertTrue(nova_topology.default_pool().startswith(
            'doctor-inspector-topology-'))
        self.set_opts(group='inspector', topology_notification_pool='mine')
        get = self.useFixture(fixtures.MockPatchObject(
            messaging, 'get_listener')).mock
        nova_topology.get_listener(self.conf, self.sync)
        self.assertEqual('mine', get.call_args.kwargs['pool'])
        self.assertEqual([self.sync.endpoint], get.call_args.args[2])


class TestWithNova(base.TestCase):
    """Through the real client, over HTTP, from the Nova stand-in."""

    def setUp(self):
        super().setUp()
        self.nova = nova_standin.NovaStandIn().start()
        self.addCleanup(self.nova.stop)
        self.set_opts(group='nova', auth_type='none',
                      endpoint_override=self.nova.compute_url)
        self.client = nova_client.NovaClient(self.conf)
        self.addCleanup(self.client.close)
        self.sync = nova_topology.NovaTopologySync(self.conf, self.client)
        self.addCleanup(self.sync.stop)

    def test_load_and_resync(self):
        # More than a page, to follow Nova's pagination.
        self.nova.add_servers((f'vm-{i:04d}', f'tenant-{i % 7}',
                               f'compute-{i % 3}', f'name-{i}')
                              for i in range(2500))
        self.sync.start()
        topo = self.sync.topology
        self.assertEqual(2500, len(topo))
        self.assertEqual(['compute-0', 'compute-1', 'compute-2'], topo.hosts)
        self.assertEqual(topology.Instance('vm-0004', 'tenant-4',
                                           'compute-1', 'name-4'),
                         topo.get('vm-0004'))
        self.nova.move_server('vm-0004', 'compute-9')
        self.nova.remove_server('vm-0005')
        self.assertEqual(2499, self.sync.resync())
        self.assertEqual('compute-9', topo.get('vm-0004').host)
        self.assertIsNone(topo.get('vm-0005'))

    def test_nova_down_at_start(self):
        self.useFixture(fixtures.MockPatchObject(nova_topology, 'RETRY_MIN',
                                                 30))
        self.set_opts(group='nova', retries=0)
        self.nova.stop()
        logger = self.useFixture(fixtures.FakeLogger(
            name='doctor_plugin.topology.nova'))
        self.sync.start()
        self.assertEqual(0, len(self.sync.topology))
        self.assertIn('Could not load the instances from Nova',
                      logger.output)

    def test_notifications_from_nova(self):
        messaging.cleanup()
        self.addCleanup(messaging.cleanup)
        self.nova.add_servers([(VM1, 'tenant-a', 'compute-1', 'one'),
                               (VM2, 'tenant-b', 'compute-1', 'two')])
        self.nova.enable_notifications(messaging.FAKE_TRANSPORT_URL)
        listener = nova_topology.get_listener(
            self.conf, self.sync,
            transport_url=messaging.FAKE_TRANSPORT_URL)
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        self.sync.start()
        topo = self.sync.topology
        self.nova.add_server(VM3, 'tenant-c', 'compute-2', 'three')
        self.nova.emit_instance_update(VM3, 'instance.create.end')
        self.nova.move_server(VM1, 'compute-3')
        self.nova.emit_instance_update(VM1,
                                       'instance.live_migration_post.end')
        self.nova.emit_instance_update(VM2, 'instance.delete.end')
        self.nova.remove_server(VM2)
        self.nova.emit_instance_update(VM3, 'instance.update')

        def current():
            return {i.id: i.host for i in topo.instances()}

        deadline = time.monotonic() + 5
        while (current() != {VM1: 'compute-3', VM3: 'compute-2'}
               and time.monotonic() < deadline):
            time.sleep(0.01)
        self.assertEqual({VM1: 'compute-3', VM3: 'compute-2'}, current())
        self.assertEqual('tenant-c', topo.get(VM3).project_id)
