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

"""B9, B10 and B11: detection over a real network, and what fools it.

Every scenario runs a :class:`~doctor_plugin.testing.site.Site`: three
compute hosts, three heartbeat monitors and the inspector, each in a
network namespace of its own, on a management and a tenant plane, with
k = 2 of n = 3 and the heartbeat defaults, while every CPU is kept busy
(as in B2). What the inspector decided is read off the real RabbitMQ.

- **B11**, corroborated detection: a host's links go down in its
  namespace (T00); the latency is until the inspector's
  ``compute.host.down`` for it arrives on the bus. Then, for
  ``--duration`` seconds, nothing fails: every host declared down is a
  false positive.
- **B10**, degraded: as B11's latency part, with one of the three
  monitors killed first.
- **B9**, partitions: for ``--duration`` seconds each, one monitor's
  namespace cut off; one host's management link down (its tenant link
  up); 30 % packet loss on every host's management plane. In none may a
  host be declared down, Nova fixed up, or a tenant alarmed.

These need root (CAP_NET_ADMIN) for the namespaces.
"""

from __future__ import annotations

import contextlib
import random
import time
import typing

from doctor_plugin.bench import detection
from doctor_plugin.bench import harness
from doctor_plugin import exceptions
from doctor_plugin.testing import netns
from doctor_plugin.testing import site as site_mod

#: The detection target of B10 and B11, in milliseconds.
TARGET_P99_MS = 150.0
#: How long a trial waits for the inspector's decision, in seconds.
DECISION_TIMEOUT = 5.0
#: Seconds between a host's recovery and the next trial's fault, so that
#: every monitor hears it again on every plane.
SETTLE = 0.5
#: Seconds allowed, after a B9 fault ends, for what it caused to show.
AFTERMATH = 3.0

#: The inspector of a trial run: a host failed and recovered every second
#: is not a flapping host here, it is the benchmark.
_TRIAL_OPTIONS = {'inspector': {'flap_window': 0}}


def _require_namespaces(scenario: str) -> None:
    problem = netns.capability_problem()
    if problem:
        raise exceptions.DoctorPluginError(f'{scenario}: {problem}')


@contextlib.contextmanager
def _loaded(seconds: float) -> typing.Iterator[None]:
    """Every CPU busy for (at most) ``seconds``, as in B2."""
    hogs = detection.cpu_hogs(seconds)
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def detection_trials(site: site_mod.Site, trials: int,
                     log: typing.Callable[[str], None],
                     name: str) -> tuple[list[float], int]:
    """Fail and recover hosts in turn; link down → down at the inspector.

    :returns: the latencies in milliseconds, and how many trials saw no
        decision within :data:`DECISION_TIMEOUT`
    """
    assert site.bus is not None
    latencies: list[float] = []
    missed = 0
    for i in range(trials):
        host = site.host_names[i % len(site.host_names)]
        # A random phase between two heartbeats.
        time.sleep(random.uniform(0, 0.05))
        fault = site.fail_host(host)
        down = site.bus.wait('compute.host.down', host, since=fault,
                             timeout=DECISION_TIMEOUT)
        site.recover_host(host)
        if down is None:
            missed += 1
            log(f'{name} trial {i}: {host} not declared down within '
                f'{DECISION_TIMEOUT:g} s')
        else:
            # Down at the inspector: when it confirmed the failure, not
            # when the bus brought its decision here.
            decided = down.confirmed_at or down.at
            latencies.append((decided - fault) * 1000.0)
        if site.bus.wait('compute.host.up', host, since=fault,
                         timeout=DECISION_TIMEOUT) is None:
            log(f'{name} trial {i}: {host} not up again within '
                f'{DECISION_TIMEOUT:g} s')
        time.sleep(SETTLE)
    return latencies, missed


def _detection_result(scenario: str, trials: int, latencies: list[float],
                      missed: int, extra: dict[str, typing.Any],
                      target: str, met: bool,
                      transport_url: str) -> harness.ScenarioResult:
    return harness.ScenarioResult(
        scenario=scenario, transport='rabbit', trials=trials,
        latency_ms=harness.latency_summary(latencies), sent=trials,
        received=len(latencies), lost=missed, duplicates=0, target=target,
        met=met, env=harness.environment(transport_url), extra=extra)


def _p99_met(latencies: list[float], missed: int) -> bool:
    p99 = harness.latency_summary(latencies)['p99']
    return missed == 0 and p99 is not None and p99 <= TARGET_P99_MS


