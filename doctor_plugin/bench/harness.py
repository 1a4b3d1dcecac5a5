"""Statistics and reporting shared by every benchmark scenario.

The JSON shape is a contract (shared/BENCHMARKS.md): scripts and dashboards
read it, so keep the keys stable.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import os
import platform
import subprocess
import sys
import time
import typing

import requests

from doctor_plugin import exceptions


def percentile(sorted_values: typing.Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of sorted values, nearest-rank method."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(samples_ms: typing.Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/max of latencies in milliseconds, rounded to µs."""
    values = sorted(samples_ms)
    summary = {f'p{p}': percentile(values, p) for p in (50, 90, 99)}
    summary['max'] = values[-1] if values else math.nan
    return {k: round(v, 3) for k, v in summary.items()}


def environment(transport_url: str) -> dict[str, typing.Any]:
    """Where the figures were measured."""
    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {'python': platform.python_version(),
            'cpus': os.cpu_count(),
            'oslo.messaging': version('oslo.messaging'),
            'doctor-plugin': version('doctor-plugin'),
            'transport': transport_url.split(':', 1)[0]}


@dataclasses.dataclass
class ScenarioResult:
    """One scenario's figures, in the shape of the JSON contract."""

    scenario: str
    transport: str
    trials: int
    latency_ms: dict[str, float]
    sent: int
    received: int
    lost: int
    duplicates: int
    target: str
    met: bool
    env: dict[str, typing.Any]
    extra: dict[str, typing.Any] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict[str, typing.Any]:
        data = dataclasses.asdict(self)
        data.update(data.pop('extra'))
        return data

    def as_table(self) -> str:
        lat = self.latency_ms
        lines = [
            f'{self.scenario}  transport={self.transport}  '
            f'trials={self.trials}',
            f'  latency ms: p50 {lat["p50"]:.2f}  p90 {lat["p90"]:.2f}  '
            f'p99 {lat["p99"]:.2f}  max {lat["max"]:.2f}',
            f'  sent {self.sent}  received {self.received}  '
            f'lost {self.lost}  duplicates {self.duplicates}',
        ]
        for key, value in self.extra.items():
            lines.append(f'  {key}: {value}')
        lines.append(f'  target: {self.target}  -> '
                     f'{"MET" if self.met else "NOT MET"}')
        return '\n'.join(lines)


def start_inspector(conf_file: str, url: str, log: typing.IO
                    ) -> subprocess.Popen:
    """Run ``doctor-plugin-inspector`` on ``conf_file``, as deployed.

    Its output goes to ``log``; returns once ``GET url/healthz`` answers.

    :raises DoctorPluginError: if it exits or does not answer in 60 s,
        with the end of its log
    """
    proc = subprocess.Popen(
        [sys.executable, '-c', 'import sys; from doctor_plugin.cmd import '
         'inspector; sys.exit(inspector.main())', '--config-file',
         conf_file], stdout=log, stderr=subprocess.STDOUT)
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


def log_tail(path: str, lines: int = 20) -> str:
    """The last ``lines`` lines of a service's log."""
    with open(path, errors='replace') as f:
        return ''.join(f.readlines()[-lines:]) or '(empty log)'
