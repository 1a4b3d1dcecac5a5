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

"""Tests for doctor_plugin.transformers.doctor."""

import copy
import datetime
import json
import uuid

import fixtures

from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.tests import base
from doctor_plugin.transformers import doctor
from doctor_plugin.transformers import host_events
from doctor_plugin.transformers import payload as checks

TEXT = event_model.TraitType.TEXT
DATETIME = event_model.TraitType.DATETIME
NOW = datetime.datetime(2017, 4, 22, 12, 0, 1, 500000)


def sample_monitor_body():
    """The body Doctor's sample monitor PUTs to the inspector's /events."""
    return [{
        'id': 'monitor_sample_id1',
        'time': '2017-04-22T12:00:00.123456',
        'type': 'compute.host.down',
        'details': {
            'hostname': 'compute-1',
            'status': 'down',
            'monitor': 'monitor_sample',
            'monitor_event_id': 'monitor_sample_event1',
        },
    }]


def vitrage_style_body():
    """A body carrying the extra details Vitrage's Doctor datasource uses."""
    return [{
        'time': '2016-04-12T08:00:00Z',
        'type': 'compute.host.down',
        'details': {
            'hostname': 'compute-2',
            'source': 'sample_monitor',
            'cause': 'link-down',
            'severity': 'critical',
            'status': 'down',
            'monitor': 'sample_monitor',
            'monitor_id': 'monitor-1',
            'monitor_event_id': '123',
        },
    }]


