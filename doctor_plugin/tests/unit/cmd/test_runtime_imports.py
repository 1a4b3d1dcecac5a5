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

"""The operator's runtime loads no test double, bench, demo or test tool.

Each check runs a fresh interpreter (this venv's), as an installed command
runs, and reads what it had imported when it exited: an import anywhere
on the way (a module-level import in ``cmd/cli.py``, a service that
imports ``doctor_plugin.testing``) makes it fail.
"""

import json
import os
import subprocess
import sys

import fixtures

from doctor_plugin.tests import base

#: Packages the runtime must not load: they need test requirements or are
#: only there for the demo and the bench.
FORBIDDEN = ('doctor_plugin.testing', 'doctor_plugin.bench',
             'doctor_plugin.demo', 'hypothesis', 'schemathesis')

#: Run first in the child: at exit, it writes the forbidden modules it
#: loaded to the file named by $DOCTOR_IMPORTS_OUT.
_PROBE = '''
import atexit, json, os, sys
def _loaded():
    forbidden = %r
    found = sorted(m for m in list(sys.modules)
                   if any(m == f or m.startswith(f + '.') for f in forbidden))
    with open(os.environ['DOCTOR_IMPORTS_OUT'], 'w') as f:
        json.dump(found, f)
atexit.register(_loaded)
''' % (FORBIDDEN,)


class TestRuntimeImports(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def loaded(self, code, *argv):
        """Forbidden modules ``code`` loaded in a fresh interpreter."""
        out = os.path.join(self.tmp, 'imports.json')
        env = dict(os.environ, DOCTOR_IMPORTS_OUT=out)
        proc = subprocess.run(
            [sys.executable, '-c', _PROBE + code, *argv], env=env,
            capture_output=True, text=True, timeout=120, check=False)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        with open(out) as f:
            return proc, json.load(f)

    def test_service_commands(self):
        for module in ('doctor_plugin.cmd.inspector',
                       'doctor_plugin.cmd.listener',
                       'doctor_plugin.cmd.monitor',
                       'doctor_plugin.cmd.heartbeat'):
            _, found = self.loaded(f'import {module}')
            self.assertEqual([], found, f'importing {module}')

    def _conf(self):
        path = os.path.join(self.tmp, 'doctor_plugin.conf')
        with open(path, 'w') as f:
            f.write(f'[DEFAULT]\nstate_path = {self.tmp}\n'
                    f'[delivery]\nconnection = sqlite:///{self.tmp}/'
                    f'deliveries.db\n')
        return path

    def test_deliveries_list(self):
        proc, found = self.loaded(
            'import sys\nfrom doctor_plugin.cmd import cli\n'
            'sys.exit(cli.main())', 'deliveries', 'list', '--config-file',
            self._conf())
        # It did open the throwaway database (and listed nothing).
        self.assertIn('0 pending', proc.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.tmp,
                                                    'deliveries.db')))
        self.assertEqual([], found)

    def test_operator_commands_parse_without_the_bench(self):
        for argv in (['list-plugins'],
                     ['validate-config', '--help'],
                     ['bench', '--help']):
            _, found = self.loaded(
                'import sys\nfrom doctor_plugin.cmd import cli\n'
                'try:\n    sys.exit(cli.main())\n'
                'except SystemExit as e:\n'
                '    sys.exit(0 if e.code in (0, None) else e.code)',
                *argv)
            self.assertEqual([], found, argv)
