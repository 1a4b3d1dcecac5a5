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

"""Tests for doctor_plugin.alarms.definitions."""

import datetime
import os
import uuid

import fixtures

from doctor_plugin.alarms import definitions
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.tests import base


def raw_alarm(**overrides):
    raw = {
        'name': 'host-down-a',
        'project_id': 'tenant-a',
        'event_rule': {'event_type': 'compute.host.down'},
        'alarm_actions': ['http://127.0.0.1:12346/a'],
    }
    raw.update(overrides)
    return raw


class TestParse(base.TestCase):

    def parse_one(self, **overrides):
        (alarm,) = definitions.parse({'alarms': [raw_alarm(**overrides)]},
                                     'alarms.yaml')
        return alarm

    def assertInvalid(self, raw, entry, fragment, data=None):
        data = data if data is not None else {'alarms': [raw]}
        exc = self.assertRaises(exceptions.ConfigurationError,
                                definitions.parse, data, 'alarms.yaml')
        self.assertEqual('alarms.yaml', exc.source)
        self.assertEqual(entry, exc.entry)
        self.assertIn(fragment, exc.problem)
        return exc

    def test_defaults(self):
        alarm = definitions.parse({'alarms': [{
            'name': 'any', 'event_rule': {}}]})[0]
        self.assertEqual('*', alarm.event_type)
        self.assertEqual((), alarm.query)
        self.assertIsNone(alarm.project_id)
        self.assertEqual('critical', alarm.severity)
        self.assertFalse(alarm.repeat_actions)
        self.assertTrue(alarm.enabled)
        self.assertEqual((), alarm.alarm_actions)
        self.assertEqual((), alarm.ok_actions)
        self.assertEqual((), alarm.insufficient_data_actions)
        self.assertEqual('', alarm.description)

    def test_full_alarm(self):
        alarm = self.parse_one(
            alarm_id='a-1', description='tell tenant A', type='event',
            severity='low', repeat_actions=True, enabled=False,
            ok_actions=['log://'], insufficient_data_actions=['log://'],
            event_rule={'event_type': 'compute.host.*', 'query': [
                {'field': 'traits.host', 'op': 'ne', 'value': 'c-2'}]})
        self.assertEqual('a-1', alarm.alarm_id)
        self.assertEqual('host-down-a', alarm.name)
        self.assertEqual('tell tenant A', alarm.description)
        self.assertEqual('tenant-a', alarm.project_id)
        self.assertEqual('low', alarm.severity)
        self.assertTrue(alarm.repeat_actions)
        self.assertFalse(alarm.enabled)
        self.assertEqual('compute.host.*', alarm.event_type)
        self.assertEqual((definitions.QueryTerm('traits.host', 'ne', 'c-2'),),
                         alarm.query)
        self.assertEqual(('http://127.0.0.1:12346/a',), alarm.alarm_actions)
        self.assertEqual(('log://',), alarm.ok_actions)
        self.assertEqual(('log://',), alarm.insufficient_data_actions)

    def test_generated_alarm_id_is_stable_and_project_scoped(self):
        first = self.parse_one()
        again = self.parse_one()
        other_project = self.parse_one(project_id='tenant-b')
        self.assertEqual(first.alarm_id, again.alarm_id)
        self.assertNotEqual(first.alarm_id, other_project.alarm_id)
        self.assertEqual(5, uuid.UUID(first.alarm_id).version)

    def test_query_values_are_typed(self):
        alarm = self.parse_one(event_rule={'query': [
            {'field': 'traits.count', 'value': '3', 'type': 'integer'},
            {'field': 'traits.load', 'value': '0.5', 'type': 'float'},
            {'field': 'traits.time', 'value': '2017-04-22T12:00:00Z',
             'type': 'datetime'},
            {'field': 'traits.host', 'value': 7}]})
        self.assertEqual([3, 0.5, datetime.datetime(2017, 4, 22, 12), '7'],
                         [t.value for t in alarm.query])
        self.assertEqual(['eq'] * 4, [t.op for t in alarm.query])

    def test_empty_documents(self):
        self.assertEqual([], definitions.parse(None))
        self.assertEqual([], definitions.parse({'alarms': []}))

    def test_not_a_mapping_with_alarms(self):
        self.assertInvalid(None, None, '"alarms" list', data=['a'])
        self.assertInvalid(None, None, '"alarms" list',
                           data={'alarms': {'name': 'a'}})

    def test_alarm_not_a_mapping(self):
        self.assertInvalid('host-down', 'alarms[0]', 'must be a mapping')

    def test_name_required(self):
        self.assertInvalid(raw_alarm(name=''), 'alarms[0]',
                           '"name" must be a non-empty string')

    def test_unknown_key(self):
        self.assertInvalid(raw_alarm(threshold_rule={}),
                           'alarms[0] (host-down-a)',
                           'unknown keys: threshold_rule')

    def test_only_event_alarms(self):
        self.assertInvalid(raw_alarm(type='threshold'),
                           'alarms[0] (host-down-a)',
                           "type 'threshold' is not supported")

    def test_empty_project(self):
        self.assertInvalid(raw_alarm(project_id=''),
                           'alarms[0] (host-down-a)', '"project_id"')

    def test_unknown_severity(self):
        self.assertInvalid(raw_alarm(severity='major'),
                           'alarms[0] (host-down-a)',
                           "one of low, moderate, critical, got 'major'")

    def test_flags_must_be_booleans(self):
        for flag in ('repeat_actions', 'enabled'):
            self.assertInvalid(raw_alarm(**{flag: 'yes'}),
                               'alarms[0] (host-down-a)',
                               f'"{flag}" must be true or false')

    def test_event_rule_required(self):
        raw = raw_alarm()
        del raw['event_rule']
        self.assertInvalid(raw, 'alarms[0] (host-down-a)',
                           '"event_rule" must be a mapping')

    def test_event_type_must_be_a_string(self):
        self.assertInvalid(raw_alarm(event_rule={'event_type': ''}),
                           'alarms[0] (host-down-a)',
                           '"event_rule.event_type"')

    def test_query_must_be_a_list(self):
        self.assertInvalid(
            raw_alarm(event_rule={'query': {'field': 'traits.host'}}),
            'alarms[0] (host-down-a)', '"event_rule.query" must be a list')

    def test_query_term_errors(self):
        for term, fragment in [
                ('traits.host', 'event_rule.query[0] must be a mapping'),
                ({'value': 'x'}, 'event_rule.query[0].field'),
                ({'field': 'traits.host', 'op': 'like', 'value': 'x'},
                 "event_rule.query[0].op must be one of eq, ne, lt, le, "
                 "gt, ge, got 'like'"),
                ({'field': 'traits.host'}, 'event_rule.query[0].value is '
                                           'missing'),
                ({'field': 'traits.host', 'value': 'x', 'type': 'bool'},
                 "event_rule.query[0].type must be one of string, integer, "
                 "float, datetime, got 'bool'"),
                ({'field': 'traits.count', 'value': 'many',
                  'type': 'integer'},
                 "event_rule.query[0].value 'many' is not a valid integer"),
                ({'field': 'traits.time', 'value': 'yesterday',
                  'type': 'datetime'},
                 "event_rule.query[0].value 'yesterday' is not a valid "
                 "datetime")]:
            self.assertInvalid(raw_alarm(event_rule={'query': [term]}),
                               'alarms[0] (host-down-a)', fragment)

    def test_actions_must_be_urls(self):
        for kind in ('alarm_actions', 'ok_actions',
                     'insufficient_data_actions'):
            self.assertInvalid(raw_alarm(**{kind: ['vnfm.example/alarm']}),
                               'alarms[0] (host-down-a)',
                               f'"{kind}" must be a list of notifier URLs')
            self.assertInvalid(raw_alarm(**{kind: 'log://'}),
                               'alarms[0] (host-down-a)', f'"{kind}"')

    def test_duplicate_alarm_id(self):
        # Same name and project: the same generated id.
        exc = self.assertInvalid(
            None, 'alarms[1] (host-down-a)', 'duplicate alarm_id',
            data={'alarms': [raw_alarm(), raw_alarm()]})
        self.assertIn(self.parse_one().alarm_id, exc.problem)

    def test_same_name_in_two_projects(self):
        alarms = definitions.parse({'alarms': [
            raw_alarm(), raw_alarm(project_id='tenant-b')]})
        self.assertEqual(2, len({a.alarm_id for a in alarms}))


