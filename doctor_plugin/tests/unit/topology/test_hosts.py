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

"""Tests for doctor_plugin.topology.hosts."""

import os
import sys
import threading

import fixtures

from doctor_plugin import exceptions
from doctor_plugin.tests import base
from doctor_plugin.topology import hosts as topology

Instance = topology.Instance


class TestHostTopology(base.TestCase):

    def setUp(self):
        super().setUp()
        self.topology = topology.HostTopology([
            Instance('vm-1', 'tenant-a', 'compute-1', 'a-1'),
            Instance('vm-2', 'tenant-b', 'compute-1', 'b-1'),
            Instance('vm-3', 'tenant-a', 'compute-1', 'a-2'),
            Instance('vm-4', 'tenant-a', 'compute-2', 'a-3'),
        ])

    def test_instances_on_host_in_order(self):
        self.assertEqual(['vm-1', 'vm-2', 'vm-3'],
                         [i.id for i in self.topology.instances_on(
                             'compute-1')])

    def test_unknown_host_has_no_instances(self):
        self.assertEqual((), self.topology.instances_on('compute-9'))
        self.assertEqual({}, self.topology.by_project('compute-9'))

    def test_by_project_groups_in_first_seen_order(self):
        grouped = self.topology.by_project('compute-1')
        self.assertEqual(['tenant-a', 'tenant-b'], list(grouped))
        self.assertEqual(['vm-1', 'vm-3'],
                         [i.id for i in grouped['tenant-a']])
        self.assertEqual(['vm-2'], [i.id for i in grouped['tenant-b']])

    def test_hosts_and_len(self):
        self.assertEqual(['compute-1', 'compute-2'], self.topology.hosts)
        self.assertEqual(4, len(self.topology))

    def test_replace_swaps_everything(self):
        self.topology.replace([Instance('vm-9', 'tenant-c', 'compute-3')])
        self.assertEqual(['compute-3'], self.topology.hosts)
        self.assertEqual((), self.topology.instances_on('compute-1'))
        self.assertEqual(1, len(self.topology))

    def test_snapshot_is_immutable(self):
        snapshot = self.topology.instances_on('compute-1')
        self.assertIsInstance(snapshot, tuple)
        self.topology.replace([])
        self.assertEqual(3, len(snapshot))

    def test_empty(self):
        empty = topology.HostTopology()
        self.assertEqual([], empty.hosts)
        self.assertEqual(0, len(empty))


class TestParseTopology(base.TestCase):

    def assertInvalid(self, data, entry, fragment):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                topology.parse_topology, data, 'topo.yaml')
        self.assertEqual('topo.yaml', exc.source)
        self.assertEqual(entry, exc.entry)
        self.assertIn(fragment, exc.problem)
        self.assertTrue(str(exc).startswith('topo.yaml'))

    def test_valid(self):
        instances = topology.parse_topology({'hosts': {
            'compute-1': [{'id': 'vm-1', 'project_id': 'tenant-a',
                           'name': 'a-1'},
                          {'id': 'vm-2', 'project_id': 'tenant-b'}],
            'compute-2': None,
        }}, 'topo.yaml')
        self.assertEqual(
            [Instance('vm-1', 'tenant-a', 'compute-1', 'a-1'),
             Instance('vm-2', 'tenant-b', 'compute-1', '')], instances)

    def test_empty_documents(self):
        self.assertEqual([], topology.parse_topology(None, 'topo.yaml'))
        self.assertEqual([], topology.parse_topology({}, 'topo.yaml'))
        self.assertEqual([], topology.parse_topology({'hosts': {}},
                                                     'topo.yaml'))
        # "hosts:" with every host commented out.
        self.assertEqual([], topology.parse_topology({'hosts': None},
                                                     'topo.yaml'))

    def test_not_a_mapping(self):
        self.assertInvalid(['compute-1'], None, 'must be a mapping')

    def test_hosts_not_a_mapping(self):
        self.assertInvalid({'hosts': ['compute-1']}, None,
                           '"hosts" mapping')

    def test_unknown_top_level_key(self):
        # A misspelt "hosts" must not pass as an empty topology.
        self.assertInvalid({'host': {'compute-1': []}}, None,
                           'unknown top-level keys: host')

    def test_host_name_not_a_string(self):
        self.assertInvalid({'hosts': {12: []}}, 'hosts.12',
                           'host names must be non-empty strings')

    def test_host_entries_not_a_list(self):
        self.assertInvalid({'hosts': {'compute-1': {'id': 'vm-1'}}},
                           'hosts.compute-1', 'must be a list of instances')

    def test_instance_not_a_mapping(self):
        self.assertInvalid({'hosts': {'compute-1': ['vm-1']}},
                           'hosts.compute-1[0]', 'must be a mapping')

    def test_instance_without_id(self):
        self.assertInvalid(
            {'hosts': {'compute-1': [{'project_id': 'tenant-a'}]}},
            'hosts.compute-1[0]', '"id" must be a non-empty string')

    def test_instance_without_project(self):
        self.assertInvalid(
            {'hosts': {'compute-1': [{'id': 'vm-1', 'project_id': ''}]}},
            'hosts.compute-1[0]', '"project_id" must be a non-empty string')

    def test_instance_on_two_hosts(self):
        self.assertInvalid(
            {'hosts': {
                'compute-1': [{'id': 'vm-1', 'project_id': 'tenant-a'}],
                'compute-2': [{'id': 'vm-2', 'project_id': 'tenant-a'},
                              {'id': 'vm-1', 'project_id': 'tenant-a'}]}},
            'hosts.compute-2[1]',
            'instance vm-1 is also listed on host compute-1')


