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

"""The doctor-plugin command: demo, validate-config, list-plugins."""

import contextlib
import io
import json
import os

import fixtures
import yaml

from doctor_plugin.cmd import cli
from doctor_plugin.common import messaging
from doctor_plugin.testing import nova as nova_standin
from doctor_plugin.tests import base

ETC = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'etc',
                   'doctor_plugin')


class TestCLI(base.TestCase):

    def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(list(argv))
            except SystemExit as exc:
                rc = exc.code
        return rc, out.getvalue(), err.getvalue()

    def write_conf(self, alarms=None, extra=''):
        tmp = self.useFixture(fixtures.TempDir()).path
        alarms_path = os.path.join(ETC, 'alarms.yaml')
        if alarms is not None:
            alarms_path = os.path.join(tmp, 'alarms.yaml')
            with open(alarms_path, 'w') as f:
                yaml.safe_dump(alarms, f)
        conf = os.path.join(tmp, 'doctor_plugin.conf')
        with open(conf, 'w') as f:
            f.write(f'[DEFAULT]\n'
                    f'pipeline_cfg_file = {ETC}/pipeline.yaml\n'
                    f'transport_url = fake://\n'
                    f'state_path = {tmp}\n'
                    f'[inspector]\n'
                    f'topology_file = {ETC}/topology.yaml\n'
                    f'[alarms]\n'
                    f'definitions_file = {alarms_path}\n'
                    + extra)
        return conf

    def nova_conf(self, endpoint):
        return self.write_conf(extra=(
            f'[inspector]\ncontroller = nova\ntopology_source = nova\n'
            f'[nova]\nauth_type = none\nendpoint_override = {endpoint}\n'
            f'request_timeout = 1\nretries = 0\n'))

    def test_validate_asks_nova_for_its_versions(self):
        nova = nova_standin.NovaStandIn(max_version='2.60').start()
        self.addCleanup(nova.stop)
        rc, out, err = self.run_cli('validate-config', '--config-file',
                                    self.nova_conf(nova.compute_url))
        self.assertEqual(0, rc, out + err)
        self.assertIn('nova: reachable, compute API up to microversion '
                      '2.60', out)
        # With the topology from Nova, the static file is not read.
        self.assertNotIn('topology', out)

    def test_validate_opens_the_delivery_database(self):
        rc, out, err = self.run_cli('validate-config', '--config-file',
                                    self.write_conf())
        self.assertEqual(0, rc, out + err)
        self.assertIn('ok: delivery database sqlite:///', out)
        self.assertIn('0 pending, 0 dead-lettered', out)

    def test_validate_refuses_a_bad_delivery_database(self):
        rc, out, err = self.run_cli('validate-config', '--config-file',
                                    self.write_conf(extra=(
                                        '[delivery]\nconnection = '
                                        'nosuch://u:hunter2@h/db\n')))
        self.assertEqual(2, rc, out + err)
        self.assertIn('[delivery] connection', err)
        self.assertNotIn('hunter2', out + err)

    def test_validate_reports_an_unreachable_nova(self):
        nova = nova_standin.NovaStandIn().start()
        nova.stop()
        rc, out, err = self.run_cli('validate-config', '--config-file',
                                    self.nova_conf(nova.compute_url))
        self.assertEqual(2, rc, out + err)
        self.assertIn('Nova', err)
        self.assertNotIn('configuration is valid', out)

    def test_demo_on_the_fake_bus(self):
        self.addCleanup(messaging.cleanup)
        rc, out, err = self.run_cli('demo', '--vms', '6', '--tenants', '3',
                                    '--timeout', '10')
        self.assertEqual(0, rc, out + err)
        self.assertIn('T01', out)
        self.assertIn('T09', out)
        self.assertIn('notification time T09 − T01', out)
        self.assertIn('received 3 alarm(s)', out)
        self.assertIn('"alarm_name": "host-down-tenant-', out)

    def test_validate_shipped_config(self):
        rc, out, err = self.run_cli('validate-config', '--config-file',
                                    self.write_conf())
        self.assertEqual(0, rc, out + err)
        self.assertIn('configuration is valid', out)
        self.assertIn('3 instance(s) on 2 host(s)', out)

    def test_validate_reports_the_broken_alarm(self):
        conf = self.write_conf({'alarms': [{
            'name': 'a', 'severity': 'urgent',
            'event_rule': {'event_type': 'compute.host.down'}}]})
        rc, out, err = self.run_cli('validate-config', '--config-file', conf)
        self.assertEqual(2, rc)
        self.assertIn('alarms[0] (a)', err)
        self.assertIn("got 'urgent'", err)
        self.assertNotIn('configuration is valid', out)

    def test_validate_reports_a_misspelt_notifier(self):
        conf = self.write_conf({'alarms': [{
            'name': 'a', 'event_rule': {'event_type': '*'},
            'alarm_actions': ['htps://example.invalid/x']}]})
        rc, out, err = self.run_cli('validate-config', '--config-file', conf)
        self.assertEqual(2, rc)
        self.assertIn("'htps'", err)
        self.assertIn('doctor_plugin.alarm_actions', err)

    def test_list_plugins(self):
        rc, out, _ = self.run_cli('list-plugins')
        self.assertEqual(0, rc)
        for name in ('doctor', 'nova_service', 'messaging', 'http', 'https',
                     'log', 'tcp'):
            self.assertRegex(out, rf'\n  {name} +ok ')

    def test_unknown_arguments_rejected(self):
        rc, _, err = self.run_cli('demo', '--config-file', 'x')
        self.assertEqual(2, rc)
        self.assertIn('unrecognized arguments', err)

    def test_bench_rejects_unknown_scenario(self):
        rc, _, err = self.run_cli('bench', '--scenario', 'B42')
        self.assertEqual(2, rc)
        self.assertIn('invalid choice', err)

    def test_bench_ids_are_the_scenarios(self):
        # The parser names the scenarios without importing them.
        from doctor_plugin.bench import harness
        from doctor_plugin.bench import scenarios

        self.assertEqual(sorted(scenarios.SCENARIOS),
                         sorted(cli.BENCH_SCENARIOS),
                         'add the new scenario id to cli.BENCH_SCENARIOS')
        self.assertEqual(sorted(scenarios.GROUPS), sorted(cli.BENCH_GROUPS))
        self.assertEqual(harness.DEFAULT_TRANSPORT_URL,
                         cli.BENCH_TRANSPORT_URL)

    def test_bench_json_is_strict(self):
        # A scenario that measured nothing (R1 and R3 when nothing is
        # delivered) writes null, not NaN, which strict parsers reject.
        from doctor_plugin.bench import harness
        from doctor_plugin.bench import scenarios

        def no_samples(options, log):
            return harness.ScenarioResult(
                scenario='B1', transport='none', trials=0,
                latency_ms=harness.latency_summary([]), sent=0, received=0,
                lost=0, duplicates=0, target='none', met=False, env={})

        self.useFixture(fixtures.MonkeyPatch(
            'doctor_plugin.bench.scenarios.SCENARIOS',
            dict(scenarios.SCENARIOS, B1=no_samples)))
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'out.json')
        rc, out, err = self.run_cli('bench', '--scenario', 'B1', '--json',
                                    path)
        self.assertEqual(0, rc, out + err)
        with open(path) as f:
            text = f.read()
        self.assertNotIn('NaN', text)

        def reject(name):
            raise ValueError(name)

        self.assertIsNone(json.loads(text, parse_constant=reject)
                          ['latency_ms']['p99'])
