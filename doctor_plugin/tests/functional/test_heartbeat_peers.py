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

"""Three real detectors watching the same hosts over two planes.

Everything is real UDP on loopback: each detector listens on a
management and a tenant plane (127.0.1.x and 127.0.2.x), the agents send
to every detector on every plane, and the detectors probe each other
through UDP relays that a test can cut, as a broken link would. Their
reports go over HTTP to a recording inspector, whose ``PUT /events``
bodies are what the tests look at.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time

import fixtures

from doctor_plugin.monitors import heartbeat
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin.testing import config
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.monitors import test_reporter

INTERVAL = 0.05
HOSTS = ('fh-1', 'fh-2', 'fh-3')
PLANES = ('management', 'tenant')
MONITORS = 3


def free_udp_port(host: str = '127.0.0.1') -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class UDPRelay:
    """One direction of a link between two detectors, that can be cut.

    Datagrams sent to :attr:`address` go on to ``target``, and the
    replies back to whoever sent; with :attr:`cut` set, both ways are
    dropped.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(('127.0.0.1', 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(('127.0.0.1', 0))
        self.address = self.front.getsockname()
        self.cut = False
        self._client: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.front, self.back], [], [],
                                           0.05)
            for sock in readable:
                try:
                    data, source = sock.recvfrom(4096)
                except OSError:
                    continue
                if self.cut:
                    continue
                try:
                    if sock is self.front:
                        self._client = source
                        self.back.sendto(data, self.target)
                    elif self._client is not None:
                        self.front.sendto(data, self._client)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.front.close()
        self.back.close()


