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

"""Property-based tests: every transformer takes any input gracefully.

Whatever a client or a bus publisher sends, a transformer returns events
the inspector can pass on, or raises InvalidPayload with a short message
naming the field; never any other exception (which the API would turn
into a 500 and the bus listener into a lost message). Figure R4 of
shared/BENCHMARKS.md; doctor_plugin.bench.hostile generates the inputs.
"""

import json

import hypothesis
from hypothesis import strategies as st

from doctor_plugin.bench import hostile
from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin import signing
from doctor_plugin.tests import base
from doctor_plugin.transformers import payload as checks

#: Examples per test: arbitrary values are cheap to reject, near-valid
#: documents reach further and get more.
ARBITRARY = 100
NEAR_VALID = 300

#: Longest error message a transformer may give: it goes back to the
#: client and into the log, so it must not echo a huge value.
MAX_MESSAGE = 1024


def fuzz_settings(max_examples):
    """Reproducible in CI: no example database, a fixed seed."""
    return hypothesis.settings(
        max_examples=max_examples, deadline=None, database=None,
        derandomize=True, print_blob=True,
        suppress_health_check=list(hypothesis.HealthCheck))


class TransformerFuzzTestCase(base.TestCase):
    """Checks what one transformer gives for any input."""

    #: Whether the transformer bounds its text traits itself (Ceilometer's
    #: events are bounded by the API's check_limits instead).
    bounded_traits = True

    def transformer(self, name):
        return plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE, name,
                                   self.conf)

    def check(self, transformer, payload, metadata=None):
        try:
            events = transformer.transform(payload, metadata)
        except exceptions.InvalidPayload as exc:
            self.assertIsInstance(exc.field, str)
            message = str(exc)
            self.assertLessEqual(len(message), MAX_MESSAGE, message[:200])
            # The API puts it in a JSON body and the log writes it out.
            message.encode('utf-8')
            return
        self.assertIsInstance(events, list)
        for ev in events:
            self.assertIsInstance(ev, event_model.Event)
            # What the notifiers do with it: serialise it for the bus and
            # the webhooks, log it, derive the tenants' events' ids.
            json.dumps(signing.message_from_event(ev, 'secret'))
            ev.message_id.encode('utf-8')
            ev.event_type.encode('utf-8')
            for trait in ev.traits:
                trait.name.encode('utf-8')
                if isinstance(trait.value, str):
                    trait.value.encode('utf-8')
                    if self.bounded_traits:
                        self.assertLessEqual(len(trait.value),
                                             event_model.MAX_STRING_LENGTH)


class TestDoctor(TransformerFuzzTestCase):

    def setUp(self):
        super().setUp()
        self.doctor = self.transformer('doctor')

    @fuzz_settings(ARBITRARY)
    @hypothesis.given(hostile.json_values())
    def test_arbitrary(self, payload):
        self.check(self.doctor, payload)

    @fuzz_settings(NEAR_VALID)
    @hypothesis.given(hostile.near_valid(hostile.doctor_events()))
    def test_near_valid(self, payload):
        self.check(self.doctor, payload)

    @fuzz_settings(NEAR_VALID)
    @hypothesis.given(
        hostile.fuzzed(hostile.doctor_events()),
        hostile.fuzzed(hostile.notification_metadata(
            'doctor.monitor.report')))
    def test_bus_report(self, payload, metadata):
        # A monitor's report on the bus (report_to = bus): the payload is
        # the PUT /events body; the metadata is the bus's.
        if not isinstance(metadata, dict):
            metadata = None
        self.check(self.doctor, payload, metadata)

    @fuzz_settings(50)
    @hypothesis.given(hostile.doctor_events())
    def test_valid_bodies_give_events(self, payload):
        # The generator's valid documents are valid: otherwise the
        # near-valid ones would test nothing past the first check.
        self.assertEqual(len(payload), len(self.doctor.transform(payload)))


