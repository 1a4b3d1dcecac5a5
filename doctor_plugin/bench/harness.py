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

"""Options, statistics and reporting shared by every benchmark scenario.

The JSON shape is a contract (shared/BENCHMARKS.md): scripts and dashboards
read it, so keep the keys stable. It is strict JSON (RFC 8259): a figure
that could not be measured (no samples) is ``null``, never ``NaN``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import json
import math
import os
import platform
import typing

from doctor_plugin import exceptions

#: The broker the scenarios use unless ``--transport-url`` says otherwise.
DEFAULT_TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'

#: What to install for the scenarios' own requirements.
EXTRA_HINT = 'pip install "doctor-plugin[bench]"'


@dataclasses.dataclass
class BenchOptions:
    """What ``doctor-plugin bench`` passes to every scenario."""

    transport_url: str = DEFAULT_TRANSPORT_URL
    trials: int | None = None
    duration: float | None = None
    warmup: int = 10
    timeout: float = 5.0


def require(scenario: str, *modules: str) -> None:
    """Import ``modules`` for ``scenario``, or say which extra installs them.

    The scenarios' own requirements (hypothesis, schemathesis, aodh) are in
    the ``bench`` extra, not in the runtime's requirements: a scenario calls
    this when it runs, never at import.

    :raises DoctorPluginError: naming the missing module and the extra
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise exceptions.DoctorPluginError(
                f'{scenario} needs {" and ".join(modules)} ({exc}); '
                f'install them with {EXTRA_HINT}') from None


def percentile(sorted_values: typing.Sequence[float],
               pct: float) -> float | None:
    """The ``pct`` percentile of sorted values, nearest-rank method.

    None without values: there is no such figure (and JSON has no NaN).
    """
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(samples_ms: typing.Iterable[float]
                    ) -> dict[str, float | None]:
    """p50/p90/p99/max of latencies in milliseconds, rounded to µs.

    Every figure is None without samples.
    """
    values = sorted(samples_ms)
    summary = {f'p{p}': percentile(values, p) for p in (50, 90, 99)}
    summary['max'] = values[-1] if values else None
    return {k: None if v is None else round(v, 3)
            for k, v in summary.items()}


def finite(value: typing.Any) -> typing.Any:
    """``value`` with every NaN or infinite float in it replaced by None.

    For figures bound for JSON, which has no NaN nor infinity
    (RFC 8259); containers are copied, other values returned as they are.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(results: typing.Sequence[ScenarioResult],
               out: typing.TextIO) -> None:
    """Write ``results`` as strict JSON: one object, or a list of them.

    :raises ValueError: if a figure is not finite (a scenario's bug that
        :func:`finite` in :meth:`ScenarioResult.as_json` did not catch)
    """
    data = [r.as_json() for r in results]
    json.dump(data[0] if len(data) == 1 else data, out, indent=2,
              allow_nan=False)


def _ms(value: float | None) -> str:
    return 'n/a' if value is None else f'{value:.2f}'


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
    latency_ms: dict[str, float | None]
    sent: int
    received: int
    lost: int
    duplicates: int
    target: str
    met: bool
    env: dict[str, typing.Any]
    extra: dict[str, typing.Any] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict[str, typing.Any]:
        """The JSON contract's object; non-finite figures become None."""
        data = dataclasses.asdict(self)
        data.update(data.pop('extra'))
        return finite(data)

    def as_table(self) -> str:
        lat = self.latency_ms
        lines = [
            f'{self.scenario}  transport={self.transport}  '
            f'trials={self.trials}',
            f'  latency ms: p50 {_ms(lat["p50"])}  p90 {_ms(lat["p90"])}  '
            f'p99 {_ms(lat["p99"])}  max {_ms(lat["max"])}',
            f'  sent {self.sent}  received {self.received}  '
            f'lost {self.lost}  duplicates {self.duplicates}',
        ]
        for key, value in self.extra.items():
            lines.append(f'  {key}: {value}')
        lines.append(f'  target: {self.target}  -> '
                     f'{"MET" if self.met else "NOT MET"}')
        return '\n'.join(lines)