class TestDoctorEventTransformer(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatch('doctor_plugin.event.utcnow',
                                           return_value=NOW))
        self.transformer = doctor.DoctorEventTransformer(self.conf)

    def assertInvalid(self, body, field, problem):
        exc = self.assertRaises(exceptions.InvalidPayload,
                                self.transformer.transform, body)
        self.assertEqual(field, exc.field)
        self.assertIn(problem, exc.problem)
        return exc

    def test_loaded_through_entry_point(self):
        transformer = plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE,
                                          'doctor', self.conf)
        self.assertIsInstance(transformer, doctor.DoctorEventTransformer)
        # On the bus, the reports of monitors with report_to = bus.
        self.assertEqual(('doctor.monitor.report',),
                         transformer.event_types)

    def test_sample_monitor_body(self):
        body = sample_monitor_body()
        events = self.transformer.transform(body)
        self.assertEqual(1, len(events))
        ev = events[0]
        self.assertEqual('compute.host.down', ev.event_type)
        self.assertEqual(NOW, ev.generated)
        self.assertIs(body[0], ev.raw)
        self.assertEqual([
            event_model.Trait('host', TEXT, 'compute-1'),
            event_model.Trait('status', TEXT, 'down'),
            event_model.Trait('monitor', TEXT, 'monitor_sample'),
            event_model.Trait('monitor_event_id', TEXT,
                              'monitor_sample_event1'),
            event_model.Trait('time', DATETIME,
                              datetime.datetime(2017, 4, 22, 12, 0, 0,
                                                123456)),
        ], ev.traits)

    def test_metadata_is_ignored(self):
        events = self.transformer.transform(sample_monitor_body(),
                                            {'event_type': 'whatever'})
        self.assertEqual('compute.host.down', events[0].event_type)

    def test_status_up_gives_host_up(self):
        body = sample_monitor_body()
        body[0]['details']['status'] = 'up'
        ev = self.transformer.transform(body)[0]
        self.assertEqual('compute.host.up', ev.event_type)
        self.assertEqual('up', ev.trait('status'))

    def test_optional_details_become_traits(self):
        ev = self.transformer.transform(vitrage_style_body())[0]
        self.assertEqual({
            'host': 'compute-2',
            'status': 'down',
            'monitor': 'sample_monitor',
            'monitor_event_id': '123',
            'time': datetime.datetime(2016, 4, 12, 8, 0, 0),
            'source': 'sample_monitor',
            'cause': 'link-down',
            'severity': 'critical',
            'monitor_id': 'monitor-1',
        }, ev.trait_dict())
        for name in set(doctor.OPTIONAL_DETAILS) - {'planes'}:
            trait = [t for t in ev.traits if t.name == name][0]
            self.assertEqual(TEXT, trait.dtype)

    def test_planes_become_a_trait(self):
        body = sample_monitor_body()
        body[0]['details']['planes'] = 'management,tenant'
        ev = self.transformer.transform(body)[0]
        self.assertEqual('management,tenant', ev.trait('planes'))

    def test_degraded_host_report(self):
        body = sample_monitor_body()
        body[0]['type'] = 'compute.host.degraded'
        body[0]['details'].update(status='degraded', planes='management',
                                  monitor_id='mon-1')
        ev = self.transformer.transform(body)[0]
        self.assertEqual('compute.host.degraded', ev.event_type)
        self.assertEqual('degraded', ev.trait('status'))
        self.assertEqual('management', ev.trait('planes'))
        body[0]['details']['status'] = 'restored'
        restored = self.transformer.transform(body)[0]
        self.assertEqual('compute.host.degraded', restored.event_type)
        self.assertNotEqual(ev.message_id, restored.message_id)

    def test_isolated_monitor_report(self):
        body = sample_monitor_body()
        body[0]['type'] = 'doctor.monitor.isolated'
        body[0]['details'].update(status='isolated', hostname='mon-1',
                                  monitor_id='mon-1')
        ev = self.transformer.transform(body)[0]
        self.assertEqual('doctor.monitor.isolated', ev.event_type)
        self.assertEqual('isolated', ev.trait('status'))
        self.assertEqual('mon-1', ev.trait('monitor_id'))

    def test_status_must_fit_the_type(self):
        body = sample_monitor_body()
        body[0]['type'] = 'compute.host.degraded'
        self.assertInvalid(body, '0.details.status',
                           "must be 'degraded' or 'restored' for "
                           "'compute.host.degraded', got 'down'")
        body[0]['type'] = 'doctor.monitor.isolated'
        self.assertInvalid(body, '0.details.status',
                           "must be 'isolated' or 'connected' for "
                           "'doctor.monitor.isolated', got 'down'")
        body[0]['type'] = 'compute.host.down'
        body[0]['details']['status'] = 'isolated'
        self.assertInvalid(body, '0.details.status',
                           "must be 'down' or 'up' for "
                           "'compute.host.down', got 'isolated'")

    def test_absent_optional_details_give_no_trait(self):
        ev = self.transformer.transform(sample_monitor_body())[0]
        names = {t.name for t in ev.traits}
        self.assertEqual(set(), names & set(doctor.OPTIONAL_DETAILS))

    def test_unknown_detail_keys_are_ignored(self):
        body = sample_monitor_body()
        body[0]['details']['rack'] = 'r12'
        body[0]['details']['extra'] = {'nested': [1, 2]}
        ev = self.transformer.transform(body)[0]
        self.assertIsNone(ev.trait('rack'))
        self.assertIsNone(ev.trait('extra'))
        self.assertEqual('r12', ev.raw['details']['rack'])

    def test_time_with_offset_is_converted_to_naive_utc(self):
        body = sample_monitor_body()
        body[0]['time'] = '2017-04-22T14:00:00+02:00'
        ev = self.transformer.transform(body)[0]
        self.assertEqual(datetime.datetime(2017, 4, 22, 12, 0, 0),
                         ev.trait('time'))
        self.assertIsNone(ev.trait('time').tzinfo)

    def test_several_events_keep_their_order(self):
        body = sample_monitor_body() + vitrage_style_body()
        body.append(copy.deepcopy(body[0]))
        body[2]['details']['hostname'] = 'compute-3'
        events = self.transformer.transform(body)
        self.assertEqual(['compute-1', 'compute-2', 'compute-3'],
                         [ev.trait('host') for ev in events])
        self.assertEqual(3, len({ev.message_id for ev in events}))

    def test_message_id_is_uuid5_of_the_detection(self):
        ev = self.transformer.transform(sample_monitor_body())[0]
        expected = uuid.uuid5(
            host_events.DETECTION_NAMESPACE,
            json.dumps(['monitor_sample', 'monitor_sample_event1',
                        'compute-1', 'down']))
        self.assertEqual(str(expected), ev.message_id)
        self.assertEqual(5, uuid.UUID(ev.message_id).version)

    def test_repeated_report_keeps_its_message_id(self):
        first = self.transformer.transform(sample_monitor_body())[0]
        again = sample_monitor_body()
        # A retry: sent later, with another request id and extra details.
        again[0]['time'] = '2017-04-22T12:00:03Z'
        again[0]['id'] = 'monitor_sample_id2'
        again[0]['details']['severity'] = 'critical'
        second = self.transformer.transform(again)[0]
        self.assertEqual(first.message_id, second.message_id)

    def test_message_id_depends_on_each_detection_field(self):
        reference = self.transformer.transform(
            sample_monitor_body())[0].message_id
        for key, value in (('hostname', 'compute-9'), ('status', 'up'),
                           ('monitor', 'other_monitor'),
                           ('monitor_event_id', 'monitor_sample_event2')):
            body = sample_monitor_body()
            body[0]['details'][key] = value
            message_id = self.transformer.transform(body)[0].message_id
            self.assertNotEqual(reference, message_id, key)

    def test_detection_id_fields_cannot_run_together(self):
        self.assertNotEqual(host_events.detection_id('a', 'bc', 'h', 'down'),
                            host_events.detection_id('ab', 'c', 'h', 'down'))

    def test_round_trip_through_serialize(self):
        for body in (sample_monitor_body(), vitrage_style_body()):
            ev = self.transformer.transform(body)[0]
            wire = json.loads(json.dumps(ev.serialize()))
            self.assertEqual(ev, event_model.Event.deserialize(wire))

    def test_serialized_traits_are_ceilometer_triples(self):
        ev = self.transformer.transform(sample_monitor_body())[0]
        traits = ev.serialize()['traits']
        self.assertIn(['host', 1, 'compute-1'], traits)
        self.assertIn(['time', 4, '2017-04-22T12:00:00.123456'], traits)

    # The body

    def test_body_must_be_a_list(self):
        for body, got in (({'time': 'x'}, 'object'), (None, 'null'),
                          ('[]', 'string'), (7, 'number')):
            exc = self.assertInvalid(body, '', f'JSON array of Doctor '
                                               f'events, got {got}')
            self.assertTrue(str(exc).startswith('the body must be'))

    def test_body_must_not_be_empty(self):
        self.assertInvalid([], '', 'non-empty')

    def test_body_of_max_events_is_accepted(self):
        body = sample_monitor_body() * checks.MAX_EVENTS
        self.assertEqual(checks.MAX_EVENTS,
                         len(self.transformer.transform(body)))

    def test_body_longer_than_max_events_is_rejected(self):
        self.assertEqual(1000, checks.MAX_EVENTS)
        body = sample_monitor_body() * (checks.MAX_EVENTS + 1)
        exc = self.assertInvalid(body, '', 'at most 1000')
        self.assertIn('1001 events', exc.problem)

    def test_element_must_be_an_object(self):
        body = sample_monitor_body() + [['compute.host.down']]
        self.assertInvalid(body, '1', 'must be an object, got array')

    def test_invalid_element_rejects_the_whole_body(self):
        body = sample_monitor_body() + vitrage_style_body()
        body[1]['details']['status'] = 'dwn'
        exc = self.assertInvalid(body, '1.details.status',
                                 "must be 'down' or 'up' for "
                                 "'compute.host.down', got 'dwn'")
        self.assertEqual("1.details.status: must be 'down' or 'up' for "
                         "'compute.host.down', got 'dwn'", str(exc))

    # id

    def test_id_is_optional(self):
        body = sample_monitor_body()
        del body[0]['id']
        self.assertEqual(1, len(self.transformer.transform(body)))

    def test_id_must_be_a_string(self):
        body = sample_monitor_body()
        body[0]['id'] = 17
        self.assertInvalid(body, '0.id', 'non-empty string of at most 255 '
                                         'characters, got number')

    # type

    def test_type_is_required(self):
        body = sample_monitor_body()
        del body[0]['type']
        self.assertInvalid(body, '0.type',
                           "is required (one of 'compute.host.down', "
                           "'compute.host.degraded', "
                           "'doctor.monitor.isolated')")

    def test_type_must_be_a_string(self):
        body = sample_monitor_body()
        body[0]['type'] = ['compute.host.down']
        self.assertInvalid(body, '0.type', 'got array')

    def test_unknown_type_names_the_supported_types(self):
        body = sample_monitor_body()
        body[0]['type'] = 'compute.host.reboot'
        self.assertInvalid(body, '0.type',
                           "unsupported event type 'compute.host.reboot'; "
                           "supported types: 'compute.host.down'")

    def test_up_is_a_status_not_a_type(self):
        body = sample_monitor_body()
        body[0]['type'] = 'compute.host.up'
        self.assertInvalid(body, '0.type', 'unsupported event type')

    # time

    def test_time_is_required(self):
        body = sample_monitor_body()
        del body[0]['time']
        self.assertInvalid(body, '0.time', 'is required (an ISO 8601 time')

    def test_time_must_be_a_string(self):
        body = sample_monitor_body()
        body[0]['time'] = 1492862400
        self.assertInvalid(body, '0.time', 'got number')

    def test_time_must_parse(self):
        for value in ('yesterday', '2017-13-01T00:00:00',
                      '2017-04-22T25:00:00'):
            body = sample_monitor_body()
            body[0]['time'] = value
            self.assertInvalid(body, '0.time',
                               f'must be an ISO 8601 time such as '
                               f"'2017-04-22T12:00:00.123456Z', got "
                               f'{value!r}')

    def test_time_out_of_range_after_offset_is_rejected(self):
        body = sample_monitor_body()
        body[0]['time'] = '0001-01-01T00:00:00+01:00'
        self.assertInvalid(body, '0.time', 'must be an ISO 8601 time')

    # details

    def test_details_are_required(self):
        body = sample_monitor_body()
        del body[0]['details']
        self.assertInvalid(body, '0.details', 'is required (an object)')

    def test_details_must_be_an_object(self):
        body = sample_monitor_body()
        body[0]['details'] = 'compute-1 down'
        self.assertInvalid(body, '0.details', 'must be an object, got '
                                              'string')

    def test_each_required_detail_is_required(self):
        for key in ('hostname', 'status', 'monitor', 'monitor_event_id'):
            body = sample_monitor_body()
            del body[0]['details'][key]
            self.assertInvalid(body, f'0.details.{key}', 'is required')

    def test_required_details_must_be_usable_strings(self):
        for key in doctor.REQUIRED_DETAILS:
            for value, got in ((None, 'got null'), (1, 'got number'),
                               (True, 'got boolean'), ('', "got ''"),
                               ('  ', "got '  '"),
                               ('x' * 256, 'got a string of 256 '
                                           'characters')):
                body = sample_monitor_body()
                body[0]['details'][key] = value
                self.assertInvalid(body, f'0.details.{key}', got)

    def test_strings_of_255_characters_are_accepted(self):
        body = sample_monitor_body()
        body[0]['details']['hostname'] = 'h' * 255
        body[0]['details']['cause'] = 'c' * 255
        ev = self.transformer.transform(body)[0]
        self.assertEqual('h' * 255, ev.trait('host'))
        self.assertEqual('c' * 255, ev.trait('cause'))

    def test_status_is_case_sensitive(self):
        body = sample_monitor_body()
        body[0]['details']['status'] = 'DOWN'
        self.assertInvalid(body, '0.details.status',
                           "must be 'down' or 'up' for "
                           "'compute.host.down', got 'DOWN'")

    def test_optional_details_must_be_strings_when_present(self):
        for key in doctor.OPTIONAL_DETAILS:
            for value, got in ((None, 'got null'), (3, 'got number'),
                               ({'a': 1}, 'got object'), ('', "got ''"),
                               ('y' * 256, 'got a string of 256 '
                                           'characters')):
                body = vitrage_style_body()
                body[0]['details'][key] = value
                self.assertInvalid(body, f'0.details.{key}', got)

    def test_error_message_is_field_then_problem(self):
        body = sample_monitor_body()
        body[0]['details']['monitor'] = ''
        exc = self.assertInvalid(body, '0.details.monitor', 'non-empty')
        self.assertTrue(str(exc).startswith('0.details.monitor: must be '))
