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

"""Tests of the probe messages between heartbeat monitors."""

import random

from doctor_plugin.monitors import probe
from doctor_plugin.tests import base


def question(nonce=7, sent=1000.0, host='compute-1'):
    return probe.Message(probe.REQUEST, nonce, sent, host)


class TestCodec(base.TestCase):

    def test_every_kind_round_trips(self):
        for message in (question(),
                        probe.Message(probe.ANSWER, 7, 1.0, 'compute-1',
                                      probe.ALIVE, 0.02, 999.95),
                        probe.Message(probe.ANSWER, 7, 1.0, 'compute-1',
                                      probe.UNKNOWN),
                        probe.Message(probe.PING, 2 ** 64 - 1, 1.0),
                        probe.Message(probe.PONG, 0, 1.0)):
            self.assertEqual(message, probe.decode(probe.encode(message)))
            self.assertEqual(message, probe.decode(
                probe.encode(message, b'k'), b'k'))

    def test_signatures(self):
        data = probe.encode(probe.Message(probe.ANSWER, 7, 1.0, 'c-1',
                                          probe.SILENT, 1.0), b'k')
        self.assertRaisesRegex(ValueError, 'bad probe signature',
                               probe.decode, data, b'other')
        forged = data.replace(b'c-1', b'c-2')
        self.assertRaisesRegex(ValueError, 'bad probe signature',
                               probe.decode, forged, b'k')
        # Turning SILENT into ALIVE breaks the signature too.
        flipped = bytearray(data)
        flipped[7] = probe.ALIVE
        self.assertRaisesRegex(ValueError, 'bad probe signature',
                               probe.decode, bytes(flipped), b'k')
        self.assertRaisesRegex(ValueError, 'unsigned',
                               probe.decode, probe.encode(question()), b'k')

    def test_malformed(self):
        good = probe.encode(question())
        bad_status = probe.encode(probe.Message(probe.ANSWER, 1, 1.0, 'h'))
        for data, fragment in (
                (b'', 'too short'), (good[:10], 'too short'),
                (b'DHB1' + good[4:], 'not a doctor_plugin probe'),
                (good[:4] + b'\x02' + good[5:], 'not a doctor_plugin'),
                (good[:5] + b'\x09' + good[6:], 'unknown probe message'),
                (good[:-1], 'length'), (good + b'x', 'length'),
                (probe.encode(question(host='')), 'host name'),
                (probe.encode(probe.Message(probe.PING, 1, 1.0, 'h')),
                 'host name'),
                (bad_status, 'status'),
                (probe.encode(question(sent=float('nan'))), 'times'),
                (probe.encode(probe.Message(probe.ANSWER, 1, 1.0, 'h',
                                            probe.ALIVE, -1.0)), 'times'),
                (good.replace(b'compute-1', b'compute-\xff'), 'UTF-8')):
            self.assertRaisesRegex(ValueError, fragment, probe.decode, data)

    def test_garbage_only_ever_raises_value_error(self):
        rng = random.Random(16)
        good = probe.encode(question(), b'k')
        for _ in range(3000):
            if rng.random() < 0.5:
                data = bytes(rng.randrange(256)
                             for _ in range(rng.randrange(80)))
            else:
                data = bytearray(good)
                for _ in range(rng.randrange(1, 4)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                data = bytes(data)
            for key in (None, b'k'):
                try:
                    probe.decode(data, key)
                except ValueError:
                    pass


class TestReplayGuard(base.TestCase):

    def test_a_repeated_nonce_is_refused(self):
        guard = probe.ReplayGuard(max_age=0.0)
        self.assertIsNone(guard.check(question(1), 1000.0))
        self.assertIsNone(guard.check(question(2), 1000.0))
        self.assertIn('repeats a nonce', guard.check(question(1), 1000.5))
        # Forgotten after the window.
        self.assertIsNone(guard.check(question(1), 1011.0))

    def test_with_max_age_an_old_question_is_refused(self):
        guard = probe.ReplayGuard(max_age=2.0)
        self.assertIn('more than 2.0 s',
                      guard.check(question(1, sent=990.0), 1000.0))
        self.assertIsNone(guard.check(question(1, sent=999.0), 1000.0))

    def test_memory_is_bounded(self):
        guard = probe.ReplayGuard(max_age=0.0, limit=100)
        for nonce in range(1000):
            guard.check(question(nonce), 1000.0)
        self.assertLessEqual(len(guard._seen), 100)
