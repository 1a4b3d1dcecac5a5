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

"""B1-cluster, R5 and R6: inspectors as three controllers run them.

Real ``doctor-plugin-inspector`` processes in one tooz group on the real
Redis, with RabbitMQ and a fresh PostgreSQL database
(:class:`doctor_plugin.testing.cluster.InspectorCluster`). Faults are
reported as monitors report them: by :class:`~doctor_plugin.monitors.
reporter.InspectorReporter` with the list of every member's URL, failing
over from one to the next.

- **B1-cluster**: B1's latency (report sent → every affected tenant's
  webhook) with 1 process alone, then 2 and 3 members with every report
  sent to a member that does not own the host, in the same run.
- **R5**: faults flow to three members; the owner of the next failing
  hosts, with deliveries pending (the tenants' webhooks were down), is
  SIGKILLed. Counted: faults lost, hosts forced down twice, tenants
  alarmed twice under different event ids; timed: kill → the survivors
  handle its hosts (``takeover_ms``) and kill → its pending deliveries
  arrive (``resume_ms``).
- **R6**: the same with the member cut off from Redis (its connection
  blackholed by a TCP relay, the process alive) instead of killed. Its
  next hosts are reported once its lease has run out (before that it
  still acts on them, rightly), so ``takeover_ms`` is the cut → the
  survivors handling them. Its pending deliveries it sends itself: the
  process lives and reaches the tenants.
"""

from __future__ import annotations

import concurrent.futures
import random
import threading
import time
import typing

from doctor_plugin.bench import harness
from doctor_plugin import exceptions
from doctor_plugin.testing import poll

B1_TRIALS = 100
B1_VMS = 10
B1_TENANTS = 10
#: How far above the one-process p99 the members' p99 may be.
B1_MARGIN_MS = 2.0
R_TRIALS = 3
#: Victim's hosts reported per trial after the kill, and pending before.
R_AFTER = 8
R_BEFORE = 2
#: Background faults a second, to every member, all the while.
R_FLOW_PER_S = 10
R_SETTLE_S = 30.0
TAKEOVER_TARGET_MS = 3000.0
#: How long a member cut off from Redis may still act, with the harness's
#: [coordination] defaults (member_timeout 2 s - lease_margin 0.5 s).
LEASE_S = 1.5
#: The background flow lasts at least this (``--duration``).
R_FLOW_S = 20.0


def _require_services() -> None:
    from doctor_plugin.testing import services

    problem = services.problems()
    if problem:
        raise exceptions.DoctorPluginError(
            f'the cluster scenarios need Redis, PostgreSQL and RabbitMQ: '
            f'{problem}')


def _reporter(cluster: typing.Any, first: int = 0,
              timeout: float = 10.0) -> typing.Any:
    """A monitor's reporter, with every member's URL from ``first`` on."""
    from doctor_plugin.monitors import reporter

    urls = [f'{m.url}/events' for m in cluster.members]
    urls = urls[first:] + urls[:first]
    return reporter.InspectorReporter(settings=reporter.ReporterSettings(
        urls=tuple(urls), timeout=timeout, retries=8,
        secret=cluster.secret))


def _report(reporter: typing.Any, host: str) -> float:
    """Report ``host`` down; when it was sent (time.time())."""
    from doctor_plugin.monitors import base

    sent = time.time()
    reporter(base.FaultReport(host, 'down', 'bench', sent))
    return sent


# B1 with members.

def run_b1_cluster(options: harness.BenchOptions,
                   log: typing.Callable[[str], None]
                   ) -> harness.ScenarioResult:
    """B1's latency alone, then with 2 and 3 members (to a non-owner)."""
    from doctor_plugin.testing import cluster as cluster_mod

    _require_services()
    trials = options.trials or B1_TRIALS
    figures: dict[str, dict[str, float | None]] = {}
    sent = received = 0
    for members in (1, 2, 3):
        coordination = {'backend_url': ''} if members == 1 else None
        cluster = cluster_mod.InspectorCluster(
            members=members, hosts=trials + options.warmup,
            tenants=B1_TENANTS, vms_per_host=B1_VMS,
            coordination=coordination,
            transport_url=options.transport_url).start()
        try:
            samples = _b1_trials(cluster, trials, options.warmup,
                                 non_owner=members > 1)
        finally:
            cluster.stop()
        sent += trials
        received += len(samples)
        figures[str(members)] = harness.latency_summary(samples)
        log(f'B1-cluster: {members} member(s): p50 '
            f'{figures[str(members)]["p50"]} ms, p99 '
            f'{figures[str(members)]["p99"]} ms')
    alone = figures['1']['p99']
    worst = max((figures[k]['p99'] or float('inf')) for k in ('2', '3'))
    met = alone is not None and worst <= alone + B1_MARGIN_MS
    return harness.ScenarioResult(
        scenario='B1-cluster',
        transport=options.transport_url.split(':', 1)[0], trials=trials,
        latency_ms=figures['3'], sent=sent, received=received,
        lost=sent - received, duplicates=0,
        target=f'p99 with 2 and 3 members <= p99 alone + '
               f'{B1_MARGIN_MS:g} ms',
        met=met, env=harness.environment(options.transport_url),
        extra={'latency_ms_by_members': figures,
               'p99_over_alone_ms': (None if alone is None
                                     else round(worst - alone, 3)),
               'vms': B1_VMS, 'tenants': B1_TENANTS,
               'reported_to': 'a member that does not own the host'})


