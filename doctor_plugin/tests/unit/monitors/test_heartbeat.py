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

import random
import socket
import threading
import time
import uuid

import fixtures

from doctor_plugin.cmd import heartbeat as cmd_heartbeat
from doctor_plugin import exceptions
from doctor_plugin.monitors import heartbeat
from doctor_plugin.monitors import probe
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


PEERS = [('198.18.0.31', 12347), ('198.18.0.32', 12347),
         ('198.18.0.33', 12347)]


class Sim:
    """A detector on a clock the test moves, hosts and peers as told.

    Host ``i`` sends every interval, at a phase of its own, on every plane
    ``sending(host, plane, t)`` allows. Peer ``p`` answers pings while in
    :attr:`ponging`, and questions with ``answers[p](host, t)``: a
    status, or None for no answer; replies arrive a millisecond later.

    :ivar changes: ``(time, status, host, planes)`` of every change
    """

    RTT = 0.001

    def __init__(self, hosts, planes=('management',), peers=(),
                 start=100.0, **kwargs):
        self.detector = heartbeat.Detector(
            INTERVAL, kwargs.pop('miss_count', 2), kwargs.pop('grace', 0.0),
            start, planes=planes, peers=peers, **kwargs)
        self.hosts = list(hosts)
        self.planes = len(planes)
        self.now = start
        self.seq = 0
        self.changes = []
        self.questions = []
        self.ponging = set(range(len(peers)))
        self.answers = {p: (lambda host, t: probe.SILENT)
                        for p in range(len(peers))}
        self.sending = lambda host, plane, t: True
        self._replies = []

    def phase(self, host):
        return (self.hosts.index(host) * 0.0137) % INTERVAL

    def _record(self, changes):
        for change in changes:
            self.changes.append((round(self.now, 3), change.status,
                                 change.host, change.planes))

    def run_until(self, end, step=0.0025):
        detector = self.detector
        while self.now < end - 1e-9:
            before, self.now = self.now, min(self.now + step, end)
            for host in self.hosts:
                # A send time of this host in (before, now]?
                k = int((self.now - 100.0 - self.phase(host)) / INTERVAL)
                sent_at = 100.0 + self.phase(host) + k * INTERVAL
                if not before < sent_at <= self.now:
                    continue
                self.seq += 1
                for plane in range(self.planes):
                    if self.sending(host, plane, sent_at):
                        self._record(detector.heartbeat(
                            hb(host, self.seq, sent_at), self.now, plane))
            due = [r for r in self._replies if r[0] <= self.now]
            self._replies = [r for r in self._replies if r[0] > self.now]
            for _, kind, args in due:
                if kind == probe.PONG:
                    detector.pong(args[0], self.now)
                else:
                    self._record(detector.probe_answer(*args, self.now))
            self._record(detector.expire(self.now))
            for peer, kind, nonce, host in detector.take_outbox():
                if kind == probe.PING:
                    if peer in self.ponging:
                        self._replies.append((self.now + self.RTT,
                                              probe.PONG, (nonce,)))
                    continue
                self.questions.append((round(self.now, 3), peer, host))
                status = self.answers[peer](host, self.now)
                if status is not None:
                    # A peer that hears the host has a newer heartbeat.
                    last_sent = self.now if status == probe.ALIVE else 0.0
                    self._replies.append((self.now + self.RTT, probe.ANSWER,
                                          (nonce, host, status, 0.01,
                                           last_sent)))

    def statuses(self, *wanted):
        return [c for c in self.changes if c[1] in wanted]


