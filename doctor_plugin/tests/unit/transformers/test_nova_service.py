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

"""Tests for doctor_plugin.transformers.nova_service."""

import datetime
import json
import uuid

import fixtures

from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.tests import base
from doctor_plugin.transformers import host_events
from doctor_plugin.transformers import nova_service

TEXT = event_model.TraitType.TEXT
DATETIME = event_model.TraitType.DATETIME
SERVICE_UUID = 'fa69c544-906b-4a6a-a9c6-c1f7a8078c73'
MESSAGE_ID = '5b8d3c1a-6f0e-4a3e-9d8b-2c7f1e0a9b44'
#: When the notification was sent (the metadata's timestamp).
SENT_AT = datetime.datetime(2024, 5, 2, 10, 0, 5, 123456)
NOW = datetime.datetime(2024, 5, 2, 10, 0, 5, 200000)


def service_payload(**data):
    """A nova-compute service.update payload as Nova 1.1 sends it."""
    fields = {
        'host': 'compute-1',
        'disabled': False,
        'binary': 'nova-compute',
        'topic': 'compute',
        'disabled_reason': None,
        'forced_down': False,
        'version': 66,
        'availability_zone': 'nova',
        'uuid': SERVICE_UUID,
        'last_seen_up': '2024-05-02T10:00:00Z',
        'report_count': 8124,
    }
    fields.update(data)
    return {
        'nova_object.name': 'ServiceStatusPayload',
        'nova_object.namespace': 'nova',
        'nova_object.version': '1.1',
        'nova_object.data': fields,
    }


def notification_metadata(**overrides):
    """The metadata oslo.messaging hands a notification listener."""
    metadata = {
        'event_type': 'service.update',
        'publisher_id': 'nova-compute:compute-1',
        'message_id': MESSAGE_ID,
        'timestamp': '2024-05-02 10:00:05.123456',
        'priority': 'INFO',
    }
    metadata.update(overrides)
    return metadata


