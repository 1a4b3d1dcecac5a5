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

"""Tests for doctor_plugin.event."""

import datetime
import json
import uuid

import fixtures
from oslo_utils import timeutils

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.tests import base

TraitType = event_model.TraitType
Trait = event_model.Trait
Event = event_model.Event
UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 5, 2, 10, 0, 5, 123456)


def host_down_event():
    return Event(
        message_id='0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9',
        event_type='compute.host.down',
        generated=NOW,
        traits=[
            Trait('host', TraitType.TEXT, 'compute-1'),
            Trait('report_count', TraitType.INT, 3),
            Trait('load', TraitType.FLOAT, 0.25),
            Trait('time', TraitType.DATETIME,
                  datetime.datetime(2024, 5, 2, 10, 0, 0, 500000)),
            Trait('nothing', TraitType.NONE, None),
        ],
        raw={'details': {'hostname': 'compute-1', 'status': 'down'}})


class TestTraitType(base.TestCase):

    def test_wire_codes_are_ceilometers(self):
        self.assertEqual([0, 1, 2, 3, 4],
                         [TraitType.NONE, TraitType.TEXT, TraitType.INT,
                          TraitType.FLOAT, TraitType.DATETIME])

    def test_names_are_aodhs(self):
        self.assertEqual({TraitType.NONE: 'none', TraitType.TEXT: 'string',
                          TraitType.INT: 'integer',
                          TraitType.FLOAT: 'float',
                          TraitType.DATETIME: 'datetime'},
                         event_model.TRAIT_TYPE_NAMES)


class TestTraitConversion(base.TestCase):

    def test_text(self):
        self.assertEqual('compute-1',
                         Trait.of('h', TraitType.TEXT, 'compute-1').value)
        self.assertEqual('42', Trait.of('h', TraitType.TEXT, 42).value)
        self.assertEqual('True', Trait.of('h', TraitType.TEXT, True).value)

    def test_int(self):
        self.assertEqual(42, Trait.of('n', TraitType.INT, '42').value)
        self.assertEqual(3, Trait.of('n', TraitType.INT, 3.0).value)
        self.assertIsInstance(Trait.of('n', TraitType.INT, 3.0).value, int)

    def test_int_rejects_fractions_booleans_and_words(self):
        for value in (3.5, True, False, 'x', '1.5'):
            self.assertRaises(ValueError, Trait.of, 'n', TraitType.INT,
                              value)

    def test_float(self):
        self.assertEqual(1.5, Trait.of('f', TraitType.FLOAT, '1.5').value)

    def test_float_must_be_finite(self):
        for value in ('nan', 'NaN', 'inf', '-Infinity', float('nan'),
                      float('inf')):
            self.assertRaises(ValueError, Trait.of, 'f', TraitType.FLOAT,
                              value)
        value = Trait.of('f', TraitType.FLOAT, 2).value
        self.assertEqual(2.0, value)
        self.assertIsInstance(value, float)
        self.assertRaises(ValueError, Trait.of, 'f', TraitType.FLOAT, 'x')

    def test_datetime_from_text(self):
        trait = Trait.of('t', TraitType.DATETIME, '2024-05-02T10:00:00Z')
        self.assertEqual(datetime.datetime(2024, 5, 2, 10, 0, 0),
                         trait.value)
        self.assertIsNone(trait.value.tzinfo)

    def test_datetime_from_aware_datetime(self):
        aware = datetime.datetime(2024, 5, 2, 12, 0, 0,
                                  tzinfo=datetime.timezone(
                                      datetime.timedelta(hours=2)))
        self.assertEqual(datetime.datetime(2024, 5, 2, 10, 0, 0),
                         Trait.of('t', TraitType.DATETIME, aware).value)

    def test_datetime_rejects_garbage(self):
        self.assertRaises(ValueError, Trait.of, 't', TraitType.DATETIME,
                          'tuesday')

    def test_none_keeps_the_value(self):
        marker = {'a': 1}
        self.assertIs(marker, Trait.of('x', TraitType.NONE, marker).value)

    def test_none_value_stays_none_for_every_type(self):
        for dtype in TraitType:
            self.assertIsNone(Trait.of('x', dtype, None).value)

    def test_dtype_given_as_wire_code(self):
        trait = Trait.of('n', 2, '7')
        self.assertIs(TraitType.INT, trait.dtype)
        self.assertEqual(7, trait.value)

    def test_unknown_dtype(self):
        self.assertRaises(ValueError, Trait.of, 'x', 9, 'v')

    def test_trait_type_of(self):
        for value, expected in ((None, TraitType.NONE),
                                (True, TraitType.TEXT),
                                (5, TraitType.INT),
                                (0.5, TraitType.FLOAT),
                                (NOW, TraitType.DATETIME),
                                ('x', TraitType.TEXT),
                                ([1], TraitType.TEXT)):
            self.assertIs(expected, event_model.trait_type_of(value),
                          repr(value))


