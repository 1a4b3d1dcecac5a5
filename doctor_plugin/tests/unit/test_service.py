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

"""Tests for doctor_plugin.service: what our commands do first."""

import json
import subprocess
import sys

from doctor_plugin.tests import base

#: Prints, as JSON, oslo.service's backend and the warning filters added,
#: once the modules of argv are imported in a fresh interpreter.
PROBE = '''
import importlib, json, sys, warnings
before = list(warnings.filters)
for name in sys.argv[1:]:
    importlib.import_module(name)
from oslo_service import backend
chosen = backend.get_backend_type()
print(json.dumps({"backend": chosen and chosen.value,
                  "filters": len(warnings.filters) - len(before)}))
'''


class TestBackend(base.TestCase):

    def probe(self, *modules):
        proc = subprocess.run([sys.executable, '-c', PROBE, *modules],
                              capture_output=True, text=True, timeout=120,
                              check=True)
        return json.loads(proc.stdout), proc.stderr

    def test_importing_doctor_plugin_chooses_nothing(self):
        found, _ = self.probe('doctor_plugin')
        self.assertEqual({'backend': None, 'filters': 0}, found)

    def test_our_plugins_leave_the_choice_to_their_host(self):
        # What Aodh and Ceilometer load: the backend is then whatever
        # oslo.messaging's import chose, never one of ours.
        found, _ = self.probe('doctor_plugin.integrations.aodh',
                              'doctor_plugin.integrations.ceilometer')
        self.assertNotEqual('threading', found['backend'])

    def test_our_commands_run_on_threads_without_eventlets_banner(self):
        for command in ('inspector', 'listener', 'monitor', 'heartbeat',
                        'cli'):
            found, stderr = self.probe(f'doctor_plugin.cmd.{command}')
            self.assertEqual('threading', found['backend'], command)
            self.assertNotIn('Eventlet is deprecated', stderr, command)