def run_b11(options: typing.Any,
            log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B11: k = 2 of 3 monitors; detection latency, then a soak."""
    _require_namespaces('B11')
    trials = options.trials or 200
    soak = options.duration if options.duration is not None else 600.0
    with site_mod.Site(inspector_options=_TRIAL_OPTIONS,
                       transport_url=options.transport_url) as site, \
            _loaded(trials * 2 + soak + 60):
        log(f'B11: {trials} host failures, k = 2 of 3 monitors, every CPU '
            f'busy ...')
        latencies, missed = detection_trials(site, trials, log, 'B11')
        log(f'B11: soak of {soak:g} s without faults ...')
        start = time.time()
        time.sleep(soak)
        false_downs = site.false_downs(since=start)
        assert site.bus is not None
        suspects = len(site.bus.select('compute.host.suspect', since=start))
    false_positives = len(false_downs)
    return _detection_result(
        'B11', trials, latencies, missed,
        {'false_positives': false_positives, 'soak_s': soak,
         'suspects_in_soak': suspects, 'required_reports': 2,
         'monitors_per_host': 3, 'hosts': len(site.host_names),
         'planes': list(site.planes)},
        'p99 <= 150 ms from link down to down at the inspector; 0 false '
        'positives',
        _p99_met(latencies, missed) and false_positives == 0,
        options.transport_url)


def run_b10(options: typing.Any,
            log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B10: one of the three monitors dead, then real host failures."""
    _require_namespaces('B10')
    trials = options.trials or 200
    with site_mod.Site(inspector_options=_TRIAL_OPTIONS,
                       transport_url=options.transport_url) as site, \
            _loaded(trials * 2 + 60):
        dead = site.monitor_names[-1]
        site.kill(dead)
        # The survivors find it unresponsive before the first fault.
        time.sleep(3.0)
        log(f'B10: {dead} killed; {trials} host failures, k = 2 of the '
            f'2 monitors left, every CPU busy ...')
        latencies, missed = detection_trials(site, trials, log, 'B10')
    return _detection_result(
        'B10', trials, latencies, missed,
        {'dead_monitor': dead, 'required_reports': 2,
         'monitors_per_host': 3},
        'p99 <= 150 ms from link down to down at the inspector, one '
        'monitor of three dead',
        _p99_met(latencies, missed), options.transport_url)


class _Case(typing.NamedTuple):
    name: str
    start: typing.Callable[[site_mod.Site], object]
    end: typing.Callable[[site_mod.Site], object]
    #: The event that shows the fault was seen, or None
    evidence: str | None


def _all_hosts(action: typing.Callable[[netns.Node], object]
               ) -> typing.Callable[[site_mod.Site], None]:
    def apply(site: site_mod.Site) -> None:
        for host in site.host_names:
            action(site.nodes[host])
    return apply


#: B9's cases: how each partition starts and ends.
CASES = (
    _Case('monitor_cut_off',
          lambda site: site.nodes[site.monitor_names[0]].cut_off(),
          lambda site: site.nodes[site.monitor_names[0]].restore(),
          None),
    _Case('management_link_down',
          lambda site: site.nodes[site.host_names[0]].link_down(
              site_mod.MANAGEMENT),
          lambda site: site.nodes[site.host_names[0]].link_up(
              site_mod.MANAGEMENT),
          'compute.host.degraded'),
    _Case('management_loss_30',
          _all_hosts(lambda node: node.netem(site_mod.MANAGEMENT,
                                             loss_percent=30)),
          _all_hosts(lambda node: node.clear_netem(site_mod.MANAGEMENT)),
          None),
)


def partition_case(site: site_mod.Site, case: _Case,
                   seconds: float) -> dict[str, typing.Any]:
    """Hold one partition for ``seconds``: what the inspector did."""
    assert site.bus is not None
    fixups = site.force_downs()
    alarms = site.tenant_alarms()
    start = time.time()
    case.start(site)
    try:
        time.sleep(seconds)
    finally:
        case.end(site)
    time.sleep(AFTERMATH)
    bus = site.bus
    figures = {
        'duration_s': seconds,
        'false_downs': len(site.false_downs(since=start)),
        'fixups': site.force_downs() - fixups,
        'tenant_alarms': site.tenant_alarms() - alarms,
        'suspects': len(bus.select('compute.host.suspect', since=start)),
        'degraded': len(bus.select('compute.host.degraded', since=start)),
        'isolated': len(bus.select('doctor.monitor.isolated',
                                   since=start)),
    }
    if case.evidence:
        figures['fault_seen'] = bool(bus.select(case.evidence, since=start))
    return figures


def run_b9(options: typing.Any,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B9: three partitions, none of which may look like a dead host."""
    _require_namespaces('B9')
    seconds = options.duration if options.duration is not None else 600.0
    cases: dict[str, dict[str, typing.Any]] = {}
    total = len(CASES) * (seconds + AFTERMATH) + 60
    with site_mod.Site(transport_url=options.transport_url) as site, \
            _loaded(total):
        for case in CASES:
            log(f'B9: {case.name} for {seconds:g} s, every CPU busy ...')
            cases[case.name] = partition_case(site, case, seconds)
            log(f'B9: {case.name}: {cases[case.name]}')
    sums = {key: sum(c[key] for c in cases.values())
            for key in ('false_downs', 'fixups', 'tenant_alarms')}
    seen = all(c.get('fault_seen', True) for c in cases.values())
    return harness.ScenarioResult(
        scenario='B9', transport='rabbit', trials=len(CASES),
        latency_ms=harness.latency_summary(()), sent=0, received=0,
        lost=0, duplicates=0,
        target='0 hosts declared down, 0 Nova fix-ups, 0 tenant alarms '
               'in each case',
        met=seen and not any(sums.values()),
        env=harness.environment(options.transport_url),
        extra={**sums, 'cases': cases, 'required_reports': 2,
               'monitors_per_host': 3})