def _b1_trials(cluster: typing.Any, trials: int, warmup: int,
               non_owner: bool) -> list[float]:
    """Latencies (ms) of ``trials`` faults, each on a host of its own."""
    members = cluster.wait_group(cluster.size) if cluster.coordinated \
        else None
    samples: list[float] = []
    wanted = min(B1_VMS, B1_TENANTS)
    for i, host in enumerate(cluster.hosts[:trials + warmup]):
        target = cluster.members[0]
        if non_owner:
            owner = cluster.owner_of(host, members)
            target = next(m for m in cluster.members if m is not owner)
        started = time.time()
        reply = cluster.report(host, target)
        if reply.status_code != 200:
            continue
        if not cluster.alarms.wait(
                lambda: cluster.alarms.count_of_host[host] >= wanted, 10.0):
            continue
        if i >= warmup:
            samples.append((cluster.alarms.last_at[host] - started) * 1000)
    return samples


# R5 and R6.

class _Flow:
    """Background faults, one host each, through monitors' reporters."""

    def __init__(self, cluster: typing.Any, hosts: list[str],
                 per_s: float) -> None:
        self.cluster = cluster
        self.hosts = list(hosts)
        self.interval = 1.0 / per_s
        self.sent: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='bench-flow')

    def start(self) -> _Flow:
        self._thread.start()
        return self

    def _run(self) -> None:
        reporters = [_reporter(self.cluster, i)
                     for i in range(len(self.cluster.members))]
        with concurrent.futures.ThreadPoolExecutor(len(reporters)) as pool:
            futures = []
            for i, host in enumerate(self.hosts):
                time.sleep(self.interval)
                futures.append(pool.submit(
                    self._send, reporters[i % len(reporters)], host))
            concurrent.futures.wait(futures, 60)
        for r in reporters:
            r.close()

    def _send(self, reporter: typing.Any, host: str) -> None:
        try:
            self.sent[host] = _report(reporter, host)
        except exceptions.DoctorPluginError as exc:
            self.failed[host] = str(exc)

    def wait(self) -> None:
        """Wait until every fault of the flow was reported."""
        self._thread.join(len(self.hosts) * self.interval + 90)


def run_r5(options: harness.BenchOptions, log: typing.Callable[[str], None]
           ) -> harness.ScenarioResult:
    """Three inspectors; the owner of the failing hosts is SIGKILLed."""
    return _run_loss('R5', 'kill', options, log)


def run_r6(options: harness.BenchOptions, log: typing.Callable[[str], None]
           ) -> harness.ScenarioResult:
    """As R5, the member cut off from Redis instead (process alive)."""
    return _run_loss('R6', 'partition', options, log)


