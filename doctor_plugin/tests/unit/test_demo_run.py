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

"""The whole demo chain, run once on the in-process fake:// bus."""

import re

import fixtures

from doctor_plugin.common import messaging
from doctor_plugin import demo
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.tests import base


class TestRunDemo(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        messaging.cleanup()
        self.addCleanup(messaging.cleanup)

    def run_demo(self, **settings):
        lines = []
        rc = demo.run_demo(
            chain_mod.ChainSettings(vms=6, tenants=2, **settings),
            timeout=10, write=lines.append)
        return rc, '\n'.join(lines)

    @staticmethod
    def mark(text, name):
        """The value column of checkpoint ``name`` in the timeline."""
        match = re.search(rf'^  {name}\s+(—|-?\d+\.\d+ ms)\s', text,
                          re.MULTILINE)
        return match.group(1) if match else None

    def test_with_nova_fixes_nova_up(self):
        rc, text = self.run_demo(nova=True)
        self.assertEqual(0, rc, text)
        self.assertIn('Nova stand-in at http://127.0.0.1:', text)
        self.assertIn('Nova fix-up: success', text)
        self.assertIn('6 of 6 instance(s) set to error', text)
        for name in ('T03', 'T04'):
            self.assertRegex(self.mark(text, name) or '',
                             r'^-?\d+\.\d+ ms$', f'{name} in\n{text}')
        self.assertIn('received 2 alarm(s)', text)

    def test_without_nova_has_no_fix_up(self):
        rc, text = self.run_demo(nova=False)
        self.assertEqual(0, rc, text)
        self.assertNotIn('Nova', text)
        self.assertEqual('—', self.mark(text, 'T03'), text)
        self.assertEqual('—', self.mark(text, 'T04'), text)
        self.assertIn('received 2 alarm(s)', text)
