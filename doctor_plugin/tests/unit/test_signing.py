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

"""Signatures: of bus messages, and of webhooks a receiver checks."""

import hashlib
import hmac
import json

from doctor_plugin import signing
from doctor_plugin.tests import base
from doctor_plugin.tests.unit import test_event

KEY = b'k3y'
BODY = b'{"alarm_id": "a"}'


def signed(body=BODY, when=1000.0, key=KEY):
    timestamp = str(int(when))
    return {signing.TIMESTAMP_HEADER: timestamp,
            signing.SIGNATURE_HEADER: signing.signature(key, timestamp,
                                                        body)}


class TestVerifier(base.TestCase):

    def test_genuine_request_is_accepted_once(self):
        verifier = signing.Verifier(KEY)
        headers = signed()
        self.assertIsNone(verifier.check(headers, BODY, now=1010.0))
        self.assertEqual('a replay of a request already received',
                         verifier.check(headers, BODY, now=1011.0))
        # The same alarm sent again later (a retry) is signed anew.
        self.assertIsNone(verifier.check(signed(when=1020.0), BODY,
                                         now=1021.0))

    def test_refusals_say_why(self):
        verifier = signing.Verifier(KEY, max_age=60)
        self.assertIn('not signed', verifier.check({}, BODY, now=1000.0))
        self.assertEqual('the signature does not match the body',
                         verifier.check(signed(), BODY + b' ', now=1000.0))
        self.assertEqual('the signature does not match the body',
                         verifier.check(signed(key=b'other'), BODY,
                                        now=1000.0))
        self.assertIn('more than the 60 s allowed',
                      verifier.check(signed(), BODY, now=1100.0))
        self.assertIn('not a number',
                      verifier.check({signing.TIMESTAMP_HEADER: 'soon',
                                      signing.SIGNATURE_HEADER: 'x'},
                                     BODY, now=1000.0))

    def test_headers_are_matched_without_case(self):
        headers = {k.lower(): v for k, v in signed().items()}
        self.assertIsNone(signing.Verifier(KEY).check(headers, BODY,
                                                      now=1000.0))

    def test_seen_signatures_are_forgotten_after_max_age(self):
        verifier = signing.Verifier(KEY, max_age=10)
        for i in range(100):
            self.assertIsNone(verifier.check(signed(when=1000.0 + i), BODY,
                                             now=1000.0 + i))
        self.assertLessEqual(len(verifier._seen), 12)


class TestSignature(base.TestCase):

    SECRET = 'metering-secret'

    def test_no_secret_no_signature(self):
        message = test_event.host_down_event().serialize()
        self.assertEqual('', signing.compute_signature(message, None))
        self.assertEqual('', signing.compute_signature(message, ''))

    def test_ceilometer_algorithm(self):
        # HMAC-SHA256 over the sorted, ':'-flattened key/value pairs.
        message = {'b': 1, 'a': {'y': 'v', 'x': [1, 2]},
                   'message_signature': 'ignored'}
        expected = hmac.new(self.SECRET.encode(), b'a:x[1, 2]a:yvb1',
                            hashlib.sha256).hexdigest()
        self.assertEqual(expected,
                         signing.compute_signature(message, self.SECRET))

    def test_independent_of_key_order(self):
        one = {'a': 1, 'b': {'c': 2, 'd': 3}}
        two = {'b': {'d': 3, 'c': 2}, 'a': 1}
        self.assertEqual(signing.compute_signature(one, self.SECRET),
                         signing.compute_signature(two, self.SECRET))

    def test_depends_on_content_and_secret(self):
        message = test_event.host_down_event().serialize()
        signature = signing.compute_signature(message, self.SECRET)
        self.assertNotEqual(signature,
                            signing.compute_signature(message, 'other'))
        message['traits'][0][2] = 'compute-2'
        self.assertNotEqual(signature, signing.compute_signature(
            message, self.SECRET))

    def test_existing_signature_is_left_out(self):
        message = test_event.host_down_event().serialize()
        unsigned = signing.compute_signature(message, self.SECRET)
        message['message_signature'] = 'abc'
        self.assertEqual(unsigned,
                         signing.compute_signature(message, self.SECRET))

    def test_message_from_event_is_signed(self):
        ev = test_event.host_down_event()
        message = signing.message_from_event(ev, self.SECRET)
        self.assertEqual(
            signing.compute_signature(ev.serialize(), self.SECRET),
            message['message_signature'])
        self.assertEqual(64, len(message['message_signature']))
        self.assertTrue(signing.verify_signature(message, self.SECRET))

    def test_verify_survives_json(self):
        message = signing.message_from_event(test_event.host_down_event(),
                                             self.SECRET)
        wire = json.loads(json.dumps(message))
        self.assertTrue(signing.verify_signature(wire, self.SECRET))

    def test_verify_rejects_tampering(self):
        message = signing.message_from_event(test_event.host_down_event(),
                                             self.SECRET)
        message['event_type'] = 'compute.host.up'
        self.assertFalse(signing.verify_signature(message, self.SECRET))

    def test_verify_rejects_wrong_secret(self):
        message = signing.message_from_event(test_event.host_down_event(),
                                             self.SECRET)
        self.assertFalse(signing.verify_signature(message, 'guess'))

    def test_verify_rejects_missing_signature(self):
        message = test_event.host_down_event().serialize()
        self.assertFalse(signing.verify_signature(message, self.SECRET))

    def test_verify_rejects_non_ascii_signature(self):
        message = test_event.host_down_event().serialize()
        message['message_signature'] = 'é' * 64
        self.assertFalse(signing.verify_signature(message, self.SECRET))

    def test_unsigned_message_verifies_without_secret(self):
        message = signing.message_from_event(test_event.host_down_event(),
                                             None)
        self.assertEqual('', message['message_signature'])
        self.assertTrue(signing.verify_signature(message, None))


class TestSeal(base.TestCase):
    """The seal of heartbeats and probes."""

    def check(self, key, data, sealed=True):
        signing.check_seal(key, data, len(data) - signing.SEAL_LENGTH
                           if sealed and key else len(data), sealed,
                           'unsealed', 'bad')

    def test_sealed_under_the_key_passes(self):
        data = signing.seal(b'k', b'payload')
        self.assertEqual(b'payload', data[:7])
        self.assertEqual(hmac.new(b'k', b'payload', hashlib.sha256).digest(),
                         data[7:])
        self.check(b'k', data)

    def test_no_key_no_seal(self):
        self.assertEqual(b'payload', signing.seal(None, b'payload'))
        self.check(None, b'payload', sealed=False)

    def test_another_key_is_refused(self):
        data = signing.seal(b'other', b'payload')
        self.assertRaisesRegex(ValueError, '^bad$', self.check, b'k', data)

    def test_tampered_data_is_refused(self):
        data = bytearray(signing.seal(b'k', b'payload'))
        data[0] ^= 1
        self.assertRaisesRegex(ValueError, '^bad$', self.check, b'k',
                               bytes(data))

    def test_unsealed_with_a_key_is_refused(self):
        self.assertRaisesRegex(ValueError, '^unsealed$', self.check, b'k',
                               b'payload', False)