class TestCeilometer(TransformerFuzzTestCase):

    bounded_traits = False

    def setUp(self):
        super().setUp()
        self.ceilometer = self.transformer('ceilometer')

    @fuzz_settings(ARBITRARY)
    @hypothesis.given(hostile.json_values())
    def test_arbitrary(self, payload):
        self.check(self.ceilometer, payload)

    @fuzz_settings(NEAR_VALID)
    @hypothesis.given(hostile.near_valid(hostile.ceilometer_events()))
    def test_near_valid(self, payload):
        self.check(self.ceilometer, payload)

    @fuzz_settings(50)
    @hypothesis.given(hostile.ceilometer_events())
    def test_valid_bodies_give_events(self, payload):
        self.assertEqual(len(payload),
                         len(self.ceilometer.transform(payload)))


class TestAlertmanager(TransformerFuzzTestCase):

    def setUp(self):
        super().setUp()
        self.alertmanager = self.transformer('alertmanager')

    @fuzz_settings(ARBITRARY)
    @hypothesis.given(hostile.json_values())
    def test_arbitrary(self, payload):
        self.check(self.alertmanager, payload)

    @fuzz_settings(NEAR_VALID)
    @hypothesis.given(hostile.near_valid(hostile.alertmanager_webhooks()))
    def test_near_valid(self, payload):
        self.check(self.alertmanager, payload)

    @fuzz_settings(50)
    @hypothesis.given(hostile.alertmanager_webhooks())
    def test_valid_bodies_are_accepted(self, payload):
        self.alertmanager.transform(payload)


class TestCollectd(TransformerFuzzTestCase):

    def setUp(self):
        super().setUp()
        self.collectd = self.transformer('collectd')

    @fuzz_settings(ARBITRARY)
    @hypothesis.given(hostile.json_values())
    def test_arbitrary(self, payload):
        self.check(self.collectd, payload)

    @fuzz_settings(NEAR_VALID)
    @hypothesis.given(hostile.near_valid(hostile.collectd_notifications()))
    def test_near_valid(self, payload):
        self.check(self.collectd, payload)

    @fuzz_settings(50)
    @hypothesis.given(hostile.collectd_notifications())
    def test_valid_bodies_are_accepted(self, payload):
        self.collectd.transform(payload)


class TestLibvirt(TransformerFuzzTestCase):

    def setUp(self):
        super().setUp()
        self.libvirt = self.transformer('libvirt')

    @fuzz_settings(ARBITRARY)
    @hypothesis.given(hostile.json_values())
    def test_arbitrary(self, payload):
        self.check(self.libvirt, payload)

    @fuzz_settings(NEAR_VALID)
    @hypothesis.given(hostile.near_valid(hostile.libvirt_events()))
    def test_near_valid(self, payload):
        self.check(self.libvirt, payload)

    @fuzz_settings(50)
    @hypothesis.given(hostile.libvirt_events())
    def test_valid_bodies_are_accepted(self, payload):
        self.libvirt.transform(payload)


class TestNovaService(TransformerFuzzTestCase):

    def setUp(self):
        super().setUp()
        self.nova_service = self.transformer('nova_service')

    @fuzz_settings(ARBITRARY)
    @hypothesis.given(hostile.json_values(),
                      st.none() | hostile.json_values())
    def test_arbitrary(self, payload, metadata):
        if not isinstance(metadata, dict):
            metadata = None
        self.check(self.nova_service, payload, metadata)

    @fuzz_settings(NEAR_VALID)
    @hypothesis.given(
        hostile.near_valid(hostile.nova_service_updates()),
        hostile.fuzzed(hostile.notification_metadata('service.update')))
    def test_near_valid(self, payload, metadata):
        if not isinstance(metadata, dict):
            metadata = None
        self.check(self.nova_service, payload, metadata)

    @fuzz_settings(50)
    @hypothesis.given(hostile.nova_service_updates(),
                      hostile.notification_metadata('service.update'))
    def test_valid_payloads_are_accepted(self, payload, metadata):
        self.nova_service.transform(payload, metadata)


