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

"""``doctor-plugin demo``: the whole Doctor chain on one machine.

A simulated compute host (a real doctor-plugin-heartbeat agent process),
the heartbeat monitor watching it, and the chain of
:mod:`doctor_plugin.testing.chain`: the inspector with its HTTP API and
alarm evaluation, the message bus and one consumer webhook per tenant. The
fault is real as far as the monitor can tell: the agent is killed, and its
heartbeats stop; T00 is that moment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import typing

from doctor_plugin.common import profiler
from doctor_plugin.monitors import heartbeat
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin.testing import chain as chain_mod


class HeartbeatAgent:
    """A compute host's heartbeat agent, sending to ``detector``.

    A real doctor-plugin-heartbeat process; :meth:`fail` kills it
    (SIGKILL), as a host losing power stops its heartbeats.
    """

    def __init__(self, hostname: str, detector: tuple, interval: float,
                 workdir: str) -> None:
        path = os.path.join(workdir, 'heartbeat-agent.conf')
        address, port = detector[:2]
        if ':' in address:
            address = f'[{address}]'
        with open(path, 'w') as f:
            f.write(f'[heartbeat]\nhostname = {hostname}\n'
                    f'detectors = {address}:{port}\n'
                    f'interval = {interval}\n')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'doctor_plugin.cmd.heartbeat',
             '--config-file', path], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def fail(self) -> float:
        """Kill the agent; returns the time of the fault (T00)."""
        fault_time = time.time()
        self.proc.kill()
        self.proc.wait(5)
        return fault_time

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def run_demo(settings: chain_mod.ChainSettings, timeout: float,
             write: typing.Callable[[str], None] = print,
             interval: float | None = None) -> int:
    """Run the chain once; 0 if every tenant's consumer got its alarm.

    :param interval: heartbeat interval (default: the shipped one)
    """
    timeline = profiler.Timeline()
    chain = chain_mod.Chain(settings, timeline).start()
    detected: list[str] = []
    stop = threading.Event()
    workdir = tempfile.TemporaryDirectory(prefix='doctor-demo-')
    host = None
    try:
        reporter = reporter_mod.InspectorReporter(chain.conf)

        def report(fault):
            # The demo injects one fault: report the first change and
            # stop watching, so that a later change of the host (a stray
            # heartbeat read after the kill) cannot supersede the fault's
            # Nova fix-up while it runs.
            if detected:
                return
            detected.append(fault.monitor_event_id)
            stop.set()
            reporter(fault)

        if interval is not None:
            chain.conf.set_override('interval', interval, group='heartbeat')
        chain.conf.set_override('listen', '127.0.0.1:0', group='heartbeat')
        chain.conf.set_override('hosts', [settings.host], group='heartbeat')
        monitor = heartbeat.HeartbeatMonitor(chain.conf, report,
                                             timeline=timeline)
        host = HeartbeatAgent(settings.host, monitor.address,
                              monitor.interval, workdir.name)
        watcher = threading.Thread(target=monitor.run, args=(stop,),
                                   daemon=True, name='doctor-demo-monitor')
        watcher.start()
        # Let the monitor see the host up before the fault.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
                monitor.detector is None or monitor.detector.hosts.get(
                    settings.host) is None
                or monitor.detector.hosts[settings.host].state != 'up'):
            time.sleep(0.02)
        time.sleep(max(0.2, monitor.grace - 0.1))
        write(f'doctor-plugin demo: transport {settings.transport_url}, '
              f'host {settings.host} with {settings.vms} VMs of '
              f'{settings.tenants} tenants'
              + (f', Nova stand-in at {chain.nova.url}' if chain.nova
                 else ''))
        fault_time = host.fail()
        write(f'fault injected: the heartbeat agent of {settings.host} '
              f'was killed')
        alarms = chain.consumer.wait_for(settings.tenants, timeout)
        stop.set()
        watcher.join(5)
        host.stop()
        if not detected:
            write(f'FAILED: the monitor did not detect the fault within '
                  f'{timeout} s')
            return 1
        fault_id = detected[0]
        timeline.mark(fault_id, 'T00', fault_time)
        fixup_line = None
        if chain.controller is not None:
            try:
                result = chain.controller.wait(fault_id, timeout)
            except TimeoutError:
                fixup_line = (f'Nova fix-up: not finished within {timeout} '
                              f's')
            else:
                fixup_line = (
                    f'Nova fix-up: {result.outcome}; compute service of '
                    f'{result.host} forced down, {result.instances_reset} '
                    f'of {result.instances_total} instance(s) set to error '
                    f'in {result.duration_ms:.1f} ms, after the tenants '
                    f'were notified')
        write(f'\nDoctor timeline of fault {fault_id} (ms from T00):')
        write(timeline.format(fault_id))
        if settings.transport_url.startswith('fake'):
            write('  (the embedded fake:// bus polls every 50 ms; use '
                  '--transport-url rabbit://... for broker figures)')
        if settings.alarms_in == 'listener' and settings.listener_process:
            write('  (T07 and T08 are marked in the alarm listener, which '
                  'runs in a process of its own)')
        if fixup_line:
            write(fixup_line)
        if len(alarms) < settings.tenants:
            write(f'\nFAILED: {len(alarms)} of {settings.tenants} tenant '
                  f'consumers received their alarm within {timeout} s')
            return 1
        write(f'\nconsumer received {len(alarms)} alarm(s), one per tenant;'
              f' the first, at {alarms[0].path}:')
        write(json.dumps(alarms[0].body, indent=2, sort_keys=True))
        return 0
    finally:
        stop.set()
        if host is not None:
            host.stop()
        chain.stop()
        workdir.cleanup()
