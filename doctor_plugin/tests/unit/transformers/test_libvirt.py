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

"""Tests of the libvirt lifecycle transformer."""

import datetime

from doctor_plugin import exceptions
from doctor_plugin.tests import base
from doctor_plugin.transformers import libvirt

CRASH = {'host': 'compute-1',
         'domain': {'uuid': 'vm-1', 'name': 'instance-0000002a'},
         'event': 'stopped', 'detail': 'crashed',
         'time': '2026-11-25T10:00:00.5Z'}


class TestLibvirt(base.TestCase):

    def setUp(self):
        super().setUp()
        self.transformer = libvirt.LibvirtLifecycleTransformer(self.conf)

    def one(self, **change):
        (ev,) = self.transformer.transform(dict(CRASH, **change))
        return ev

    def test_crash_is_an_instance_in_error(self):
        ev = self.one()
        self.assertEqual('compute.instance.update', ev.event_type)
        self.assertEqual(('vm-1', 'compute-1', 'error', 'stopped/crashed'),
                         (ev.trait('instance_id'), ev.trait('host'),
                          ev.trait('state'), ev.trait('cause')))
        self.assertEqual('libvirt', ev.trait('monitor'))
        self.assertEqual('instance-0000002a', ev.trait('domain'))
        self.assertEqual(datetime.datetime(2026, 11, 25, 10, 0, 0, 500000),
                         ev.trait('time'))

    def test_states_and_integer_codes(self):
        for event, detail, state in (('crashed', None, 'error'),
                                     (8, None, 'error'),
                                     (5, 5, 'error'),
                                     ('stopped', 'shutdown', 'stopped'),
                                     ('suspended', None, 'paused'),
                                     ('started', 'booted', 'active')):
            self.assertEqual(state, self.one(event=event,
                                             detail=detail).trait('state'),
                             (event, detail))

    def test_definitions_are_not_state_changes(self):
        self.assertEqual([], self.transformer.transform(
            dict(CRASH, event='defined', detail=None)))

    def test_a_repeated_post_keeps_its_id(self):
        self.assertEqual(self.one().message_id, self.one().message_id)

    def test_malformed(self):
        for change, field, fragment in (
                ({'host': ''}, '0.host', 'non-empty string'),
                ({'domain': 'vm-1'}, '0.domain', 'uuid'),
                ({'event': 'exploded'}, '0.event', 'lifecycle event'),
                ({'event': 42}, '0.event', 'code 0-8'),
                ({'detail': 'melted'}, '0.detail', 'stopped detail'),
                ({'time': 'noon'}, '0.time', 'ISO 8601')):
            exc = self.assertRaises(exceptions.InvalidPayload,
                                    self.transformer.transform,
                                    [dict(CRASH, **change)])
            self.assertEqual(field, exc.field)
            self.assertIn(fragment, exc.problem)
        exc = self.assertRaises(exceptions.InvalidPayload,
                                self.transformer.transform, [])
        self.assertEqual('', exc.field)