class TestTraitWireForm(base.TestCase):

    def test_serialize_gives_triples(self):
        self.assertEqual(['host', 1, 'compute-1'],
                         Trait('host', TraitType.TEXT,
                               'compute-1').serialize())
        self.assertEqual(['n', 2, 3],
                         Trait('n', TraitType.INT, 3).serialize())
        self.assertEqual(['f', 3, 0.5],
                         Trait('f', TraitType.FLOAT, 0.5).serialize())
        self.assertEqual(['t', 4, '2024-05-02T10:00:05.123456'],
                         Trait('t', TraitType.DATETIME, NOW).serialize())
        self.assertEqual(['z', 0, None],
                         Trait('z', TraitType.NONE, None).serialize())

    def test_serialized_dtype_is_a_plain_int(self):
        dtype = Trait('n', TraitType.INT, 3).serialize()[1]
        self.assertIs(int, type(dtype))
        self.assertEqual('["n", 2, 3]',
                         json.dumps(Trait('n', TraitType.INT, 3).serialize()))

    def test_round_trip_for_every_type(self):
        for trait in host_down_event().traits:
            wire = json.loads(json.dumps(trait.serialize()))
            self.assertEqual(trait, Trait.deserialize(wire))

    def test_deserialize_accepts_tuples(self):
        self.assertEqual(Trait('h', TraitType.TEXT, 'x'),
                         Trait.deserialize(('h', 1, 'x')))

    def test_deserialize_rejects_non_triples(self):
        for data in ('host', {'name': 'h'}, ['h', 1], ['h', 1, 'x', 'y'],
                     None):
            exc = self.assertRaises(ValueError, Trait.deserialize, data)
            self.assertIn('[name, dtype, value] triple', str(exc))

    def test_deserialize_rejects_bad_names(self):
        for name in ('', None, 3):
            exc = self.assertRaises(ValueError, Trait.deserialize,
                                    [name, 1, 'x'])
            self.assertIn('trait name must be a non-empty string', str(exc))

    def test_deserialize_rejects_bad_dtypes(self):
        for dtype in (9, 'text', None, -1):
            exc = self.assertRaises(ValueError, Trait.deserialize,
                                    ['host', dtype, 'x'])
            self.assertIn("trait 'host'", str(exc))

    def test_deserialize_rejects_values_of_the_wrong_type(self):
        for data in (['n', 2, 'many'], ['n', 2, 1.5], ['f', 3, 'x'],
                     ['t', 4, 'not a time'], ['t', 4, 1714644000],
                     ['n', 2, [1]]):
            exc = self.assertRaises(ValueError, Trait.deserialize, data)
            self.assertIn(f'trait {data[0]!r}', str(exc))