def _run_loss(scenario: str, fault: str, options: harness.BenchOptions,
              log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    from doctor_plugin.testing import cluster as cluster_mod

    _require_services()
    trials = options.trials or R_TRIALS
    flow_s = options.duration or R_FLOW_S
    per_trial = R_AFTER + R_BEFORE
    # Enough hosts that the ring gives each member per_trial of them in
    # every trial, and the background flow its own.
    hosts = 3 * per_trial * trials * 3 + int(flow_s * R_FLOW_PER_S)
    cluster = cluster_mod.InspectorCluster(
        members=3, hosts=hosts, tenants=4,
        transport_url=options.transport_url).start()
    rng = random.Random(5)
    takeover: list[float] = []
    resume: list[float] = []
    reported: set[str] = set()
    try:
        ids = cluster.wait_group(3)
        free = list(cluster.hosts)
        rng.shuffle(free)
        flow_hosts = free[:int(flow_s * R_FLOW_PER_S)]
        free = free[len(flow_hosts):]
        flow = _Flow(cluster, flow_hosts, R_FLOW_PER_S).start()
        for trial in range(trials):
            victim = cluster.members[trial % 3]
            mine = [h for h in free if cluster.owner_of(h, ids) is victim]
            before, after = mine[:R_BEFORE], mine[R_BEFORE:per_trial]
            free = [h for h in free if h not in before + after]
            t_kill, fixed_before = _trial(cluster, victim, fault, before,
                                          after, reported)
            for host in after:
                if host in cluster.alarms.first_at:
                    takeover.append(
                        (cluster.alarms.first_at[host] - t_kill) * 1000)
            for host in before:
                if host in cluster.alarms.first_at:
                    resume.append(
                        (cluster.alarms.first_at[host] - t_kill) * 1000)
            log(f'{scenario} trial {trial + 1}/{trials}: {fault} of '
                f'{victim.id}; its {len(after)} hosts handled after '
                f'{_fmt(takeover[-len(after):])} ms, its pending '
                f'deliveries after {_fmt(resume[-len(before):])} ms')
            _recover(cluster, victim, fault)
            ids = cluster.wait_group(3, 30)
        flow.wait()
        reported |= set(flow.sent)
        cluster.alarms.wait_hosts(reported, R_SETTLE_S)
        # The fix-up follows the tenants' alarms by a few milliseconds.
        poll.wait_until(
            lambda: all(cluster.force_downs()[h] for h in reported), 10,
            0.05)
        lost = sorted((reported - set(cluster.alarms.first_at))
                      | set(flow.failed))
        double_fixups = cluster.fixed_up_twice()
        double_alarms = cluster.alarms.alarmed_twice()
        duplicates = cluster.alarms.duplicates
        forced = cluster.force_downs()
        unfixed = sorted(h for h in reported if forced[h] == 0)
    finally:
        cluster.stop()
    takeover_summary = harness.latency_summary(takeover)
    met = (not lost and not double_fixups and not double_alarms
           and (takeover_summary['p99'] or float('inf'))
           <= TAKEOVER_TARGET_MS)
    extra: dict[str, typing.Any] = {
        'members': 3, 'fault': fault,
        'double_fixups': len(double_fixups),
        'double_alarms': len(double_alarms),
        'takeover_ms': {k: takeover_summary[k] for k in ('p50', 'p99')},
        'resume_ms': harness.latency_summary(resume),
        'not_fixed_up': len(unfixed),
        'flow_faults': len(flow.sent),
        'duplicate_deliveries_same_id': duplicates,
    }
    if unfixed:
        extra['not_fixed_up_hosts'] = unfixed[:20]
    if lost:
        extra['lost_hosts'] = lost[:20]
        extra['failed_reports'] = dict(list(flow.failed.items())[:5])
    if double_fixups or double_alarms:
        extra['hosts_twice'] = sorted(set(double_fixups)
                                      | set(double_alarms))[:20]
    return harness.ScenarioResult(
        scenario=scenario,
        transport=options.transport_url.split(':', 1)[0], trials=trials,
        latency_ms=takeover_summary, sent=len(reported),
        received=len(reported) - len(lost), lost=len(lost),
        duplicates=duplicates,
        target=('lost == 0, double_fixups == 0, double_alarms == 0, '
                f'takeover p99 <= {TAKEOVER_TARGET_MS:g} ms'),
        met=met, env=harness.environment(options.transport_url),
        extra=extra)


def _trial(cluster: typing.Any, victim: typing.Any, fault: str,
           before: list[str], after: list[str],
           reported: set[str]) -> tuple[float, int]:
    """One loss of ``victim``; when it happened (time.time())."""
    # The tenants' webhooks are down: the victim's alarms wait in its
    # outbox, in the shared database.
    cluster.stop_consumer()
    direct = _reporter(cluster, cluster.members.index(victim))
    try:
        for host in before:
            _report(direct, host)
            reported.add(host)
    finally:
        direct.close()
    poll.wait_until(
        lambda: all(cluster.force_downs()[h] for h in before), 10, 0.05)
    if fault == 'kill':
        t_loss = victim.kill()
    else:
        victim.proxy.cut('blackhole')
        t_loss = time.time()
    cluster.start_consumer()
    if fault == 'partition':
        # Until its lease runs out the victim still acts on its hosts, as
        # it should; what is measured is the survivors taking them after.
        time.sleep(LEASE_S + 0.25)
    # The monitors of the victim's next failing hosts report at once, to
    # whichever member their list starts with.
    reporters = [_reporter(cluster, i) for i in range(len(after))]
    with concurrent.futures.ThreadPoolExecutor(len(after) or 1) as pool:
        for host, _ in zip(after, pool.map(_report, reporters, after)):
            reported.add(host)
    for r in reporters:
        r.close()
    cluster.alarms.wait_hosts(before + after, R_SETTLE_S)
    return t_loss, len(before)


def _recover(cluster: typing.Any, victim: typing.Any, fault: str) -> None:
    if fault == 'kill':
        victim.start()
    else:
        victim.proxy.restore()


def _fmt(values: list[float]) -> str:
    if not values:
        return '-'
    return f'{min(values):.0f}-{max(values):.0f}'
