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

"""Local servers run in a Python process of their own.

The benchmark runs the parts that stand for other machines (a tenant's
consumer, Nova) in their own interpreters, so that their work does not
compete with the chain under test for the GIL. Each such server is a
``python -m <module>`` that prints one JSON line (its address) when it is
ready and stops on SIGTERM, run through :mod:`doctor_plugin.cmd.child`
so that it chooses the threading backend as our commands do:
:class:`ChildServer` starts one, waits for that line and stops it.
``NovaStandInProcess``, ``ConsumerProcess`` and the chain's alarm
listener process are built on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
import typing

import requests
import yaml

from doctor_plugin import exceptions


#: Runs a module the way our commands run: with oslo.service's threading
#: backend chosen before the module (and its package) is imported.
RUNNER = 'doctor_plugin.cmd.child'


def command(module: str, *args: str) -> list[str]:
    """``python -m module args...``, run as our commands run.

    That is through :mod:`doctor_plugin.cmd.child`.
    """
    return [sys.executable, '-m', RUNNER, module, *args]


def console(name: str, *args: str) -> list[str]:
    """The console script ``doctor-plugin-<name>`` with ``args``, as run.

    :param name: its module in :mod:`doctor_plugin.cmd` (``inspector``,
        ``monitor``, ``heartbeat``, ...)
    """
    return [sys.executable, '-c', f'import sys; from doctor_plugin.cmd '
            f'import {name}; sys.exit({name}.main())', *args]


class ChildServer:
    """A ``python -m module`` server that announces itself on stdout.

    :param module: the module to run
    :param args: its command-line arguments
    :param what: how error messages name it ("the consumer process")
    :param idle: run it in Linux's SCHED_IDLE class (chrt(1)), on the CPU
        nothing else wants: the benchmark runs what stands for another
        machine this way, so that its CPU is not taken from the chain
        under test
    :param stdin: give it a pipe as stdin (:attr:`proc`'s ``stdin``), to
        send it commands; otherwise its stdin is empty
    :param prefix: a command that runs it, e.g. ``['ip', 'netns', 'exec',
        NAME]`` to run it in a network namespace
    """

    def __init__(self, module: str, args: typing.Sequence[str] = (),
                 what: str = 'the child process', idle: bool = False,
                 stdin: bool = False, prefix: typing.Sequence[str] = ()
                 ) -> None:
        self.command = command(module, *args)
        if idle and shutil.which('chrt'):
            self.command = ['chrt', '--idle', '0', *self.command]
        self.command = [*prefix, *self.command]
        self.stdin = stdin
        self.what = what
        self.proc: subprocess.Popen[str] | None = None
        #: The JSON object of the process's first line.
        self.ready: dict[str, typing.Any] = {}

    def start(self, timeout: float = 60.0) -> dict[str, typing.Any]:
        """Start it and return its first JSON line, once it is ready.

        :raises RuntimeError: if it exits, prints something else first or
            says nothing within ``timeout`` seconds
        """
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, text=True,
            stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL)
        assert self.proc.stdout is not None  # stdout=PIPE
        first = ''
        ready_to_read = bool(select.select([self.proc.stdout], [], [],
                                           timeout)[0])
        if ready_to_read:
            first = self.proc.stdout.readline()
        try:
            ready = json.loads(first)
            if not isinstance(ready, dict):
                raise ValueError(first)
        except ValueError:
            if ready_to_read and not first:
                # The end of its output: it is exiting.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
            if first:
                said = f'printed {first!r}'
            elif self.proc.poll() is not None:
                said = f'exited with status {self.proc.returncode}'
            else:
                said = f'said nothing within {timeout:g} s'
            self.stop()
            command = ' '.join(self.command)
            raise RuntimeError(f'{self.what} did not start ({command} '
                               f'{said}); see its error output above'
                               ) from None
        self.ready = ready
        return ready

    def lines(self) -> typing.Iterator[dict[str, typing.Any]]:
        """The JSON lines it prints after the first, until it exits."""
        assert self.proc is not None and self.proc.stdout is not None, \
            'start() it first'
        for line in self.proc.stdout:
            yield json.loads(line)

    def terminate(self, timeout: float = 5.0) -> None:
        """SIGTERM it, SIGKILL it if it does not exit within ``timeout``.

        Its output stays readable: what it printed before exiting can
        still be taken from :meth:`lines`.
        """
        if self.proc is not None:
            stop_process(self.proc, timeout, kill_wait=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate it and release its output pipe."""
        if self.proc is None:
            return
        self.terminate(timeout)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self.proc = None


def stop_process(proc: subprocess.Popen, timeout: float,
                 kill_wait: float = 5.0) -> None:
    """SIGTERM ``proc`` if it runs; SIGKILL it after ``timeout`` seconds.

    :param kill_wait: how long to wait for it to die once killed
    """
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(kill_wait)


def start_inspector(conf_file: str, url: str, log: typing.IO
                    ) -> subprocess.Popen:
    """Run ``doctor-plugin-inspector`` on ``conf_file``, as deployed.

    Its output goes to ``log``; returns once ``GET url/healthz`` answers.

    :raises DoctorPluginError: if it exits or does not answer in 60 s,
        with the end of its log
    """
    proc = subprocess.Popen(
        console('inspector', '--config-file', conf_file), stdout=log,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise exceptions.DoctorPluginError(
                f'the inspector exited with {proc.returncode} at start: '
                f'{log_tail(log.name)}')
        try:
            if requests.get(f'{url}/healthz', timeout=1).ok:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait(5)
    raise exceptions.DoctorPluginError(
        f'the inspector did not answer within 60 s: {log_tail(log.name)}')


def write_tenant_files(directory: str, alarm_urls: typing.Sequence[str],
                       hosts: typing.Mapping[str, typing.Sequence[
                           tuple[str, str]]]) -> None:
    """The files of an inspector whose tenants each have a host alarm.

    ``pipeline.yaml`` sends ``compute.host.*`` to ``alarms://``;
    ``alarms.yaml`` gives tenant ``tenant-<t>`` an alarm on
    ``compute.host.down`` (repeated) whose action is ``alarm_urls[t]``;
    ``topology.yaml`` puts the (vm id, tenant) pairs of ``hosts`` on
    their host.
    """
    def dump(name: str, data: typing.Any) -> None:
        with open(os.path.join(directory, name), 'w') as f:
            yaml.safe_dump(data, f)

    dump('pipeline.yaml', {
        'sources': [{'name': 'faults', 'events': ['compute.host.*'],
                     'sinks': ['tenants']}],
        'sinks': [{'name': 'tenants', 'notifiers': ['alarms://']}]})
    dump('alarms.yaml', {'alarms': [
        {'name': f'tenant-{t}', 'project_id': f'tenant-{t}',
         'repeat_actions': True,
         'event_rule': {'event_type': 'compute.host.down'},
         'alarm_actions': [url]}
        for t, url in enumerate(alarm_urls)]})
    dump('topology.yaml', {'hosts': {
        host: [{'id': vm, 'project_id': tenant} for vm, tenant in vms]
        for host, vms in hosts.items()}})


def log_tail(path: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a service's log."""
    with open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:]) or '(empty log)'