class Detectors(base.TestCase):
    """Three detectors, and an agent per detector and plane."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.inspector = test_reporter.FakeInspector()
        thread = threading.Thread(target=self.inspector.serve_forever,
                                  kwargs={'poll_interval': 0.05},
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 2)
        self.addCleanup(self.inspector.server_close)
        self.addCleanup(self.inspector.shutdown)
        probe_ports = [free_udp_port() for _ in range(MONITORS)]
        #: relays[i][j]: detector i's link to detector j's probes
        self.relays: dict[int, dict[int, UDPRelay]] = {}
        for i in range(MONITORS):
            self.relays[i] = {}
            for j in range(MONITORS):
                if i != j:
                    relay = UDPRelay(('127.0.0.1', probe_ports[j]))
                    self.addCleanup(relay.close)
                    self.relays[i][j] = relay
        self.monitors = []
        for i in range(MONITORS):
            conf = self.useFixture(config.ConfFixture()).conf
            peers = [f'{r.address[0]}:{r.address[1]}'
                     for r in self.relays[i].values()]
            for name, value in (
                    ('interval', INTERVAL), ('startup_grace', 0.0),
                    ('plane_miss_count', 5),
                    ('planes', [f'management=127.0.1.{i + 1}:0',
                                f'tenant=127.0.2.{i + 1}:0']),
                    ('probe_listen', f'127.0.0.1:{probe_ports[i]}'),
                    ('peers', peers)):
                conf.set_override(name, value, group='heartbeat')
            conf.set_override('monitor_id', f'monitor-{i}', group='monitor')
            conf.set_override('inspector_url', [self.inspector.url],
                              group='monitor')
            reporter = reporter_mod.InspectorReporter(conf)
            self.addCleanup(reporter.close)
            monitor = heartbeat.HeartbeatMonitor(conf, reporter)
            stop = threading.Event()
            thread = threading.Thread(target=monitor.run, args=(stop,),
                                      daemon=True)
            thread.start()
            self.addCleanup(thread.join, 5)
            self.addCleanup(stop.set)
            self.assertTrue(monitor.started.wait(5))
            self.monitors.append(monitor)
        #: senders[i][plane]: the heartbeats of HOSTS to detector i on it
        self.senders: list[list[heartbeat.HeartbeatSender]] = []
        for monitor in self.monitors:
            row = []
            for plane in PLANES:
                sender = heartbeat.HeartbeatSender(
                    HOSTS, [monitor.plane_addresses[plane][:2]], INTERVAL)
                stop = threading.Event()
                thread = threading.Thread(target=sender.run, args=(stop,),
                                          daemon=True)
                thread.start()
                self.addCleanup(sender.close)
                self.addCleanup(thread.join, 5)
                self.addCleanup(stop.set)
                row.append(sender)
            self.senders.append(row)
        # Every detector hears every host, and every peer answers pings.

        def ready() -> bool:
            return all(m.detector is not None
                       and all(h in m.detector.hosts for h in HOSTS)
                       and all(not p.missed for p in m.detector.peers)
                       for m in self.monitors)

        self.assertTrue(base.wait_until(ready, 10),
                        'the detectors did not all hear every host and peer')

    def events(self, type_: str | None = None) -> list[dict]:
        """Every event the inspector got, in order."""
        with self.inspector._lock:
            bodies = [r['body'] for r in self.inspector.requests]
        return [e for body in bodies for e in body
                if type_ is None or e['type'] == type_]

    def wait_events(self, predicate, count: int, timeout: float = 10):
        self.assertTrue(base.wait_until(
            lambda: len([e for e in self.events() if predicate(e)])
            >= count, timeout),
            f'wanted {count} such events, got {self.events()}')
        return [e for e in self.events() if predicate(e)]

    def pause(self, host: str, monitors=range(MONITORS),
              planes=range(len(PLANES))) -> None:
        for i in monitors:
            for plane in planes:
                self.senders[i][plane].paused.add(host)

    def resume(self, host: str) -> None:
        for row in self.senders:
            for sender in row:
                sender.paused.discard(host)


class TestDetectors(Detectors):

    def test_a_stopped_agent_is_reported_down_by_each_monitor(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'agent.conf')
        detectors = ','.join(f'{a[0]}:{a[1]}' for m in self.monitors
                             for a in m.plane_addresses.values())
        with open(path, 'w') as f:
            f.write(f'[heartbeat]\nhostname = fh-agent\n'
                    f'detectors = {detectors}\n')
        agent = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable),
                          'doctor-plugin-heartbeat'), '--config-file', path],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: agent.poll() is None and (agent.kill(),
                                                          agent.wait(5)))
        self.assertTrue(base.wait_until(
            lambda: all(m.detector.hosts.get('fh-agent') is not None
                        and m.detector.hosts['fh-agent'].state == 'up'
                        and all(p.heard > heartbeat.NEVER for p in
                                m.detector.hosts['fh-agent'].planes)
                        for m in self.monitors), 10))
        time.sleep(0.3)
        killed = time.time()
        agent.kill()
        agent.wait(5)
        downs = self.wait_events(
            lambda e: e['details']['hostname'] == 'fh-agent', MONITORS)
        # An upper bound on when the inspector had the last of them: two
        # intervals, a tick, a round trip to the peers, the polling; a
        # wide margin for a loaded machine.
        self.assertLess(time.time() - killed, 0.5)
        self.assertEqual({f'monitor-{i}' for i in range(MONITORS)},
                         {e['details']['monitor_id'] for e in downs})
        for event in downs:
            self.assertEqual('compute.host.down', event['type'])
            self.assertEqual('down', event['details']['status'])
            self.assertEqual('management,tenant',
                             event['details']['planes'])
        self.assertEqual([], self.events('doctor.monitor.isolated'))

    def test_one_plane_silent_is_degraded_then_restored(self):
        self.pause('fh-2', planes=[1])
        degraded = self.wait_events(
            lambda e: e['details']['status'] == 'degraded', MONITORS)
        self.assertEqual({f'monitor-{i}' for i in range(MONITORS)},
                         {e['details']['monitor_id'] for e in degraded})
        for event in degraded:
            self.assertEqual('compute.host.degraded', event['type'])
            self.assertEqual(('fh-2', 'tenant', 'heartbeat'),
                             (event['details']['hostname'],
                              event['details']['planes'],
                              event['details']['monitor']))
        self.resume('fh-2')
        restored = self.wait_events(
            lambda e: e['details']['status'] == 'restored', MONITORS)
        self.assertEqual({'tenant'},
                         {e['details']['planes'] for e in restored})
        self.assertEqual([], self.events('compute.host.down'))

    def test_a_monitor_cut_off_from_one_host_reports_nothing(self):
        self.pause('fh-1', monitors=[0])
        # Monitor 0 asks, its peers hear fh-1: no report. Wait for it to
        # have asked several times.
        time.sleep(1.0)
        self.assertEqual([], self.events())
        self.assertIn('fh-1', self.monitors[0].detector._silent)
        self.resume('fh-1')
        time.sleep(0.3)
        self.assertEqual([], self.events())

    def test_a_monitor_cut_off_from_everything_is_isolated(self):
        for host in HOSTS:
            self.pause(host, monitors=[0])
        for i in range(MONITORS):
            for j in range(MONITORS):
                if 0 in (i, j) and i != j:
                    self.relays[i][j].cut = True
        (isolated,) = self.wait_events(
            lambda e: e['details']['status'] == 'isolated', 1)
        self.assertEqual(
            {'hostname': 'monitor-0', 'status': 'isolated',
             'monitor': 'heartbeat', 'monitor_id': 'monitor-0'},
            {k: v for k, v in isolated['details'].items()
             if k != 'monitor_event_id'})
        self.assertEqual('doctor.monitor.isolated', isolated['type'])
        time.sleep(0.5)
        for host in HOSTS:
            self.resume(host)
        for relays in self.relays.values():
            for relay in relays.values():
                relay.cut = False
        self.wait_events(lambda e: e['details']['status'] == 'connected', 1)
        time.sleep(0.3)
        self.assertEqual(['isolated', 'connected'],
                         [e['details']['status'] for e in self.events()])