class TestLoadFile(base.TestCase):

    def write(self, text):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'alarms.yaml')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_loads(self):
        path = self.write('alarms:\n'
                          '  - name: host-down\n'
                          '    event_rule: {event_type: compute.host.down}\n'
                          '    alarm_actions: ["log://"]\n')
        (alarm,) = definitions.load_file(path)
        self.assertEqual('host-down', alarm.name)
        self.assertEqual(('log://',), alarm.alarm_actions)

    def test_sample_file_loads(self):
        path = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                            '..', 'etc', 'doctor_plugin', 'alarms.yaml')
        self.assertNotEqual([], definitions.load_file(path))

    def test_missing(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'missing.yaml')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                definitions.load_file, path)
        self.assertEqual(path, exc.source)
        self.assertIn('cannot read the alarm definitions', exc.problem)
        self.assertIn('[alarms] definitions_file', exc.problem)

    def test_invalid_yaml(self):
        path = self.write('alarms: [\n')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                definitions.load_file, path)
        self.assertIn('is not valid YAML', exc.problem)

    def test_errors_name_file_and_alarm(self):
        path = self.write('alarms:\n  - name: x\n    severity: major\n')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                definitions.load_file, path)
        self.assertTrue(str(exc).startswith(f'{path}: alarms[0] (x): '),
                        str(exc))


class TestQueryTerm(base.TestCase):

    def setUp(self):
        super().setUp()
        self.event = event_model.Event.create(
            'compute.host.down', {'host': 'compute-1', 'count': 2,
                                  'nothing': None})

    def test_trait_field(self):
        self.assertTrue(definitions.QueryTerm(
            'traits.host', 'eq', 'compute-1').matches(self.event))

    def test_event_attribute(self):
        self.assertTrue(definitions.QueryTerm(
            'message_id', 'eq', self.event.message_id).matches(self.event))

    def test_null_and_missing_match_only_ne(self):
        for field in ('traits.nothing', 'traits.absent', 'absent',
                      'raw.absent'):
            self.assertFalse(definitions.QueryTerm(
                field, 'eq', 'x').matches(self.event), field)
            self.assertTrue(definitions.QueryTerm(
                field, 'ne', 'x').matches(self.event), field)

    def test_raw_field(self):
        event = event_model.Event.create('compute.host.down', {},
                                         raw={'payload': {'zone': 'az1'}})
        self.assertTrue(definitions.QueryTerm(
            'raw.payload.zone', 'eq', 'az1').matches(event))

    def test_uncomparable_values_do_not_match(self):
        self.assertFalse(definitions.QueryTerm(
            'traits.count', 'lt', 'many').matches(self.event))
        self.assertFalse(definitions.QueryTerm(
            'generated', 'lt', 'not a time').matches(self.event))
