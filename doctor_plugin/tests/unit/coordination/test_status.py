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

"""Tests for ``doctor-plugin status`` against two live members."""

import contextlib
import io
import json
import os
import time

import yaml

from doctor_plugin.cmd import cli
from doctor_plugin.delivery import store as store_mod
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.coordination import test_cluster


class TestStatus(test_cluster.ClusterTestCase):

    def setUp(self):
        super().setUp()
        self.topology = os.path.join(self.state_path, 'topology.yaml')
        with open(self.topology, 'w') as f:
            yaml.safe_dump({'hosts': {
                h: [{'id': f'vm-{h}', 'project_id': 'tenant-a'}]
                for h in ('compute-0', 'compute-99')}}, f)

    def write_conf(self, backend_url=None):
        path = os.path.join(self.state_path, 'status.conf')
        with open(path, 'w') as f:
            f.write(f'[DEFAULT]\nstate_path = {self.state_path}\n'
                    f'[inspector]\ntopology_file = {self.topology}\n'
                    f'[delivery]\nconnection = {self.store.url}\n'
                    f'[coordination]\n'
                    f'backend_url = {backend_url or self.backend}\n'
                    f'group = g\n')
        return path

    def run_status(self, *args, conf=None):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(['status', *args, '--config-file',
                           conf or self.write_conf()])
        return rc, out.getvalue(), err.getvalue()

    def add_pending(self, owner):
        self.store.add(owner, [store_mod.Delivery(
            id=store_mod.IdClock()(), key='k', target='http://127.0.0.1:1/',
            event_id='e', label='alarm', payload=b'{}',
            deadline=time.time() + 600)])

    def test_members_owners_claims_and_pending(self):
        host = self.owned_by(self.b)[0]
        self.assertEqual(200, self.report(self.a, host, 'e1').status_code)
        self.add_pending('ctl-a')
        self.add_pending('ctl-gone')
        rc, out, err = self.run_status('--json')
        self.assertEqual(0, rc, err)
        found = json.loads(out)
        members = found['members']['inspector']
        self.assertEqual(['ctl-a', 'ctl-b'], [m['id'] for m in members])
        self.assertEqual(self.a.url, members[0]['url'])
        for m in members:
            self.assertEqual({'reachable': True, 'status': 200,
                              'lease': True, 'members': 2},
                             {k: m['health'][k] for k in (
                                 'reachable', 'status', 'lease',
                                 'members')})
        self.assertEqual([], found['members']['listener'])
        hosts = found['hosts']
        # The claimed host and those of the topology file.
        self.assertEqual(sorted({host, 'compute-0', 'compute-99'}),
                         sorted(hosts))
        self.assertEqual({'owner': 'ctl-b', 'state': 'down',
                          'event_id': hosts[host]['event_id'],
                          'claimed_by': 'ctl-b'},
                         {k: hosts[host][k] for k in (
                             'owner', 'state', 'event_id', 'claimed_by')})
        for h in ('compute-0', 'compute-99'):
            expected = 'ctl-a' if self.a.membership.owns(h) else 'ctl-b'
            self.assertEqual(expected, hosts[h]['owner'])
        self.assertEqual({'ctl-a': {'pending': 1, 'in_group': True},
                          'ctl-gone': {'pending': 1, 'in_group': False}},
                         found['pending'])

    def test_the_text_says_what_to_look_at(self):
        self.add_pending('ctl-gone')
        self.b.server.stop()
        rc, out, err = self.run_status()
        self.assertEqual(0, rc, err)
        self.assertIn('Inspectors (2):', out)
        self.assertIn(f'ctl-a  {self.a.url}  lease yes, sees 2 member(s)',
                      out)
        self.assertIn('ctl-b', out)
        self.assertIn('unreachable', out)
        self.assertIn('ctl-gone  1  (not in its group: a survivor takes '
                      'them over)', out)
        self.assertIn('compute-99  owner ', out)

    def test_an_unreachable_backend_is_an_error(self):
        conf = self.write_conf(
            backend_url=f'redis://127.0.0.1:{base.closed_port()}')
        rc, out, err = self.run_status(conf=conf)
        self.assertNotEqual(0, rc)
        self.assertIn('could not reach the coordination backend', err)

    def test_without_coordination_one_process_owns_all(self):
        conf = self.write_conf()
        with open(conf) as f:
            text = f.read().replace(f'backend_url = {self.backend}',
                                    'backend_url =')
        with open(conf, 'w') as f:
            f.write(text)
        rc, out, err = self.run_status(conf=conf)
        self.assertEqual(0, rc, err)
        self.assertIn('Coordination: none', out)
        self.assertIn('compute-0  owner this process (no coordination)',
                      out)
