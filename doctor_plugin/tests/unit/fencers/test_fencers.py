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

"""Tests of the fencer contract, loading, options and the BMC file."""

import os

import fixtures

from doctor_plugin import exceptions
from doctor_plugin import fencers
from doctor_plugin.fencers import base
from doctor_plugin.fencers import bmcfile
from doctor_plugin.fencers import none
from doctor_plugin.tests import base as test_base
from doctor_plugin.tests.unit.fencers import fixtures as bmc_fixtures

GOOD = {'address': '192.0.2.10', 'username': 'fencer',
        'password': 'hunter2secret'}


class BmcFileTestCase(test_base.TestCase):

    def write(self, content):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'bmc.yaml')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(content)
        return path

    def write_hosts(self, hosts):
        path = self.write('')
        bmc_fixtures.write_bmc_file(path, hosts)
        return path

    def assert_invalid(self, path, entry, *fragments):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                bmcfile.load, path)
        self.assertEqual(path, exc.source)
        self.assertEqual(entry, exc.entry)
        for fragment in fragments:
            self.assertIn(fragment, exc.problem)
        self.assertNotIn('hunter2secret', str(exc))
        return exc


class TestBmcFile(BmcFileTestCase):

    def test_reads_every_host_with_the_default_port(self):
        path = self.write_hosts({'compute-0': GOOD,
                                 'compute-1': dict(GOOD, port=6230)})
        bmcs = bmcfile.load(path)
        self.assertEqual(
            bmcfile.BmcCredentials('192.0.2.10', 'fencer', 'hunter2secret',
                                   623), bmcs['compute-0'])
        self.assertEqual(6230, bmcs['compute-1'].port)

    def test_the_password_is_not_in_the_repr(self):
        creds = bmcfile.load(self.write_hosts({'c': GOOD}))['c']
        self.assertNotIn('hunter2secret', repr(creds))

    def test_missing_file_names_the_option(self):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                bmcfile.load, '/nonexistent/bmc.yaml')
        self.assertIn('[fencing] bmc_file', str(exc))

    def test_not_yaml(self):
        self.assert_invalid(self.write('hosts: [\n'), None, 'YAML')

    def test_no_hosts_key(self):
        self.assert_invalid(self.write('compute-0: {}\n'), None,
                            '"hosts"')

    def test_empty_hosts(self):
        self.assert_invalid(self.write('hosts: {}\n'), 'hosts',
                            'at least one host')

    def test_entry_not_a_mapping(self):
        self.assert_invalid(self.write_hosts({'c': 'x'}), 'hosts.c',
                            'mapping')

    def test_unknown_key_is_named(self):
        entry = dict(GOOD)
        entry['pasword'] = entry.pop('password')
        self.assert_invalid(self.write_hosts({'c': entry}),
                            'hosts.c.pasword', 'unknown key',
                            'address, port, username, password')

    def test_missing_key_is_named(self):
        entry = dict(GOOD)
        del entry['username']
        self.assert_invalid(self.write_hosts({'c': entry}),
                            'hosts.c.username', 'missing')

    def test_a_wrongly_typed_password_is_not_shown(self):
        path = self.write('hosts:\n  c:\n    address: 192.0.2.1\n'
                          '    username: u\n    password: 123456789\n')
        exc = self.assert_invalid(path, 'hosts.c.password', 'string',
                                  'quote it')
        self.assertNotIn('123456789', str(exc))

    def test_bad_port(self):
        for port in (0, 70000, 'ipmi', True):
            self.assert_invalid(self.write_hosts({'c': dict(GOOD,
                                                            port=port)}),
                                'hosts.c.port', 'UDP port')

    def test_over_long_password(self):
        self.assert_invalid(
            self.write_hosts({'c': dict(GOOD, password='x' * 21)}),
            'hosts.c.password', '20 bytes')


class TestLoad(BmcFileTestCase):

    def test_default_is_none(self):
        self.assertEqual('none', self.conf.fencing.driver)
        self.assertEqual('skip_fixup', self.conf.fencing.on_failure)
        fencer = fencers.load(self.conf)
        self.assertIsInstance(fencer, none.NoFencer)

    def test_unknown_driver_names_entry_point_and_choices(self):
        self.set_opts('fencing', driver='ilo')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                fencers.load, self.conf)
        self.assertEqual('[fencing] driver', exc.source)
        self.assertEqual('ilo', exc.entry)
        self.assertIn("'doctor_plugin.fencers'", exc.problem)
        self.assertIn('choose one of ipmi, none', exc.problem)

    def test_ipmi_needs_a_bmc_file(self):
        self.set_opts('fencing', driver='ipmi')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                fencers.load, self.conf)
        self.assertEqual('[fencing] bmc_file', exc.source)
        self.assertIn('is not set', exc.problem)

    def test_ipmi_checks_the_bmc_file_at_load(self):
        path = self.write_hosts({'c': dict(GOOD, port=-1)})
        self.set_opts('fencing', driver='ipmi', bmc_file=path)
        exc = self.assertRaises(exceptions.ConfigurationError,
                                fencers.load, self.conf)
        self.assertEqual('hosts.c.port', exc.entry)

    def test_on_failure_accepts_only_the_policies(self):
        self.assertRaises(ValueError, self.conf.set_override,
                          'on_failure', 'force', group='fencing')

    def test_options_are_listed_for_the_generator(self):
        from doctor_plugin import opts
        groups = dict(opts.list_opts())
        self.assertEqual({'driver', 'timeout', 'on_failure', 'bmc_file'},
                         {o.name for o in groups['fencing']})


class TestNoFencer(test_base.TestCase):

    def test_fences_nothing_at_once(self):
        fencer = none.NoFencer(self.conf)
        result = fencer.fence('compute-0', 1.0)
        self.assertEqual(('compute-0', 'none', ''),
                         (result.host, result.outcome, result.error))
        self.assertEqual(result.started, result.finished)
        self.assertTrue(result.safe)
        self.assertEqual('unknown', fencer.power_state('compute-0', 1.0))


class TestFenceResult(test_base.TestCase):

    def test_duration_and_safety(self):
        result = base.FenceResult('h', 'fenced', started=10.0,
                                  finished=10.25)
        self.assertEqual(250.0, result.duration_ms)
        self.assertTrue(result.safe)
        self.assertTrue(base.FenceResult('h', 'already_off').safe)
        for outcome in ('failed', 'timed_out'):
            self.assertFalse(base.FenceResult('h', outcome).safe)

    def test_unknown_outcome_is_refused(self):
        exc = self.assertRaises(ValueError, base.FenceResult, 'h', 'off')
        self.assertIn('fenced, already_off, failed, timed_out, none',
                      str(exc))
