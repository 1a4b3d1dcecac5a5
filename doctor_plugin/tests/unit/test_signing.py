"""Signed webhooks: what a receiver accepts and refuses."""

from doctor_plugin import signing
from doctor_plugin.tests import base

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