class TestFromFile(base.TestCase):

    def write(self, text):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'topology.yaml')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_loads_file(self):
        path = self.write('hosts:\n'
                          '  compute-1:\n'
                          '    - {id: vm-1, project_id: tenant-a}\n'
                          '    - {id: vm-2, project_id: tenant-b}\n')
        topo = topology.HostTopology.from_file(path)
        self.assertEqual(['tenant-a', 'tenant-b'],
                         list(topo.by_project('compute-1')))

    def test_sample_file_loads(self):
        path = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                            '..', 'etc', 'doctor_plugin', 'topology.yaml')
        topo = topology.HostTopology.from_file(path)
        self.assertIn('compute-1', topo.hosts)

    def test_missing_file(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'missing.yaml')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                topology.HostTopology.from_file, path)
        self.assertEqual(path, exc.source)
        self.assertIn('cannot read the topology file', exc.problem)
        self.assertIn('topology_file', exc.problem)

    def test_invalid_yaml(self):
        path = self.write('hosts: {compute-1: [\n')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                topology.HostTopology.from_file, path)
        self.assertEqual(path, exc.source)
        self.assertIn('is not valid YAML', exc.problem)

    def test_invalid_entry_names_the_file(self):
        path = self.write('hosts:\n  compute-1:\n    - {id: vm-1}\n')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                topology.HostTopology.from_file, path)
        self.assertEqual(f'{path}: hosts.compute-1[0]: "project_id" must '
                         f'be a non-empty string', str(exc))


class TestInstance(base.TestCase):

    def test_host_and_project_are_interned(self):
        # Built at run time, as JSON decoding builds them.
        host, project = ''.join(['compute-', '7']), ''.join(['ten', 'ant'])
        inst = Instance('vm-1', project, host)
        self.assertIs(sys.intern('compute-7'), inst.host)
        self.assertIs(sys.intern('tenant'), inst.project_id)

    def test_updated_is_not_compared(self):
        self.assertEqual(Instance('vm-1', 'tenant-a', 'compute-1', 'a', 1.0),
                         Instance('vm-1', 'tenant-a', 'compute-1', 'a', 2.0))

    def test_no_name_is_empty(self):
        self.assertEqual('', Instance('vm-1', 'tenant-a', 'compute-1',
                                      None).name)

    def test_no_instance_dict(self):
        self.assertFalse(hasattr(Instance('vm-1', 'p', 'h'), '__dict__'))