class TestPlanes(base.TestCase):
    """Two planes: management (0) and tenant (1)."""

    PLANES = ('management', 'tenant')

    def test_down_only_when_silent_on_every_plane(self):
        sim = Sim(['c-1', 'c-2'], self.PLANES)
        # c-1's management plane breaks at 100.5, its tenant plane at 101.
        sim.sending = lambda host, plane, t: not (
            host == 'c-1' and t > (100.5 if plane == 0 else 101.0))
        sim.run_until(101.0)
        self.assertEqual([], sim.statuses('down'))
        sim.run_until(102.0)
        (down,) = sim.statuses('down')
        self.assertEqual(('c-1', ('management', 'tenant')), down[2:])
        # Its last heartbeat (on tenant) at about 101.0, then 2 intervals.
        self.assertGreaterEqual(down[0], 101.0 + 2 * INTERVAL - INTERVAL)
        self.assertLessEqual(down[0], 101.0 + 3 * INTERVAL)

    def test_degraded_once_then_restored(self):
        sim = Sim(['c-1', 'c-2'], self.PLANES, plane_miss_count=10)
        sim.sending = lambda host, plane, t: not (
            host == 'c-1' and plane == 1 and 100.5 < t < 102.5)
        sim.run_until(103.0)
        self.assertEqual([], sim.statuses('down', 'up'))
        degraded, restored = sim.statuses('degraded', 'restored')
        self.assertEqual(('degraded', 'c-1', ('tenant',)), degraded[1:])
        # Ten intervals of silence, and at most two more until its slot.
        self.assertGreaterEqual(degraded[0], 100.5 + 10 * INTERVAL)
        self.assertLessEqual(degraded[0], 100.55 + 12.5 * INTERVAL)
        self.assertEqual(('restored', 'c-1', ('tenant',)), restored[1:])
        self.assertAlmostEqual(102.5, restored[0], delta=INTERVAL)

    def test_losses_shorter_than_plane_miss_count_are_not_degraded(self):
        rng = random.Random(30)
        lost = {round(100.0 + i * 0.0025, 4) for i in range(8000)
                if rng.random() < 0.3}

        def lossy(host, plane, t):
            # 30 % loss on the tenant plane, and bursts of 6 lost in a
            # row every 2 seconds.
            burst = 0 < (t - 100.0) % 2.0 < 6 * INTERVAL
            return plane == 0 or not (round(t, 4) in lost or burst)

        for count, expected in ((10, 0), (5, 1)):
            sim = Sim(['c-1', 'c-2'], self.PLANES, plane_miss_count=count)
            sim.sending = lossy
            sim.run_until(110.0)
            self.assertEqual([], sim.statuses('down'))
            degraded = sim.statuses('degraded')
            if expected:
                self.assertGreater(len(degraded), 0)
            else:
                self.assertEqual([], degraded)

    def test_a_plane_never_heard_on_is_neither_degraded_nor_down(self):
        sim = Sim(['c-1', 'c-2'], self.PLANES, plane_miss_count=4)
        sim.sending = lambda host, plane, t: (
            plane == 0 and not (host == 'c-1' and t > 101.0))
        sim.run_until(102.0)
        self.assertEqual([('down', 'c-1', ('management',))],
                         [c[1:] for c in sim.changes])

    def test_each_plane_brings_its_own_copy_of_a_heartbeat(self):
        detector = heartbeat.Detector(INTERVAL, 2, 0.0, 100.0,
                                      planes=self.PLANES)
        detector.heartbeat(hb(seq=1), 100.0, 0)
        detector.heartbeat(hb(seq=1), 100.001, 1)
        self.assertEqual(0, detector.dropped['replayed or reordered'])
        self.assertEqual(100.001,
                         detector.hosts['compute-1'].planes[1].heard)
        detector.heartbeat(hb(seq=1), 100.002, 1)
        self.assertEqual(1, detector.dropped['replayed or reordered'])

    def test_after_up_the_other_planes_get_time_to_come_back(self):
        sim = Sim(['c-1', 'c-2'], self.PLANES, plane_miss_count=4)
        # Down at 100.5; back on management at 101.5, on tenant 0.15 s
        # later (less than 4 intervals).
        sim.sending = lambda host, plane, t: host != 'c-1' or (
            t < 100.5 or t > (101.5 if plane == 0 else 101.65))
        sim.run_until(102.5)
        self.assertEqual(['down', 'up'], [c[1] for c in sim.changes])


