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

"""Tests of the heartbeat agent and detector.

The detector's timing runs on a clock the tests move; the monitor and the
agent talk real UDP on loopback.
"""

import socket
import threading
import time
import uuid

import fixtures

from doctor_plugin.cmd import heartbeat as cmd_heartbeat
from doctor_plugin import exceptions
from doctor_plugin.monitors import heartbeat
from doctor_plugin.tests import base

BOOT = uuid.uuid4().bytes
INTERVAL = 0.05


def hb(host='compute-1', seq=1, sent=1000.0, boot=BOOT):
    return heartbeat.Heartbeat(host, seq, sent, boot)


class TestCodec(base.TestCase):

    def test_round_trip(self):
        data = heartbeat.encode('compute-1', 7, 1234.5, BOOT)
        self.assertEqual(hb(seq=7, sent=1234.5),
                         heartbeat.decode(data))

    def test_signed(self):
        data = heartbeat.encode('compute-1', 7, 1.0, BOOT, key=b'k')
        self.assertEqual('compute-1', heartbeat.decode(data, b'k').host)
        self.assertRaisesRegex(ValueError, 'bad signature',
                               heartbeat.decode, data, b'other')
        tampered = data.replace(b'compute-1', b'compute-2')
        self.assertRaisesRegex(ValueError, 'bad signature',
                               heartbeat.decode, tampered, b'k')
        unsigned = heartbeat.encode('compute-1', 7, 1.0, BOOT)
        self.assertRaisesRegex(ValueError, 'unsigned',
                               heartbeat.decode, unsigned, b'k')

    def test_malformed(self):
        good = heartbeat.encode('compute-1', 1, 1.0, BOOT)
        for data, fragment in ((b'', 'too short'),
                               (b'XXXX' + good[4:], 'not a doctor_plugin'),
                               (good[:-1], 'length'),
                               (good + b'x', 'length')):
            self.assertRaisesRegex(ValueError, fragment, heartbeat.decode,
                                   data)


class TestDetector(base.TestCase):
    """Timing with a controllable clock: start at t=100."""

    def make(self, miss_count=2, grace=0.0):
        return heartbeat.Detector(INTERVAL, miss_count, grace, 100.0)

    def run_until(self, detector, end, beats=(), step=0.005):
        """Advance the clock to ``end``; heartbeats at the ``beats`` times.

        :returns: ``[(time, host, state)]`` of every change
        """
        changes, beats, seq, now = [], sorted(beats), 0, 100.0
        while now <= end + 1e-9:
            while beats and beats[0][0] <= now:
                _, host = beats.pop(0)
                seq += 1
                for change in detector.heartbeat(hb(host, seq, now), now):
                    changes.append((round(now, 3), change.host,
                                    change.status))
            for change in detector.expire(now):
                changes.append((round(now, 3), change.host, change.status))
            now += step
        return changes

    def steady(self, host, start, end):
        n = int((end - start) / INTERVAL)
        return [(start + i * INTERVAL, host) for i in range(n + 1)]

    def test_silence_is_detected_by_time_within_a_quarter_interval(self):
        detector = self.make()
        beats = self.steady('compute-1', 100.0, 101.0)
        changes = self.run_until(detector, 102.0, beats)
        (when, host, state) = changes[0]
        self.assertEqual(('compute-1', 'down'), (host, state))
        # Last heartbeat at 101.0; down after 2 intervals, within a tick.
        self.assertGreaterEqual(when, 101.0 + 2 * INTERVAL)
        self.assertLessEqual(when, 101.0 + 2.25 * INTERVAL + 0.005)
        self.assertEqual(1, len(changes))

    def test_recovery_is_reported_at_the_first_heartbeat(self):
        detector = self.make()
        beats = (self.steady('compute-1', 100.0, 100.5)
                 + self.steady('compute-1', 101.0, 101.5))
        changes = self.run_until(detector, 101.5, beats)
        self.assertEqual(['down', 'up'], [c[2] for c in changes])
        self.assertAlmostEqual(101.0, changes[1][0], delta=0.006)

    def test_jitter_below_the_deadline_is_tolerated(self):
        detector = self.make(miss_count=3)
        # Heartbeats late by up to 1.9 intervals, never 3 apart.
        beats, t = [], 100.0
        for i in range(200):
            t += INTERVAL * (1.9 if i % 7 == 0 else 1.0)
            beats.append((t, 'compute-1'))
        self.assertEqual([], self.run_until(detector, t, beats))

    def test_one_lost_heartbeat_is_not_a_fault(self):
        detector = self.make(miss_count=2)
        beats = [b for i, b in enumerate(self.steady('c', 100.0, 102.0))
                 if i % 10 != 5]
        self.assertEqual([], self.run_until(detector, 102.0, beats))

    def test_grace_after_start(self):
        detector = self.make(grace=1.0)
        detector.watch('never-seen', 100.0)
        beats = self.steady('compute-1', 100.0, 100.3)
        changes = self.run_until(detector, 101.5, beats)
        # Both are silent from early on, reported when the grace ends.
        self.assertEqual({('never-seen', 'down'), ('compute-1', 'down')},
                         {(h, s) for _, h, s in changes})
        self.assertTrue(all(101.0 <= w <= 101.02 for w, _, _ in changes))

    def test_replayed_and_older_boots_are_dropped(self):
        detector = self.make()
        self.assertFalse(detector.heartbeat(hb(seq=5, sent=1.0), 100.0))
        detector.heartbeat(hb(seq=5, sent=1.0), 100.05)
        detector.heartbeat(hb(seq=4, sent=0.9), 100.05)
        detector.heartbeat(hb(seq=1, sent=0.5, boot=b'old' * 5 + b'x'),
                           100.05)
        self.assertEqual(3, detector.dropped['replayed or reordered'])
        self.assertEqual(100.0, detector.hosts['compute-1'].last_seen)
        # A restarted agent (new boot, later time) is accepted.
        detector.heartbeat(hb(seq=1, sent=2.0, boot=b'new' * 5 + b'x'),
                           100.1)
        self.assertEqual(100.1, detector.hosts['compute-1'].last_seen)

    def test_five_thousand_hosts_cost_one_check_each_per_timeout(self):
        detector = self.make()
        for i in range(5000):
            detector.heartbeat(hb(f'h{i}', 1, 100.0), 100.0)
        checked = sum(len(s) for s in detector._slots)
        self.assertEqual(5000, checked)
        # Nobody is due before the timeout: ticks look at empty slots.
        self.assertEqual([], detector.expire(100.09))
        # All silent at once, and no one else heard: this detector is cut
        # off, not 5,000 hosts down.
        self.assertEqual([heartbeat.Change('isolated')],
                         detector.expire(100.2))