class TestFoundByFuzzing(TransformerFuzzTestCase):
    """What these tests found: each raised something else before."""

    def assertInvalid(self, name, payload, field, fragment, metadata=None):
        transformer = self.transformer(name)
        exc = self.assertRaises(exceptions.InvalidPayload,
                                transformer.transform, payload, metadata)
        self.assertEqual(field, exc.field)
        self.assertIn(fragment, str(exc))
        self.assertLessEqual(len(str(exc)), MAX_MESSAGE)

    def doctor_body(self, **details):
        return [{'time': '2017-04-22T12:00:00Z', 'type': 'compute.host.down',
                 'details': dict({'hostname': 'compute-1', 'status': 'down',
                                  'monitor': 'm', 'monitor_event_id': 'e'},
                                 **details)}]

    def test_deep_nesting_in_an_ignored_key(self):
        # RecursionError signing the raw payload for the bus.
        body = self.doctor_body(extra=hostile.deep_nesting(hostile.DEEP))
        self.assertInvalid('doctor', body,
                           '0.details.extra' + '.0' * (checks.MAX_DEPTH - 3),
                           f'more than {checks.MAX_DEPTH} levels deep')
        # As deep as is allowed is fine.
        body = self.doctor_body(extra=hostile.deep_nesting(
            checks.MAX_DEPTH - 3))
        self.assertEqual(1, len(self.transformer('doctor').transform(body)))

    def test_lone_surrogate(self):
        # UnicodeEncodeError signing the event, or making libvirt's ids.
        self.assertInvalid('doctor', self.doctor_body(hostname='\ud800'),
                           '0.details.hostname', 'lone surrogate')
        self.assertInvalid(
            'libvirt', {'host': 'a\udfffb', 'domain': {'uuid': 'vm-1'},
                        'event': 'crashed'},
            '0.host', "'\\udfff' at character 1")
        self.assertInvalid('alertmanager', {'alerts': [], '\ud800': 1}, '',
                           'a key holds a lone surrogate')

    def test_not_finite_numbers(self):
        # OverflowError converting the trait type.
        self.assertInvalid(
            'ceilometer', [{'message_id': 'a', 'event_type': 'b',
                            'generated': '2020-01-01T00:00:00',
                            'traits': [['t', float('inf'), 'x']]}],
            '0.traits.0.1', 'must be a finite number, got inf')

    def test_time_out_of_range_in_utc(self):
        # OverflowError moving the time to UTC.
        for item in ({'generated': '0001-01-01T00:00:00+01:00'},
                     {'generated': '2020-01-01T00:00:00',
                      'traits': [['t', 4, '0001-01-01T00:00:00+01:00']]}):
            self.assertInvalid('ceilometer', [dict(
                {'message_id': 'a', 'event_type': 'b'}, **item)], '0',
                'out of range')

    def test_rejected_values_are_not_echoed(self):
        # The messages quoted whole nested values or strings back.
        huge = 'x' * 4000
        self.assertInvalid(
            'libvirt', {'host': 'h', 'domain': {'uuid': 'vm-1'},
                        'event': [[[['x']]]]},
            '0.event', 'got an array')
        self.assertInvalid(
            'collectd', {'labels': {'alertname': 'a', 'severity': huge}},
            '0.labels.severity', 'got a string of 4000 characters')
        self.assertInvalid('alertmanager', {'version': huge, 'alerts': []},
                           'version', 'a string of 4000 characters')
        self.assertInvalid('doctor', self.doctor_body(hostname=' ' * 4000),
                           '0.details.hostname', 'of 4000 characters')
        self.assertInvalid(
            'ceilometer', [{'message_id': 'a', 'event_type': 'b',
                            'generated': '2020-01-01T00:00:00',
                            'traits': [[huge, 'text', 'x']]}],
            '0', '...')

    def test_libvirt_detail_must_be_text_or_a_code(self):
        # str() of any value, RecursionError for a deep one.
        self.assertInvalid(
            'libvirt', {'host': 'h', 'domain': {'uuid': 'vm-1'},
                        'event': 'started', 'detail': {'a': [1]}},
            '0.detail', 'got object')
        (ev,) = self.transformer('libvirt').transform(
            {'host': 'h', 'domain': {'uuid': 'vm-1'}, 'event': 'started',
             'detail': 0})
        self.assertEqual('started/0', ev.trait('cause'))