class TestServiceUpdateTransformer(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatch('doctor_plugin.event.utcnow',
                                           return_value=NOW))
        self.transformer = nova_service.ServiceUpdateTransformer(self.conf)

    def transform_one(self, payload, metadata=None):
        events = self.transformer.transform(
            payload, notification_metadata() if metadata is None
            else metadata)
        self.assertEqual(1, len(events))
        return events[0]

    def assertInvalid(self, payload, field, problem, metadata=None):
        exc = self.assertRaises(
            exceptions.InvalidPayload, self.transformer.transform, payload,
            notification_metadata() if metadata is None else metadata)
        self.assertEqual(field, exc.field)
        self.assertIn(problem, exc.problem)
        return exc

    # Plugin and option

    def test_loaded_through_entry_point(self):
        transformer = plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE,
                                          'nova_service', self.conf)
        self.assertIsInstance(transformer,
                              nova_service.ServiceUpdateTransformer)
        self.assertEqual(('service.update',), transformer.event_types)

    def test_service_down_time_option(self):
        self.assertEqual(60, self.conf.inspector.service_down_time)
        self.assertRaises(ValueError, self.conf.set_override,
                          'service_down_time', 0, group='inspector')
        for opt in nova_service.OPTS:
            self.assertTrue(opt.help)

    def test_constructing_twice_on_one_conf_is_fine(self):
        nova_service.ServiceUpdateTransformer(self.conf)
        self.assertEqual(60, self.conf.inspector.service_down_time)

    # Mapping

    def test_healthy_compute_is_up(self):
        payload = service_payload()
        ev = self.transform_one(payload)
        self.assertEqual('compute.host.up', ev.event_type)
        self.assertEqual(NOW, ev.generated)
        self.assertIs(payload, ev.raw)
        self.assertEqual([
            event_model.Trait('host', TEXT, 'compute-1'),
            event_model.Trait('binary', TEXT, 'nova-compute'),
            event_model.Trait('status', TEXT, 'up'),
            event_model.Trait('service_id', TEXT, SERVICE_UUID),
            event_model.Trait('forced_down', TEXT, 'false'),
            event_model.Trait('disabled', TEXT, 'false'),
            event_model.Trait('last_seen_up', DATETIME,
                              datetime.datetime(2024, 5, 2, 10, 0, 0)),
            event_model.Trait('time', DATETIME, SENT_AT),
            event_model.Trait('monitor', TEXT, 'nova'),
            event_model.Trait('monitor_event_id', TEXT, MESSAGE_ID),
        ], ev.traits)

    def test_forced_down_is_host_down(self):
        ev = self.transform_one(service_payload(forced_down=True))
        self.assertEqual('compute.host.down', ev.event_type)
        self.assertEqual('down', ev.trait('status'))
        self.assertEqual('forced_down', ev.trait('cause'))
        self.assertEqual('true', ev.trait('forced_down'))

    def test_forced_down_wins_over_disabled(self):
        ev = self.transform_one(service_payload(
            forced_down=True, disabled=True, disabled_reason='maintenance'))
        self.assertEqual('compute.host.down', ev.event_type)
        self.assertEqual('forced_down', ev.trait('cause'))
        self.assertEqual('true', ev.trait('disabled'))
        self.assertEqual('maintenance', ev.trait('disabled_reason'))

    def test_disabled_is_not_a_fault(self):
        ev = self.transform_one(service_payload(
            disabled=True, disabled_reason='AUTO: Failed to connect to '
                                           'libvirt'))
        self.assertEqual('compute.host.disabled', ev.event_type)
        self.assertEqual('disabled', ev.trait('status'))
        self.assertEqual('true', ev.trait('disabled'))
        self.assertEqual('AUTO: Failed to connect to libvirt',
                         ev.trait('disabled_reason'))
        self.assertIsNone(ev.trait('cause'))

    def test_disabled_without_reason_has_no_reason_trait(self):
        for reason in (None, ''):
            ev = self.transform_one(service_payload(
                disabled=True, disabled_reason=reason))
            self.assertEqual('compute.host.disabled', ev.event_type)
            self.assertNotIn('disabled_reason', ev.trait_dict())

    def test_up_has_no_cause(self):
        self.assertNotIn('cause',
                         self.transform_one(service_payload()).trait_dict())

    def test_heartbeat_older_than_service_down_time_is_down(self):
        # 65 s before the notification was sent; the default is 60 s.
        ev = self.transform_one(service_payload(
            last_seen_up='2024-05-02T09:59:00.123456Z'))
        self.assertEqual('compute.host.down', ev.event_type)
        self.assertEqual('heartbeat_timeout', ev.trait('cause'))
        self.assertEqual('false', ev.trait('forced_down'))

    def test_heartbeat_exactly_service_down_time_old_is_up(self):
        # Nova counts a service as up while elapsed <= service_down_time.
        ev = self.transform_one(service_payload(
            last_seen_up='2024-05-02T09:59:05.123456Z'))
        self.assertEqual('compute.host.up', ev.event_type)
        ev = self.transform_one(service_payload(
            last_seen_up='2024-05-02T09:59:05.123455Z'))
        self.assertEqual('compute.host.down', ev.event_type)

    def test_service_down_time_is_configurable(self):
        payload = service_payload(last_seen_up='2024-05-02T09:59:00Z')
        self.set_opts(group='inspector', service_down_time=120)
        self.assertEqual('compute.host.up',
                         self.transform_one(payload).event_type)
        self.set_opts(group='inspector', service_down_time=5)
        self.assertEqual('compute.host.down', self.transform_one(
            service_payload(last_seen_up='2024-05-02T09:59:59Z')).event_type)

    def test_heartbeat_far_in_the_future_is_down_as_in_nova(self):
        ev = self.transform_one(service_payload(
            last_seen_up='2024-05-02T10:02:00Z'))
        self.assertEqual('heartbeat_timeout', ev.trait('cause'))

    def test_heartbeat_with_offset_is_compared_in_utc(self):
        ev = self.transform_one(service_payload(
            last_seen_up='2024-05-02T12:00:00+02:00'))
        self.assertEqual('compute.host.up', ev.event_type)
        self.assertEqual(datetime.datetime(2024, 5, 2, 10, 0, 0),
                         ev.trait('last_seen_up'))

    def test_stale_heartbeat_wins_over_disabled(self):
        ev = self.transform_one(service_payload(
            disabled=True, last_seen_up='2024-05-02T09:00:00Z'))
        self.assertEqual('compute.host.down', ev.event_type)
        self.assertEqual('heartbeat_timeout', ev.trait('cause'))

    def test_no_heartbeat_yet_is_not_stale(self):
        ev = self.transform_one(service_payload(last_seen_up=None))
        self.assertEqual('compute.host.up', ev.event_type)
        self.assertNotIn('last_seen_up', ev.trait_dict())

    def test_without_timestamp_staleness_is_judged_now(self):
        metadata = notification_metadata()
        del metadata['timestamp']
        ev = self.transform_one(
            service_payload(last_seen_up='2024-05-02T09:59:05.2Z'),
            metadata)
        self.assertEqual('compute.host.up', ev.event_type)
        self.assertEqual(NOW, ev.trait('time'))
        ev = self.transform_one(
            service_payload(last_seen_up='2024-05-02T09:59:05.1Z'),
            metadata)
        self.assertEqual('compute.host.down', ev.event_type)

    def test_payload_1_0_without_uuid(self):
        payload = service_payload()
        payload['nova_object.version'] = '1.0'
        del payload['nova_object.data']['uuid']
        ev = self.transform_one(payload)
        self.assertEqual('compute.host.up', ev.event_type)
        self.assertNotIn('service_id', ev.trait_dict())

    def test_other_services_give_no_event(self):
        for binary in ('nova-scheduler', 'nova-conductor',
                       'nova-novncproxy'):
            payload = service_payload(binary=binary, forced_down=True,
                                      host='controller-1')
            self.assertEqual([], self.transformer.transform(
                payload, notification_metadata()))

    def test_other_services_are_not_validated_further(self):
        payload = service_payload(binary='nova-scheduler', host=None)
        self.assertEqual([], self.transformer.transform(payload))

    # Ids

    def test_message_id_is_deterministic(self):
        ev = self.transform_one(service_payload(forced_down=True))
        self.assertEqual(host_events.detection_id('nova', MESSAGE_ID,
                                                  'compute-1', 'down'),
                         ev.message_id)
        again = self.transform_one(service_payload(forced_down=True))
        self.assertEqual(ev.message_id, again.message_id)

    def test_message_id_differs_per_notification(self):
        first = self.transform_one(service_payload())
        other = self.transform_one(service_payload(), notification_metadata(
            message_id='0d3fe2e3-8c37-4c43-a3d4-6f8cc5e1a000'))
        self.assertNotEqual(first.message_id, other.message_id)

    def test_without_message_id_monitor_event_id_is_derived(self):
        metadata = notification_metadata()
        del metadata['message_id']
        ev = self.transform_one(service_payload(forced_down=True), metadata)
        expected = str(uuid.uuid5(
            host_events.DETECTION_NAMESPACE,
            json.dumps(['compute-1', 'down', SENT_AT.isoformat()])))
        self.assertEqual(expected, ev.trait('monitor_event_id'))
        again = self.transform_one(service_payload(forced_down=True),
                                   dict(metadata))
        self.assertEqual(ev.message_id, again.message_id)
        later = self.transform_one(
            service_payload(forced_down=True),
            notification_metadata(message_id=None,
                                  timestamp='2024-05-02T10:00:06'))
        self.assertNotEqual(ev.trait('monitor_event_id'),
                            later.trait('monitor_event_id'))

    def test_without_metadata(self):
        ev = self.transformer.transform(service_payload())[0]
        self.assertEqual('compute.host.up', ev.event_type)
        self.assertEqual(NOW, ev.trait('time'))
        self.assertEqual(
            str(uuid.uuid5(host_events.DETECTION_NAMESPACE,
                           json.dumps(['compute-1', 'up',
                                       NOW.isoformat()]))),
            ev.trait('monitor_event_id'))

    def test_round_trip_through_serialize(self):
        for payload in (service_payload(), service_payload(forced_down=True),
                        service_payload(disabled=True,
                                        disabled_reason='maintenance')):
            ev = self.transform_one(payload)
            wire = json.loads(json.dumps(ev.serialize()))
            self.assertEqual(ev, event_model.Event.deserialize(wire))

    # Validation

    def test_payload_must_be_an_object(self):
        exc = self.assertInvalid([service_payload()], '', 'got array')
        self.assertIn('versioned notification payload', str(exc))

    def test_payload_name_must_be_service_status_payload(self):
        payload = service_payload()
        payload['nova_object.name'] = 'InstanceUpdatePayload'
        self.assertInvalid(payload, 'nova_object.name',
                           "must be 'ServiceStatusPayload', got "
                           "'InstanceUpdatePayload'")

    def test_unversioned_payload_is_explained(self):
        exc = self.assertInvalid(
            {'host': 'compute-1', 'binary': 'nova-compute'},
            'nova_object.name', 'got null')
        self.assertIn('notification_format', exc.problem)

    def test_payload_version_must_be_1_x(self):
        for version, got in (('2.0', "got '2.0'"), (None, 'got null'),
                             (1.1, 'got number'), ('11.0', "got '11.0'")):
            payload = service_payload()
            payload['nova_object.version'] = version
            self.assertInvalid(payload, 'nova_object.version', got)

    def test_data_is_required(self):
        payload = service_payload()
        del payload['nova_object.data']
        self.assertInvalid(payload, 'nova_object.data',
                           'must be an object, got null')

    def test_data_must_be_an_object(self):
        payload = service_payload()
        payload['nova_object.data'] = [1]
        self.assertInvalid(payload, 'nova_object.data', 'got array')

    def test_binary_must_be_a_string(self):
        for binary, got in ((None, 'null'), (3, 'number'), ('', "''")):
            self.assertInvalid(service_payload(binary=binary),
                               'nova_object.data.binary', f'got {got}')

    def test_host_must_be_a_string(self):
        for host, got in ((None, 'null'), (['compute-1'], 'array'),
                          ('', "''"), ('h' * 256, 'a string of 256')):
            self.assertInvalid(service_payload(host=host),
                               'nova_object.data.host', f'got {got}')

    def test_flags_must_be_booleans(self):
        for key in ('forced_down', 'disabled'):
            for value, got in (('false', 'string'), (0, 'number'),
                               (None, 'null')):
                self.assertInvalid(service_payload(**{key: value}),
                                   f'nova_object.data.{key}',
                                   f'must be true or false, got {got}')

    def test_missing_flag_is_invalid(self):
        payload = service_payload()
        del payload['nova_object.data']['forced_down']
        self.assertInvalid(payload, 'nova_object.data.forced_down',
                           'got null')

    def test_disabled_reason_must_be_a_string_or_null(self):
        self.assertInvalid(service_payload(disabled_reason=5),
                           'nova_object.data.disabled_reason',
                           'got number')

    def test_uuid_must_be_a_uuid(self):
        self.assertInvalid(service_payload(uuid='compute-1'),
                           'nova_object.data.uuid',
                           "must be a UUID, got 'compute-1'")
        self.assertInvalid(service_payload(uuid=42),
                           'nova_object.data.uuid', 'got number')

    def test_last_seen_up_must_be_a_time(self):
        for value, got in (('last tuesday', "got 'last tuesday'"),
                           (1714644000, 'got number'),
                           ('', "got ''")):
            self.assertInvalid(service_payload(last_seen_up=value),
                               'nova_object.data.last_seen_up', got)

    def test_metadata_timestamp_must_be_a_time(self):
        self.assertInvalid(service_payload(), 'metadata.timestamp',
                           'ISO 8601', notification_metadata(
                               timestamp='soon'))

    def test_metadata_message_id_must_be_a_string(self):
        for value in (7, ''):
            self.assertInvalid(service_payload(), 'metadata.message_id',
                               'non-empty string', notification_metadata(
                                   message_id=value))