class TestMonitorOverUDP(base.TestCase):

    def setUp(self):
        super().setUp()
        self.set_opts(group=heartbeat.GROUP, interval=INTERVAL,
                      startup_grace=0.0, listen='127.0.0.1:0')
        self.reports = []
        self.reported = threading.Condition()

    def reporter(self, report):
        with self.reported:
            self.reports.append(report)
            self.reported.notify_all()

    def start(self, key=None):
        if key:
            self.set_opts(group=heartbeat.GROUP, key=key)
        monitor = heartbeat.HeartbeatMonitor(self.conf, self.reporter,
                                             timeline=self.timeline)
        stop = threading.Event()
        thread = threading.Thread(target=monitor.run, args=(stop,),
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(stop.set)
        monitor.started.wait(5)
        return monitor

    def sender(self, monitor, hosts=('compute-1',), key=None):
        sender = heartbeat.HeartbeatSender(hosts, [monitor.address],
                                           INTERVAL, key)
        stop = threading.Event()
        thread = threading.Thread(target=sender.run, args=(stop,),
                                  daemon=True)
        thread.start()
        self.addCleanup(sender.close)
        self.addCleanup(thread.join, 5)
        self.addCleanup(stop.set)
        return sender, stop

    def wait_reports(self, count, timeout=5):
        with self.reported:
            self.reported.wait_for(lambda: len(self.reports) >= count,
                                   timeout)
        return self.reports

    def test_a_stopped_agent_is_reported_down_then_up(self):
        monitor = self.start()
        sender, stop = self.sender(monitor)
        time.sleep(0.3)
        self.assertEqual([], self.reports)
        sender.paused.add('compute-1')
        paused_at = time.time()
        (down,) = self.wait_reports(1)
        self.assertEqual(('compute-1', 'down', 'heartbeat'),
                         (down.hostname, down.status, down.monitor))
        self.assertLess(down.detected_at - paused_at, 4 * INTERVAL)
        marks = self.timeline.marks(down.monitor_event_id)
        self.assertLessEqual(marks['T00'], marks['T01'])
        sender.paused.clear()
        up = self.wait_reports(2)[1]
        self.assertEqual('up', up.status)

    def test_wrong_key_is_dropped_and_the_host_stays_silent(self):
        self.set_opts(group=heartbeat.GROUP, hosts=['compute-1'])
        monitor = self.start(key='right')
        self.sender(monitor, key=b'wrong')
        (down,) = self.wait_reports(1)
        self.assertEqual('down', down.status)
        self.assertGreater(monitor.detector.dropped[
            'bad signature (is [heartbeat] key the same on the agent?)'], 0)

    def test_signed_heartbeats_keep_the_host_up(self):
        monitor = self.start(key='shared')
        self.sender(monitor, key=b'shared')
        time.sleep(0.4)
        self.assertEqual([], self.reports)
        self.assertIn('compute-1', monitor.detector.hosts)

    def test_listen_errors_name_the_option(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(('127.0.0.1', 0))
            self.set_opts(group=heartbeat.GROUP,
                          listen='127.0.0.1:%d' % taken.getsockname()[1])
            exc = self.assertRaises(exceptions.ConfigurationError,
                                    heartbeat.HeartbeatMonitor, self.conf,
                                    self.reporter)
        self.assertIn('[heartbeat] listen', str(exc))


class TestAgentCommand(base.TestCase):

    def write_conf(self, text):
        path = self.useFixture(fixtures.TempDir()).path + '/agent.conf'
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_no_detector_is_a_startup_error(self):
        path = self.write_conf('[heartbeat]\ndetectors =\n')
        stderr = self.useFixture(fixtures.StringStream('stderr'))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr.stream))
        self.assertEqual(2, cmd_heartbeat.main(['--config-file', path]))
        self.assertIn('no detector', stderr.getDetails()['stderr']
                      .as_text())

    def test_defaults_to_this_hosts_name(self):
        sender = heartbeat.HeartbeatSender.from_conf(self.conf)
        self.addCleanup(sender.close)
        self.assertEqual([socket.gethostname()], sender.hosts)
        self.assertEqual([('127.0.0.1', 12346)], sender.detectors)
        self.assertEqual(0.05, sender.interval)