class TestParseDatetime(base.TestCase):

    def test_z_suffix(self):
        self.assertEqual(datetime.datetime(2024, 5, 2, 10, 0, 0),
                         event_model.parse_datetime('2024-05-02T10:00:00Z'))

    def test_positive_offset(self):
        self.assertEqual(
            datetime.datetime(2024, 5, 2, 8, 0, 0, 123456),
            event_model.parse_datetime('2024-05-02T10:00:00.123456+02:00'))

    def test_negative_half_hour_offset(self):
        self.assertEqual(
            datetime.datetime(2024, 5, 2, 15, 30, 0),
            event_model.parse_datetime('2024-05-02T10:00:00-05:30'))

    def test_offset_crossing_midnight(self):
        self.assertEqual(
            datetime.datetime(2024, 5, 1, 23, 0, 0),
            event_model.parse_datetime('2024-05-02T01:00:00+02:00'))

    def test_naive_is_taken_as_utc(self):
        self.assertEqual(
            datetime.datetime(2024, 5, 2, 10, 0, 0, 123456),
            event_model.parse_datetime('2024-05-02T10:00:00.123456'))

    def test_oslo_messaging_timestamp(self):
        self.assertEqual(
            datetime.datetime(2024, 5, 2, 10, 0, 5, 123456),
            event_model.parse_datetime('2024-05-02 10:00:05.123456'))

    def test_surrounding_white_space(self):
        self.assertEqual(datetime.datetime(2024, 5, 2, 10, 0, 0),
                         event_model.parse_datetime(' 2024-05-02T10:00Z\n'))

    def test_result_is_naive(self):
        for value in ('2024-05-02T10:00:00Z', '2024-05-02T10:00:00+01:00',
                      datetime.datetime(2024, 5, 2, tzinfo=UTC), NOW):
            self.assertIsNone(event_model.parse_datetime(value).tzinfo)

    def test_fractions_of_any_length(self):
        # Python 3.10's fromisoformat takes only 3 or 6 digits.
        for text, micro in (('2024-05-02T10:00:00.1Z', 100000),
                            ('2024-05-02T10:00:00.12345', 123450),
                            ('2024-05-02T10:00:00.1234567Z', 123456)):
            self.assertEqual(datetime.datetime(2024, 5, 2, 10, 0, 0, micro),
                             event_model.parse_datetime(text), text)

    def test_agrees_with_oslo_utils(self):
        # The fast path must read every time as oslo.utils (iso8601) does.
        for text in ('2024-05-02T10:00:00Z', '2024-05-02T10:00:00.5+02:00',
                     '2024-05-02 10:00:05.123456', '2024-05-02T10:00Z',
                     '2024-12-31T23:59:59.999999-01:00', '20240502T100000Z'):
            expected = timeutils.parse_isotime(text).astimezone(
                UTC).replace(tzinfo=None)
            self.assertEqual(expected, event_model.parse_datetime(text),
                             text)

    def test_naive_datetime_passes_through(self):
        self.assertEqual(NOW, event_model.parse_datetime(NOW))

    def test_invalid_text(self):
        for value in ('', 'now', '2024-02-30T00:00:00', '10:00:00Z'):
            self.assertRaises(ValueError, event_model.parse_datetime, value)

    def test_non_text_is_a_type_error(self):
        for value in (1714644000, None, ['2024-05-02']):
            self.assertRaises(TypeError, event_model.parse_datetime, value)

    def test_utcnow_is_naive_utc(self):
        before = datetime.datetime.now(UTC).replace(tzinfo=None)
        now = event_model.utcnow()
        after = datetime.datetime.now(UTC).replace(tzinfo=None)
        self.assertIsNone(now.tzinfo)
        self.assertTrue(before <= now <= after)


