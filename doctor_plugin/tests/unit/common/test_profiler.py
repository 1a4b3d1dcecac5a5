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

"""Tests for doctor_plugin.common.profiler."""

import threading
import time

from doctor_plugin.common import profiler
from doctor_plugin.tests import base


class TestTimeline(base.TestCase):

    def test_first_mark_wins(self):
        self.timeline.mark('f1', 'T01', 10.0)
        self.timeline.mark('f1', 'T01', 11.0)
        self.assertEqual({'T01': 10.0}, self.timeline.marks('f1'))

    def test_t09_last_mark_wins(self):
        self.timeline.mark('f1', 'T09', 10.0)
        self.timeline.mark('f1', 'T09', 12.5)
        self.assertEqual({'T09': 12.5}, self.timeline.marks('f1'))

    def test_last_wins_is_configurable(self):
        timeline = profiler.Timeline(last_wins=('T08',))
        for when in (1.0, 2.0):
            timeline.mark('f1', 'T08', when)
            timeline.mark('f1', 'T09', when)
        self.assertEqual({'T08': 2.0, 'T09': 1.0}, timeline.marks('f1'))

    def test_only_the_latest_faults_are_kept(self):
        timeline = profiler.Timeline(max_faults=2)
        for fault in ('f1', 'f2', 'f3'):
            timeline.mark(fault, 'T01', 1.0)
        # More marks of a kept fault do not make room.
        timeline.mark('f3', 'T09', 2.0)
        self.assertEqual({}, timeline.marks('f1'))
        self.assertEqual({'T01': 1.0}, timeline.marks('f2'))
        self.assertEqual({'T01': 1.0, 'T09': 2.0}, timeline.marks('f3'))

    def test_unknown_checkpoint_raises(self):
        exc = self.assertRaises(ValueError, self.timeline.mark, 'f1', 'T10')
        self.assertIn("'T10'", str(exc))
        self.assertIn('T00', str(exc))
        self.assertEqual({}, self.timeline.marks('f1'))

    def test_no_fault_id_records_nothing(self):
        self.timeline.mark(None, 'T01', 1.0)
        self.timeline.mark('', 'T01', 1.0)
        self.assertEqual({}, self.timeline.marks(''))

    def test_misspelt_checkpoint_raises_without_fault_id(self):
        self.assertRaises(ValueError, self.timeline.mark, None, 'T1')

    def test_mark_defaults_to_now(self):
        before = time.time()
        self.timeline.mark('f1', 'T02')
        after = time.time()
        self.assertTrue(before <= self.timeline.marks('f1')['T02'] <= after)

    def test_faults_are_separate(self):
        self.timeline.mark('f1', 'T01', 1.0)
        self.timeline.mark('f2', 'T01', 2.0)
        self.assertEqual({'T01': 1.0}, self.timeline.marks('f1'))
        self.assertEqual({'T01': 2.0}, self.timeline.marks('f2'))

    def test_marks_is_a_copy(self):
        self.timeline.mark('f1', 'T01', 1.0)
        self.timeline.marks('f1')['T01'] = 99.0
        self.assertEqual({'T01': 1.0}, self.timeline.marks('f1'))

    def test_forget(self):
        self.timeline.mark('f1', 'T01', 1.0)
        self.timeline.forget('f1')
        self.timeline.forget('never-marked')
        self.assertEqual({}, self.timeline.marks('f1'))

    def test_notification_time(self):
        self.assertIsNone(self.timeline.notification_time('f1'))
        self.timeline.mark('f1', 'T01', 100.0)
        self.assertIsNone(self.timeline.notification_time('f1'))
        self.timeline.mark('f1', 'T09', 100.25)
        self.assertEqual(0.25, self.timeline.notification_time('f1'))

    def test_concurrent_marks_keep_the_first(self):
        barrier = threading.Barrier(8)

        def mark(n):
            barrier.wait()
            self.timeline.mark('f1', 'T05', float(n))

        threads = [threading.Thread(target=mark, args=(n,))
                   for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(2)
        marks = self.timeline.marks('f1')
        self.assertEqual(['T05'], list(marks))
        self.assertIn(marks['T05'], [float(n) for n in range(8)])


class TestFormat(base.TestCase):

    def test_no_marks(self):
        self.assertEqual('no profiler marks for fault f1',
                         self.timeline.format('f1'))

    def test_table_in_ms_from_t00(self):
        self.timeline.mark('f1', 'T00', 100.0)
        self.timeline.mark('f1', 'T01', 100.010)
        self.timeline.mark('f1', 'T09', 100.1105)
        lines = self.timeline.format('f1').splitlines()
        self.assertEqual(len(profiler.CHECKPOINTS) + 1, len(lines))
        self.assertEqual('  T00       0.00 ms  link down (fault occurs)',
                         lines[0])
        self.assertEqual('  T01      10.00 ms  raw failure (monitor detects)',
                         lines[1])
        self.assertEqual('  T02          —     found affected (inspector '
                         'knows the VMs)', lines[2])
        self.assertEqual('  fenced       —     host fenced (known to be '
                         'off)', lines[3])
        self.assertEqual('  T09     110.50 ms  alarm received by the '
                         'consumer', lines[10])
        self.assertEqual('  notification time T09 − T01: 100.50 ms',
                         lines[11])

    def test_origin_is_first_mark_without_t00(self):
        self.timeline.mark('f1', 'T02', 50.5)
        self.timeline.mark('f1', 'T01', 50.0)
        lines = self.timeline.format('f1').splitlines()
        self.assertEqual(len(profiler.CHECKPOINTS), len(lines))
        self.assertIn('T01       0.00 ms', lines[1])
        self.assertIn('T02     500.00 ms', lines[2])

    def test_fenced_lines_up_with_the_t_marks(self):
        self.timeline.mark('f1', 'T00', 100.0)
        self.timeline.mark('f1', 'fenced', 100.25)
        lines = self.timeline.format('f1').splitlines()
        self.assertEqual('  fenced  250.00 ms  host fenced (known to be off)',
                         lines[3])
        self.assertEqual(lines[0].index(' ms'), lines[3].index(' ms'))
        self.assertNotIn('notification time', lines[-1])