class TestProbes(base.TestCase):
    """Three peers answering a millisecond after being asked."""

    def sim(self, **kwargs):
        sim = Sim(['c-1', 'c-2'], peers=PEERS, **kwargs)
        sim.sending = lambda host, plane, t: host != 'c-1' or t < 101.0
        return sim

    def test_silent_answers_report_down_one_round_trip_after_the_deadline(
            self):
        sim = self.sim()
        sim.run_until(101.5)
        (down,) = sim.statuses('down')
        first_question = min(t for t, _, host in sim.questions
                             if host == 'c-1')
        self.assertEqual({0, 1, 2}, {p for t, p, h in sim.questions
                                     if t == first_question})
        # Asked at the deadline; down as the answers come in, without
        # waiting for probe_timeout.
        self.assertLessEqual(down[0] - first_question, 2 * Sim.RTT + 0.003)
        self.assertLessEqual(first_question, 101.0 + 2.25 * INTERVAL + 0.003)

    def test_one_alive_answer_vetoes_and_the_host_is_asked_again(self):
        sim = self.sim()
        sim.answers[1] = lambda host, t: (probe.ALIVE if t < 101.6
                                          else probe.SILENT)
        sim.run_until(101.5)
        self.assertEqual([], sim.statuses('down'))
        self.assertEqual([('vetoed', 'c-1', ())],
                         [c[1:] for c in sim.changes][:1])
        asked = sorted({t for t, _, host in sim.questions if host == 'c-1'})
        # Looked at again about a timeout after each veto, not at every
        # tick.
        self.assertLessEqual(len(asked), 6)
        self.assertTrue(all(b - a >= 2 * INTERVAL - 0.02
                            for a, b in zip(asked, asked[1:])))
        sim.run_until(102.0)
        (down,) = sim.statuses('down')
        self.assertGreater(down[0], 101.6)

    def test_no_answer_reports_down_after_probe_timeout(self):
        sim = self.sim(probe_timeout=0.02)
        sim.run_until(100.9)
        for peer in range(3):
            sim.answers[peer] = lambda host, t: None
        sim.run_until(101.5)
        (down,) = sim.statuses('down')
        first_question = min(t for t, _, host in sim.questions
                             if host == 'c-1')
        self.assertGreaterEqual(down[0] - first_question, 0.02)
        self.assertLessEqual(down[0] - first_question, 0.02 + 0.003)

    def test_an_alive_answer_late_but_within_probe_timeout_vetoes(self):
        sim = self.sim(probe_timeout=0.02)
        sim.run_until(100.9)
        sim.answers[2] = lambda host, t: None
        sim.run_until(100.95)
        # Peer 2 answers ALIVE 10 ms after being asked.
        sim.answers[2] = lambda host, t: probe.ALIVE
        sim.RTT = 0.01
        sim.run_until(101.3)
        self.assertEqual([], sim.statuses('down'))
        self.assertGreater(len(sim.statuses('vetoed')), 0)

    def test_alive_for_no_newer_heartbeat_than_ours_does_not_veto(self):
        sim = self.sim()
        sim.run_until(101.0)
        detector = sim.detector
        # A loaded peer read c-1's last heartbeat late, and thinks it
        # recent: it answers ALIVE, with the same heartbeat as ours.
        ours = max(s.sent for s in detector.hosts['c-1'].planes)
        sim.answers = {p: (lambda host, t: None) for p in range(3)}
        while not detector._pending and sim.now < 101.5:
            sim.run_until(sim.now + 0.0025)
        (question,) = [h.probe for h in detector._pending.values()]
        for index, nonce in question.nonces.items():
            sim._record(detector.probe_answer(nonce, 'c-1', probe.ALIVE,
                                              0.01, ours, sim.now))
        self.assertEqual(['down'], [c[1] for c in sim.changes])

    def test_peers_that_do_not_answer_pings_are_not_waited_for(self):
        sim = self.sim(probe_timeout=0.04)
        sim.ponging = {0}
        sim.answers[1] = sim.answers[2] = lambda host, t: None
        sim.run_until(101.5)
        (down,) = sim.statuses('down')
        first_question = min(t for t, _, host in sim.questions
                             if host == 'c-1')
        self.assertLessEqual(down[0] - first_question, 2 * Sim.RTT + 0.003)

    def test_a_peer_that_missed_a_question_is_not_waited_for_again(self):
        sim = Sim(['c-1', 'c-2', 'c-3'], peers=PEERS, probe_timeout=0.02)
        sim.sending = lambda host, plane, t: not (
            (host == 'c-1' and t > 101.0) or (host == 'c-2' and t > 101.5))
        sim.run_until(100.9)
        sim.answers[2] = lambda host, t: None
        sim.run_until(102.0)
        first, second = sim.statuses('down')
        asked = {h: min(t for t, _, host in sim.questions if host == h)
                 for h in ('c-1', 'c-2')}
        self.assertGreaterEqual(first[0] - asked['c-1'], 0.02)
        self.assertLessEqual(second[0] - asked['c-2'], 2 * Sim.RTT + 0.003)

    def test_replies_to_no_question_are_dropped(self):
        sim = self.sim()
        sim.run_until(100.5)
        detector = sim.detector
        self.assertEqual([], detector.probe_answer(
            12345, 'c-1', probe.ALIVE, 0.0, 100.5, 100.5))
        detector.pong(999, 100.5)
        self.assertEqual(2, sum(
            n for reason, n in detector.dropped.items()
            if 'no question' in reason))

    def test_a_replayed_alive_answer_does_not_veto(self):
        sim = self.sim()
        recorded = []
        original = sim.detector.probe_answer

        def record(nonce, host, status, age, last_sent, now):
            recorded.append((nonce, host))
            return original(nonce, host, status, age, last_sent, now)

        sim.detector.probe_answer = record
        sim.run_until(101.5)
        self.assertEqual(1, len(sim.statuses('down')))
        # Every question's answer again, now ALIVE: none is accepted.
        for nonce, host in recorded:
            self.assertEqual([], original(nonce, host, probe.ALIVE, 0.0,
                                          101.5, 101.5))
        sim.run_until(101.6)
        self.assertEqual([], sim.statuses('up', 'vetoed'))

    def test_answers_from_our_own_state(self):
        detector = heartbeat.Detector(INTERVAL, 2, 0.0, 100.0)
        detector.watch('configured', 100.0)
        detector.heartbeat(hb('c-1', 1, 1.0), 100.0)
        status, age, last_sent = detector.answer('c-1', 100.05)
        self.assertEqual((probe.ALIVE, 1.0), (status, last_sent))
        self.assertAlmostEqual(0.05, age)
        status, age, _ = detector.answer('c-1', 100.1)
        self.assertEqual(probe.SILENT, status)
        self.assertAlmostEqual(0.1, age)
        self.assertEqual(probe.UNKNOWN,
                         detector.answer('configured', 100.1)[0])
        self.assertEqual(probe.UNKNOWN, detector.answer('other', 100.1)[0])
        detector.isolated = True
        self.assertEqual(probe.UNKNOWN, detector.answer('c-1', 100.05)[0])