class TestEvent(base.TestCase):

    def test_create_types_dict_traits(self):
        ev = Event.create('compute.host.down',
                          {'host': 'compute-1', 'count': 2, 'load': 0.5,
                           'time': NOW, 'forced': True, 'gone': None})
        self.assertEqual([
            Trait('host', TraitType.TEXT, 'compute-1'),
            Trait('count', TraitType.INT, 2),
            Trait('load', TraitType.FLOAT, 0.5),
            Trait('time', TraitType.DATETIME, NOW),
            Trait('forced', TraitType.TEXT, 'True'),
            Trait('gone', TraitType.NONE, None),
        ], ev.traits)

    def test_create_defaults(self):
        self.useFixture(fixtures.MockPatch('doctor_plugin.event.utcnow',
                                           return_value=NOW))
        ev = Event.create('compute.host.down', [])
        self.assertEqual(4, uuid.UUID(ev.message_id).version)
        self.assertEqual(NOW, ev.generated)
        self.assertEqual({}, ev.raw)
        self.assertNotEqual(ev.message_id,
                            Event.create('compute.host.down',
                                         []).message_id)

    def test_create_keeps_given_values(self):
        raw = {'a': 1}
        ev = Event.create('x', [Trait('h', TraitType.TEXT, 'c')], raw=raw,
                          generated=NOW, message_id='id-1')
        self.assertEqual(('id-1', NOW), (ev.message_id, ev.generated))
        self.assertIs(raw, ev.raw)

    def test_trait_lookup(self):
        ev = host_down_event()
        self.assertEqual('compute-1', ev.trait('host'))
        self.assertIsNone(ev.trait('missing'))
        self.assertEqual('dflt', ev.trait('missing', 'dflt'))
        self.assertEqual(3, ev.trait_dict()['report_count'])
        self.assertEqual(5, len(ev.trait_dict()))

    def test_serialize(self):
        self.assertEqual({
            'message_id': '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9',
            'event_type': 'compute.host.down',
            'generated': '2024-05-02T10:00:05.123456',
            'traits': [
                ['host', 1, 'compute-1'],
                ['report_count', 2, 3],
                ['load', 3, 0.25],
                ['time', 4, '2024-05-02T10:00:00.500000'],
                ['nothing', 0, None],
            ],
            'raw': {'details': {'hostname': 'compute-1', 'status': 'down'}},
        }, host_down_event().serialize())

    def test_round_trip_through_json(self):
        ev = host_down_event()
        wire = json.loads(json.dumps(ev.serialize()))
        self.assertEqual(ev, Event.deserialize(wire))

    def test_deserialize_defaults(self):
        ev = Event.deserialize({'message_id': 'm', 'event_type': 'e',
                                'generated': '2024-05-02T10:00:05Z'})
        self.assertEqual([], ev.traits)
        self.assertEqual({}, ev.raw)
        self.assertEqual(datetime.datetime(2024, 5, 2, 10, 0, 5),
                         ev.generated)

    def test_deserialize_rejects_non_objects(self):
        exc = self.assertRaises(ValueError, Event.deserialize, ['m'])
        self.assertIn('got list', str(exc))

    def test_deserialize_requires_string_fields(self):
        for field in ('message_id', 'event_type', 'generated'):
            for bad in (None, '', 5):
                data = host_down_event().serialize()
                if bad is None:
                    del data[field]
                else:
                    data[field] = bad
                exc = self.assertRaises(ValueError, Event.deserialize, data)
                self.assertIn(repr(field), str(exc))

    def test_deserialize_rejects_bad_generated(self):
        data = host_down_event().serialize()
        data['generated'] = 'yesterday'
        exc = self.assertRaises(ValueError, Event.deserialize, data)
        self.assertIn("'generated' is not an ISO 8601 time", str(exc))

    def test_deserialize_rejects_bad_traits(self):
        data = host_down_event().serialize()
        data['traits'] = {'host': 'compute-1'}
        exc = self.assertRaises(ValueError, Event.deserialize, data)
        self.assertIn("'traits' must be a list", str(exc))
        data['traits'] = [['host', 2, 'compute-1']]
        exc = self.assertRaises(ValueError, Event.deserialize, data)
        self.assertIn("trait 'host'", str(exc))

    def test_deserialize_rejects_bad_raw(self):
        data = host_down_event().serialize()
        data['raw'] = ['not', 'an', 'object']
        exc = self.assertRaises(ValueError, Event.deserialize, data)
        self.assertIn("'raw' must be an object", str(exc))


class TestCheckLimits(base.TestCase):

    def check(self, events, max_traits=5, max_string_length=20):
        event_model.check_limits(events, max_traits, max_string_length)

    def test_events_within_the_limits_pass(self):
        self.check([Event.create('compute.host.down',
                                 {'host': 'h' * 20, 'a': 1, 'b': 2.0,
                                  'c': None, 'd': 'x'})])

    def test_too_many_traits(self):
        ok = Event.create('compute.host.down', {'host': 'h'})
        many = Event.create('compute.host.down',
                            {f't{i}': i for i in range(6)})
        exc = self.assertRaises(exceptions.LimitExceeded, self.check,
                                [ok, many])
        self.assertEqual('events.1.traits', exc.field)
        self.assertIn('6 traits exceeds the limit of 5', str(exc))
        self.assertIn('[inspector] max_traits', str(exc))
        self.assertIsInstance(exc, exceptions.InvalidPayload)

    def test_too_long_event_type(self):
        exc = self.assertRaises(exceptions.LimitExceeded, self.check,
                                [Event.create('x' * 21, {})])
        self.assertEqual('events.0.event_type', exc.field)
        self.assertIn('[inspector] max_string_length', str(exc))

    def test_too_long_trait_name(self):
        exc = self.assertRaises(exceptions.LimitExceeded, self.check,
                                [Event.create('e', {'n' * 21: 1})])
        self.assertIn('trait name of 21 characters', str(exc))

    def test_too_long_text_value_names_the_trait_not_the_value(self):
        value = 'v' * 21
        exc = self.assertRaises(exceptions.LimitExceeded, self.check,
                                [Event.create('e', {'host': value})])
        self.assertEqual('events.0.traits.host', exc.field)
        self.assertIn('21 characters', str(exc))
        self.assertNotIn(value, str(exc))

    def test_default_length_is_ceilometers_trait_text(self):
        self.assertEqual(255, event_model.MAX_STRING_LENGTH)
        opts = {o.name: o for o in event_model.LIMIT_OPTS}
        self.assertEqual(255, opts['max_string_length'].default)
