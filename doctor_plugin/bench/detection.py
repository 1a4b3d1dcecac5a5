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

"""B2: fault detection by heartbeats, with the shipped defaults.

Latency: a host's heartbeats stop (T00) and the detector's report reaches
the inspector's API (its T06), over ≥ 200 trials. False positives: for
``--duration`` seconds (600 by default), 200 hosts send heartbeats from a
process of their own while other processes keep both CPUs fully busy;
every host the detector reports down is a false positive. CPU: the
detector's CPU time while watching 5,000 hosts.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import typing

from oslo_config import cfg

from doctor_plugin.bench import harness
from doctor_plugin.common import messaging
from doctor_plugin.common import profiler
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin.monitors import heartbeat
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin import opts
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.testing import childproc
from doctor_plugin.topology import hosts as topology_mod

#: Senders in the false-positive run, as the issue asks.
SOAK_HOSTS = 200
#: Hosts of the CPU figure.
CPU_HOSTS = 5000
CPU_SECONDS = 10.0


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='doctor_plugin', default_config_files=[])
    conf.set_override('transport_url', messaging.FAKE_TRANSPORT_URL)
    chain_mod.use_private_state(conf)
    conf.set_override('port', 0, group='inspector')
    chain_mod.use_shared_secret(conf)
    conf.set_override('enable_notification_listener', False,
                      group='inspector')
    conf.set_override('host_report_window', 0.0, group='inspector')
    conf.set_override('listen', '127.0.0.1:0', group='heartbeat')
    return conf


class _Detection:
    """The detector watching, reporting to a running inspector."""

    def __init__(self, conf: cfg.ConfigOpts, timeline: profiler.Timeline,
                 grace: float | None = None) -> None:
        if grace is not None:
            conf.set_override('startup_grace', grace, group='heartbeat')
        pipeline = pipeline_mod.Pipeline(
            conf, pipeline_mod.PipelineDefinition.from_dict(
                {'sources': [{'name': 'all', 'events': ['*'],
                              'sinks': ['log']}],
                 'sinks': [{'name': 'log',
                            'notifiers': ['log://?level=debug']}]}))
        self.inspector = inspector_service.InspectorService(
            conf, pipeline=pipeline, topology=topology_mod.HostTopology(),
            timeline=timeline).start()
        conf.set_override('inspector_url', self.inspector.url + '/events',
                          group='monitor')
        self.reports: list = []
        self._cond = threading.Condition()
        reporter = reporter_mod.InspectorReporter(conf)

        def report(fault):
            reporter(fault)
            with self._cond:
                self.reports.append(fault)
                self._cond.notify_all()

        self.monitor = heartbeat.HeartbeatMonitor(conf, report,
                                                  timeline=timeline)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.monitor.run,
                                        args=(self._stop,), daemon=True,
                                        name='doctor-bench-detector')
        self._thread.start()
        self.monitor.started.wait(5)
        # start() returns once the thread runs, and so has its id.
        assert self._thread.native_id is not None
        self.cpu_thread_id = self._thread.native_id

    def wait_reports(self, count: int, timeout: float) -> list:
        with self._cond:
            self._cond.wait_for(lambda: len(self.reports) >= count, timeout)
            return list(self.reports)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.inspector.stop()
        messaging.cleanup()


def _thread_cpu(native_id: int) -> float:
    """CPU seconds of one of this process's threads (Linux)."""
    with open(f'/proc/self/task/{native_id}/stat') as f:
        fields = f.read().rpartition(')')[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class _Senders:
    """``count`` simulated hosts' agents in ``processes`` of their own."""

    def __init__(self, count: int, address: tuple,
                 processes: int = 1) -> None:
        share = -(-count // processes)
        self._children = [childproc.ChildServer(
            'doctor_plugin.bench.detection',
            ['send', str(min(share, count - first)), str(first),
             f'{address[0]}:{address[1]}'],
            what='the heartbeat senders')
            for first in range(0, count, share)]

    def start(self) -> _Senders:
        for child in self._children:
            child.start()
        return self

    def stop(self) -> None:
        for child in self._children:
            child.stop()


def cpu_hogs(seconds: float) -> list[subprocess.Popen]:
    """Keep every CPU busy for ``seconds`` (bounded: they exit then)."""
    code = ('import time\nend = time.monotonic() + %f\n'
            'while time.monotonic() < end:\n    pass\n' % seconds)
    return [subprocess.Popen([sys.executable, '-c', code])
            for _ in range(os.cpu_count() or 2)]


def run_b2(options: typing.Any,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B2: heartbeat stops → report at the inspector; false positives."""
    trials = options.trials or 200
    soak = options.duration if options.duration is not None else 600.0
    conf = _conf()
    interval = conf.heartbeat.interval
    timeline = profiler.Timeline()
    detection = _Detection(conf, timeline, grace=0.0)
    latencies, detected = [], []
    victim = heartbeat.HeartbeatSender(['b2-victim'],
                                       [detection.monitor.address],
                                       interval)
    stop_sending = threading.Event()
    sender = threading.Thread(target=victim.run, args=(stop_sending,),
                              daemon=True)
    sender.start()
    try:
        time.sleep(0.5)
        for i in range(trials + 5):
            # A random phase between two heartbeats.
            time.sleep(0.2 + random.uniform(0, interval))
            expected = len(detection.reports) + 1
            victim.paused.add('b2-victim')
            fault_time = time.time()
            reports = detection.wait_reports(expected, 5)
            victim.paused.clear()
            detection.wait_reports(expected + 1, 5)
            if len(reports) < expected or reports[-1].status != 'down':
                log(f'B2 trial {i}: no down report within 5 s')
                continue
            marks = timeline.marks(reports[-1].monitor_event_id)
            if i < 5 or 'T06' not in marks:
                continue
            latencies.append((marks['T06'] - fault_time) * 1000.0)
            detected.append((marks['T01'] - fault_time) * 1000.0)
    finally:
        stop_sending.set()
        sender.join(2)
        victim.close()
        detection.stop()

    log(f'B2: {SOAK_HOSTS} senders for {soak:g} s with every CPU busy ...')
    conf = _conf()
    soak_detection = _Detection(conf, profiler.Timeline())
    senders = _Senders(SOAK_HOSTS, soak_detection.monitor.address).start()
    hogs = []
    try:
        # Past the detector's grace period, with every host seen.
        time.sleep(soak_detection.monitor.grace + 1.0)
        assert soak_detection.monitor.detector is not None  # it runs
        seen = len(soak_detection.monitor.detector.hosts)
        hogs = cpu_hogs(soak)
        time.sleep(soak)
        false_positives = sum(1 for r in soak_detection.reports
                              if r.status == 'down')
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        senders.stop()
        soak_detection.stop()

    log(f'B2: CPU of watching {CPU_HOSTS} hosts for {CPU_SECONDS:g} s ...')
    conf = _conf()
    cpu_detection = _Detection(conf, profiler.Timeline())
    # 100,000 heartbeats a second are more than one Python process sends
    # on time: two share them.
    senders = _Senders(CPU_HOSTS, cpu_detection.monitor.address,
                       processes=2).start()
    try:
        time.sleep(2.0)
        flaps_before = len(cpu_detection.reports)
        before = _thread_cpu(cpu_detection.cpu_thread_id)
        time.sleep(CPU_SECONDS)
        cpu = (_thread_cpu(cpu_detection.cpu_thread_id) - before) / \
            CPU_SECONDS
        cpu_flaps = len(cpu_detection.reports) - flaps_before
        assert cpu_detection.monitor.detector is not None  # it runs
        watched = len(cpu_detection.monitor.detector.hosts)
    finally:
        senders.stop()
        cpu_detection.stop()

    summary = harness.latency_summary(latencies)
    p99 = summary['p99']  # None without latencies
    return harness.ScenarioResult(
        scenario='B2', transport='udp', trials=trials, latency_ms=summary,
        sent=trials, received=len(latencies), lost=trials - len(latencies),
        duplicates=0,
        target='p99 <= 150 ms with the shipped defaults; 0 false '
               'positives',
        met=(p99 is not None and p99 <= 150.0
             and false_positives == 0),
        env=harness.environment('udp'),
        extra={'interval_s': interval,
               'miss_count': conf.heartbeat.miss_count,
               'detection_ms': harness.latency_summary(detected),
               'false_positives': false_positives,
               'soak_s': soak, 'soak_hosts': SOAK_HOSTS,
               'soak_hosts_seen': seen,
               'detector_cpu_5000_hosts': f'{cpu:.1%} of one CPU '
                                          f'({watched} hosts seen, '
                                          f'{1 / interval:g} heartbeats/s '
                                          f'each)',
               # Senders falling behind on this machine make hosts flap;
               # the CPU figure then includes reporting them.
               'reports_during_cpu_run': cpu_flaps})


def _send_main(count: int, first: int, detector: str) -> None:
    """Run ``count`` simulated hosts' heartbeats until SIGTERM."""
    address = heartbeat.parse_address(detector, 'detector')
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='doctor_plugin', default_config_files=[])
    sender = heartbeat.HeartbeatSender(
        [f'sim-{i:05d}' for i in range(first, first + count)], [address],
        conf.heartbeat.interval)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sys.stdout.write(json.dumps({'ready': True,
                                 'host': socket.gethostname()}) + '\n')
    sys.stdout.flush()
    sender.run(stop)
    sender.close()


if __name__ == '__main__':
    if sys.argv[1:2] == ['send'] and len(sys.argv) == 5:
        _send_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit('usage: python -m doctor_plugin.bench.detection send COUNT '
                 'FIRST HOST:PORT (run by the benchmark)')