class TestIsolation(base.TestCase):

    HOSTS = [f'c-{i}' for i in range(5)]

    def cut_off(self, sim, start, end):
        """Nothing reaches the detector between ``start`` and ``end``."""
        answers = dict(sim.answers)
        sending = sim.sending
        sim.run_until(start)
        sim.sending = lambda host, plane, t: (
            sending(host, plane, t) and not start <= t < end)
        for peer in sim.answers:
            sim.answers[peer] = lambda host, t: None
        sim.ponging, ponging = set(), sim.ponging
        sim.run_until(end)
        sim.answers.update(answers)
        sim.ponging = ponging
        sim.sending = sending

    def check_cut_off(self, peers):
        sim = Sim(self.HOSTS, peers=peers)
        self.cut_off(sim, 101.0, 102.0)
        self.assertEqual([('isolated', '', ())],
                         [c[1:] for c in sim.changes])
        # Decided before the first host's deadline had gone by a whole
        # interval: its down report would have been due by then.
        self.assertLess(sim.changes[0][0], 101.0 + 3 * INTERVAL + 0.01)
        sim.run_until(103.0)
        self.assertEqual([('isolated', '', ()), ('connected', '', ())],
                         [c[1:] for c in sim.changes])

    def test_cut_off_with_peers(self):
        self.check_cut_off(PEERS)

    def test_cut_off_without_peers(self):
        self.check_cut_off(())

    def test_a_host_that_did_not_come_back_is_down_after_reconnecting(self):
        sim = Sim(self.HOSTS, peers=PEERS)
        self.cut_off(sim, 101.0, 102.0)
        sending = sim.sending
        sim.sending = lambda host, plane, t: host != 'c-3' and sending(
            host, plane, t)
        sim.run_until(103.0)
        self.assertEqual(['isolated', 'connected', 'down'],
                         [c[1] for c in sim.changes])
        down = sim.changes[-1]
        self.assertEqual('c-3', down[2])
        # A timeout after heartbeats came back, and the asking.
        self.assertLess(down[0], 102.0 + 3 * INTERVAL)

    def test_every_host_dead_while_peers_answer_silent_is_down(self):
        sim = Sim(self.HOSTS, peers=PEERS)
        sim.sending = lambda host, plane, t: t < 101.0
        sim.run_until(102.0)
        self.assertEqual(sorted(self.HOSTS),
                         sorted(c[2] for c in sim.statuses('down')))
        self.assertEqual([], sim.statuses('isolated'))

    def test_one_host_dead_without_peers_is_down_at_once(self):
        sim = Sim(['c-1', 'c-2'])
        sim.sending = lambda host, plane, t: host != 'c-1' or t < 101.0
        sim.run_until(102.0)
        (down,) = sim.statuses('down')
        # Its deadline, then at most half an interval for c-2's next
        # heartbeat to show this detector still hears.
        self.assertLessEqual(down[0], 101.0 + 2.75 * INTERVAL + 0.01)
        self.assertEqual([], sim.statuses('isolated'))

    def test_a_single_host_falling_silent_is_down(self):
        sim = Sim(['c-1'])
        sim.sending = lambda host, plane, t: t < 101.0
        sim.run_until(102.0)
        self.assertEqual(['down'], [c[1] for c in sim.changes])

    def test_a_host_down_before_is_up_after_reconnecting(self):
        sim = Sim(self.HOSTS, peers=PEERS)
        sim.sending = lambda host, plane, t: host != 'c-0' or t < 100.5
        self.cut_off(sim, 101.0, 102.0)
        sim.sending = lambda host, plane, t: True
        sim.run_until(103.0)
        self.assertEqual(['down', 'isolated', 'connected', 'up'],
                         [c[1] for c in sim.changes])

    def test_planes_coming_back_one_after_the_other_are_not_degraded(self):
        sim = Sim(self.HOSTS, planes=('management', 'tenant'), peers=PEERS,
                  plane_miss_count=10)
        self.cut_off(sim, 101.0, 102.0)
        # The tenant plane is back 0.2 s after the management plane.
        sim.sending = lambda host, plane, t: plane == 0 or t > 102.2
        sim.run_until(104.0)
        self.assertEqual(['isolated', 'connected'],
                         [c[1] for c in sim.changes])