class TestIncrementalUpdates(base.TestCase):

    def setUp(self):
        super().setUp()
        self.topology = topology.HostTopology([
            Instance('vm-1', 'tenant-a', 'compute-1', 'a-1', 1.0),
            Instance('vm-2', 'tenant-b', 'compute-1', 'b-1', 1.0),
            Instance('vm-3', 'tenant-a', 'compute-2', 'a-2', 1.0),
        ])

    def ids_on(self, host):
        return [i.id for i in self.topology.instances_on(host)]

    def test_upsert_adds(self):
        inst = Instance('vm-4', 'tenant-c', 'compute-3', 'c-1')
        self.assertTrue(self.topology.upsert(inst))
        self.assertEqual(['vm-4'], self.ids_on('compute-3'))
        self.assertIs(inst, self.topology.get('vm-4'))
        self.assertEqual(4, len(self.topology))
        self.assertEqual(['compute-1', 'compute-2', 'compute-3'],
                         self.topology.hosts)

    def test_upsert_moves_between_hosts(self):
        before = self.topology.instances_on('compute-1')
        self.assertTrue(self.topology.upsert(
            Instance('vm-1', 'tenant-a', 'compute-2', 'a-1', 2.0)))
        self.assertEqual(['vm-2'], self.ids_on('compute-1'))
        self.assertEqual(['vm-3', 'vm-1'], self.ids_on('compute-2'))
        self.assertEqual('compute-2', self.topology.get('vm-1').host)
        self.assertEqual(3, len(self.topology))
        # A snapshot taken before the move is unchanged.
        self.assertEqual(['vm-1', 'vm-2'], [i.id for i in before])

    def test_moving_the_last_instance_forgets_the_host(self):
        self.topology.upsert(Instance('vm-3', 'tenant-a', 'compute-1'))
        self.assertEqual(['compute-1'], self.topology.hosts)

    def test_upsert_on_same_host_keeps_order(self):
        self.assertTrue(self.topology.upsert(
            Instance('vm-1', 'tenant-a', 'compute-1', 'renamed', 2.0)))
        self.assertEqual(['vm-1', 'vm-2'], self.ids_on('compute-1'))
        self.assertEqual('renamed', self.topology.get('vm-1').name)

    def test_upsert_unchanged(self):
        self.assertFalse(self.topology.upsert(
            Instance('vm-1', 'tenant-a', 'compute-1', 'a-1', 1.0)))

    def test_upsert_refreshes_updated(self):
        self.assertFalse(self.topology.upsert(
            Instance('vm-1', 'tenant-a', 'compute-1', 'a-1', 5.0)))
        self.assertEqual(5.0, self.topology.get('vm-1').updated)

    def test_remove(self):
        self.assertTrue(self.topology.remove('vm-3'))
        self.assertIsNone(self.topology.get('vm-3'))
        self.assertEqual(['compute-1'], self.topology.hosts)
        self.assertEqual(2, len(self.topology))
        self.assertFalse(self.topology.remove('vm-3'))

    def test_replace_then_update(self):
        self.topology.replace([Instance('vm-9', 'tenant-c', 'compute-3')])
        self.assertIsNone(self.topology.get('vm-1'))
        self.topology.upsert(Instance('vm-9', 'tenant-c', 'compute-4'))
        self.assertEqual(['compute-4'], self.topology.hosts)

    def test_replace_keeps_the_last_record_of_an_id(self):
        self.topology.replace([Instance('vm-1', 'tenant-a', 'compute-1'),
                               Instance('vm-1', 'tenant-a', 'compute-2')])
        self.assertEqual(['compute-2'], self.topology.hosts)
        self.assertEqual(1, len(self.topology))

    def test_instances_snapshot(self):
        self.assertEqual({'vm-1', 'vm-2', 'vm-3'},
                         {i.id for i in self.topology.instances()})

    def test_readers_never_see_a_changing_map(self):
        # hosts and len iterate the map while a writer adds and removes
        # hosts: copy-on-write means they never fail mid-iteration.
        stop = threading.Event()
        errors = []

        def write():
            n = 0
            while not stop.is_set():
                n += 1
                self.topology.upsert(
                    Instance('vm-x', 'tenant-x', f'compute-x{n % 50}'))

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for _ in range(2000):
                try:
                    self.topology.hosts
                    len(self.topology)
                    for host in ('compute-1', 'compute-x1'):
                        self.topology.by_project(host)
                except RuntimeError as exc:
                    errors.append(exc)
        finally:
            stop.set()
            writer.join()
        self.assertEqual([], errors)
        self.assertEqual(4, len(self.topology))