class TestConfiguration(base.TestCase):

    def error(self, **opts):
        self.set_opts(group=heartbeat.GROUP, **opts)
        exc = self.assertRaises(exceptions.ConfigurationError,
                                heartbeat.HeartbeatMonitor, self.conf,
                                lambda report: None)
        return str(exc)

    def test_bad_planes_entries(self):
        for planes, fragment in (
                (['management'], 'expected name=address:port'),
                (['=127.0.0.1:0'], 'expected name=address:port'),
                (['a b=127.0.0.1:0'], 'may not contain'),
                (['management=127.0.0.1'], 'expected address:port'),
                (['m=127.0.0.1:0', 'm=127.0.0.2:0'], 'more than once'),
                (['m=127.0.0.1:40001', 't=127.0.0.1:40001'],
                 'the same address')):
            message = self.error(planes=planes)
            self.assertIn('[heartbeat] planes', message)
            self.assertIn(fragment, message)

    def test_peers_need_a_probe_endpoint(self):
        message = self.error(listen='127.0.0.1:0', peers=['127.0.0.1:9'])
        self.assertIn('[heartbeat] probe_listen', message)
        self.assertIn('peers are set', message)
        self.assertIn('[heartbeat] peers',
                      self.error(listen='127.0.0.1:0', peers=['nowhere'],
                                 probe_listen='127.0.0.1:0'))

    def test_planes_listen_where_configured(self):
        self.set_opts(group=heartbeat.GROUP,
                      planes=['management=127.0.0.1:0',
                              'tenant=127.0.0.2:0'],
                      probe_listen='127.0.0.1:0',
                      peers=['127.0.0.1:9', '127.0.0.1:10'])
        monitor = heartbeat.HeartbeatMonitor(self.conf, lambda r: None)
        self.addCleanup(monitor._close)
        self.assertEqual(['management', 'tenant'],
                         list(monitor.plane_addresses))
        self.assertEqual('127.0.0.2',
                         monitor.plane_addresses['tenant'][0])
        self.assertEqual([('127.0.0.1', 9), ('127.0.0.1', 10)],
                         monitor.peers)

    def test_its_own_probe_endpoint_is_not_a_peer(self):
        port = base.closed_port()
        self.set_opts(group=heartbeat.GROUP, listen='127.0.0.1:0',
                      probe_listen=f'127.0.0.1:{port}',
                      peers=[f'127.0.0.1:{port}', '127.0.0.1:9'])
        monitor = heartbeat.HeartbeatMonitor(self.conf, lambda r: None)
        self.addCleanup(monitor._close)
        self.assertEqual([('127.0.0.1', 9)], monitor.peers)
