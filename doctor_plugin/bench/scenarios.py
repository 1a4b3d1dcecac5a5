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

"""The benchmark scenarios (ids as in shared/BENCHMARKS.md)."""

from __future__ import annotations

import collections
import concurrent.futures
import gc
import threading
import time
import typing
import uuid

import oslo_messaging

from doctor_plugin.bench import cluster
from doctor_plugin.bench import detection
from doctor_plugin.bench import fencing
from doctor_plugin.bench import harness
from doctor_plugin.bench import memory
from doctor_plugin.bench import partitions
from doctor_plugin.bench import poison
from doctor_plugin.bench import reliability
from doctor_plugin.bench import startup
from doctor_plugin.bench import throughput
from doctor_plugin.common import messaging
from doctor_plugin.common import profiler
from doctor_plugin.controller import fixup
from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin.testing import broker
from doctor_plugin.testing import chain as chain_mod


class _HopEndpoint:
    """Records when each baseline notification arrived."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.cond = threading.Condition()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.cond:
            self.arrived[payload['seq']] = time.perf_counter()
            self.cond.notify_all()


def measure_bus_hop(transport_url: str, trials: int,
                    timeout: float = 5.0) -> dict[str, float | None]:
    """The baseline: one bare oslo.messaging notification hop, in ms.

    Measured in the same run as the scenario, on the same broker, so that
    the chain's figures can be read against what the bus alone costs.
    """
    conf = chain_mod.make_conf(
        chain_mod.ChainSettings(transport_url=transport_url))
    topic = f'doctor-bench-hop-{uuid.uuid4().hex[:12]}'
    transport = messaging.get_transport(conf)
    endpoint = _HopEndpoint()
    listener = messaging.get_listener(transport, [topic], [endpoint])
    listener.start()
    notifier = oslo_messaging.Notifier(transport, publisher_id='bench',
                                       driver='messagingv2', topics=[topic])
    samples = []
    try:
        for seq in range(trials + 10):
            sent = time.perf_counter()
            notifier.info({}, 'doctor.bench.hop', {'seq': seq})
            with endpoint.cond:
                endpoint.cond.wait_for(lambda: seq in endpoint.arrived,
                                       timeout)
            if seq >= 10 and seq in endpoint.arrived:
                samples.append((endpoint.arrived[seq] - sent) * 1000.0)
    finally:
        listener.stop()
        listener.wait()
        messaging.cleanup()
        broker.delete_queues(transport_url,
                             broker.listener_queue_names([topic]))
    return harness.latency_summary(samples)


def run_host_failures(scenario: str, settings: chain_mod.ChainSettings,
                      trials: int, target_ms: float,
                      options: harness.BenchOptions,
                      log: typing.Callable[[str], None],
                      baseline: bool = False) -> harness.ScenarioResult:
    """Fail every host of ``settings`` at once, ``trials`` times.

    Each trial: every host's failure is reported to the inspector over
    HTTP at the same moment (T01, one thread per host, as independent
    monitors would); the figure is the time from T01 until the last
    tenant's webhook has its alarm (T09). The consumer runs in its own
    process; the message bus is ``options.transport_url``.

    With ``settings.nova``, a Nova stand-in in its own process holds the
    hosts and instances: the inspector loads its topology from it and its
    controller fixes Nova up while the tenants are told. Each trial then
    also waits for every fix-up and reports its completion time (T01 to
    the last instance set to error and the host forced down) apart.
    """
    timeline = profiler.Timeline()
    chain = chain_mod.Chain(settings, timeline)
    chain.start()
    hosts = chain_mod.host_names(settings)
    per_trial = len(hosts) * min(settings.tenants_per_host
                                 or settings.tenants, settings.tenants)
    received: collections.Counter[tuple[str, str]] = collections.Counter()
    latencies: list[float] = []
    fixups: list[float] = []
    outcomes: collections.Counter[str] = collections.Counter()
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=len(hosts), thread_name_prefix='doctor-bench-monitor')
    try:
        reporters = [reporter_mod.InspectorReporter(chain.conf)
                     for _ in hosts]
        expected = 0
        for i in range(options.warmup + trials):
            detected_at = time.time()
            faults = [monitor_base.FaultReport(host, 'down', 'bench',
                                               detected_at=detected_at)
                      for host in hosts]
            for fault in faults:
                timeline.mark(fault.monitor_event_id, 'T01', detected_at)
            for future in [pool.submit(reporter, fault) for reporter, fault
                           in zip(reporters, faults)]:
                future.result()
            expected += per_trial
            alarms = chain.consumer.wait_for(expected, options.timeout)
            expected = len(alarms)
            # Let the fix-ups end before the next trial reports the same
            # hosts again (which would supersede them).
            results = _fixup_results(chain, faults, options.timeout)
            # What the harness keeps of each trial (thousands of received
            # alarms) is not the inspector's: keep it out of the garbage
            # collector's scans, which pause the inspector sharing this
            # process.
            gc.freeze()
            if i < options.warmup:
                continue
            if results:
                outcomes.update(r.outcome for r in results)
                if all(r.outcome == 'success' for r in results):
                    fixups.append(
                        (max(r.finished for r in results) - detected_at)
                        * 1000.0)
            ids = {f.monitor_event_id for f in faults}
            got = [a for a in alarms if a.trait('monitor_event_id') in ids]
            for alarm in got:
                received[(alarm.trait('monitor_event_id'), alarm.path)] += 1
            if len(got) == per_trial:
                last = max(a.received_at for a in got)
                latencies.append((last - detected_at) * 1000.0)
            else:
                log(f'{scenario} trial {i}: {len(got)} of {per_trial} '
                    f'alarms within {options.timeout} s')
    finally:
        pool.shutdown()
        chain.stop()
    summary = harness.latency_summary(latencies)
    extra: dict[str, typing.Any] = {
        'hosts': len(hosts), 'vms_per_host': settings.vms,
        'tenants': settings.tenants, 'alarms_per_trial': per_trial}
    if settings.nova:
        extra['nova_fixup_ms'] = harness.latency_summary(fixups)
        extra['nova_fixup_outcomes'] = dict(outcomes)
    if baseline:
        log(f'{scenario}: measuring the bare bus hop baseline ...')
        extra['baseline_bus_hop_ms'] = measure_bus_hop(
            options.transport_url, min(trials, 200))
    sent = trials * per_trial
    unique = len(received)
    p99 = summary['p99']  # None without latencies
    return harness.ScenarioResult(
        scenario=scenario, transport=options.transport_url.split(':', 1)[0],
        trials=trials, latency_ms=summary, sent=sent, received=unique,
        lost=sent - unique,
        duplicates=sum(c - 1 for c in received.values()),
        target=f'p99 <= {target_ms:g} ms',
        met=p99 is not None and p99 <= target_ms and unique == sent,
        env=harness.environment(options.transport_url), extra=extra)


def _fixup_results(chain: chain_mod.Chain,
                   faults: typing.Sequence[monitor_base.FaultReport],
                   timeout: float) -> list[fixup.ControllerResult]:
    """The controller's results for ``faults`` (none without Nova)."""
    if chain.controller is None:
        return []
    results = []
    for fault in faults:
        try:
            results.append(chain.controller.wait(fault.monitor_event_id,
                                                 timeout))
        except TimeoutError:
            results.append(fixup.ControllerResult(
                host=fault.hostname, monitor_event_id=fault.monitor_event_id,
                event_id='', action='force_down', outcome='timeout'))
    return results


def _bench_settings(options: harness.BenchOptions, **kwargs: typing.Any
                    ) -> chain_mod.ChainSettings:
    return chain_mod.ChainSettings(
        transport_url=options.transport_url, repeat_actions=True,
        consumer_process=True, report_repeats=True, nova=True,
        nova_process=True, listener_process=True,
        alarms_in=kwargs.pop('alarms_in', 'inspector'),
        event_topic=f'alarm.bench-{uuid.uuid4()}',
        **kwargs)


def run_b1(options: harness.BenchOptions,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B1: Doctor's notification time, T01 → every tenant's webhook (T09).

    One host with 100 VMs of 10 tenants; each trial is a new failure.
    """
    return run_host_failures(
        'B1', _bench_settings(options, vms=100, tenants=10, host='b1'),
        options.trials or 200, 20.0, options, log, baseline=True)


def run_b1_bus(options: harness.BenchOptions,
               log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B1 with the tenants' alarms evaluated across the bus.

    As B1, but the inspector only publishes and an alarm listener in a
    process of its own takes the events off RabbitMQ, evaluates them and
    calls the webhooks, as doctor-plugin-listener (or Aodh) would. The
    difference from B1 is what the bus hop and a second process cost.
    """
    return run_host_failures(
        'B1-bus', _bench_settings(options, vms=100, tenants=10, host='b1',
                                  alarms_in='listener'),
        options.trials or 200, 20.0, options, log)


def run_b3(options: harness.BenchOptions,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B3: fan-out of one host with 1000 VMs of 100 tenants."""
    return run_host_failures(
        'B3', _bench_settings(options, vms=1000, tenants=100, host='b3'),
        options.trials or 50, 200.0, options, log)


def run_b4(options: harness.BenchOptions,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B4: a rack, 40 hosts × 250 VMs, fails at once.

    100 tenants; each host holds VMs of 10 of them, so each tenant has VMs
    on 4 of the hosts and gets one alarm per failed host (400 in all).
    """
    return run_host_failures(
        'B4', _bench_settings(options, hosts=40, vms=250, tenants=100,
                              tenants_per_host=10, host='b4'),
        options.trials or 20, 1000.0, options, log)


def run_b6(options: harness.BenchOptions,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B6: Doctor's per-VM Aodh alarms, real Aodh against ours.

    One event alarm per VM (``compute.instance.update``,
    ``traits.instance_id eq <vm>``, ``traits.state eq error``), 100 VMs
    failing in one burst: the inspector's per-VM events in one bus
    message. Real Aodh (its event evaluator and notifier services, SQLite)
    and our listener each take the same burst on a topic of their own, on
    the same broker, in this process, alternately; the figure is the time
    from the publish to the last of the 100 webhooks. ``repeat_actions`` is
    on for both, so that every trial fires every alarm.
    """
    from doctor_plugin.alarms import definitions
    from doctor_plugin.alarms import evaluator as evaluator_mod
    from doctor_plugin.bench import real_aodh
    from doctor_plugin import event as event_model
    from doctor_plugin.listener import service as alarm_listener
    from doctor_plugin import pipeline as pipeline_mod
    from doctor_plugin.testing import consumer as consumer_mod

    vms, project = 100, 'tenant-b6'
    trials = options.trials or 10
    run = uuid.uuid4().hex[:12]
    ours_topic, aodh_topic = f'alarm.b6-ours-{run}', f'alarm.b6-aodh-{run}'
    # Aodh first: it sets oslo.messaging's transport defaults (its
    # control exchange), which our configuration then registers as they
    # are; the other way round oslo.config sees two different options.
    aodh = real_aodh.AodhInProcess(options.transport_url,
                                   event_topic=aodh_topic)
    conf = chain_mod.make_conf(chain_mod.ChainSettings(
        transport_url=options.transport_url, event_topic=ours_topic))
    receiver = consumer_mod.ConsumerProcess().start()

    def query(vm):
        return [{'field': 'traits.instance_id', 'op': 'eq', 'value': vm,
                 'type': 'string'},
                {'field': 'traits.state', 'op': 'eq', 'value': 'error',
                 'type': 'string'}]

    names = [f'vm-{i:04d}' for i in range(vms)]
    for vm in names:
        aodh.add_event_alarm(f'{vm}-error', project,
                             'compute.instance.update', query(vm),
                             [f'{receiver.url}/aodh/{vm}'],
                             repeat_actions=True)
    ours = alarm_listener.AlarmListener(
        conf, evaluator_mod.EventAlarmEvaluator(conf, definitions.parse(
            {'alarms': [{'name': f'{vm}-error', 'project_id': project,
                         'repeat_actions': True,
                         'event_rule': {'event_type':
                                        'compute.instance.update',
                                        'query': query(vm)},
                         'alarm_actions': [f'{receiver.url}/ours/{vm}']}
                        for vm in names]})))
    pipeline = pipeline_mod.Pipeline(
        conf, pipeline_mod.PipelineDefinition.from_dict(
            {'sources': [{'name': 'vms', 'events': ['*'],
                          'sinks': ['ours', 'aodh']}],
             'sinks': [{'name': name, 'notifiers': [
                 f'messaging://?topic={topic}&notification_topic=']}
                 for name, topic in (('ours', ours_topic),
                                     ('aodh', aodh_topic))]}))
    latencies: dict[str, list[float]] = {'ours': [], 'aodh': []}
    received: collections.Counter[str] = collections.Counter()
    expected = 0
    try:
        aodh.start()
        ours.start()
        time.sleep(1.0)  # both listeners bind their queues
        for i in range(trials + 1):
            for who in ('aodh', 'ours'):
                burst = [event_model.Event.create(
                    'compute.instance.update',
                    {'instance_id': vm, 'state': 'error', 'host': 'b6',
                     'project_id': project, 'tenant_id': project})
                    for vm in names]
                topic = aodh_topic if who == 'aodh' else ours_topic
                notifier = pipeline.notifiers[
                    f'messaging://?topic={topic}&notification_topic=']
                started = time.time()
                notifier.notify(burst)
                expected += vms
                alarms = receiver.wait_for(expected, options.timeout * 6)
                expected = len(alarms)
                ids = {e.message_id for e in burst}
                got = [a for a in alarms if a.body['reason_data']['event']
                       ['message_id'] in ids]
                received[who] += len(got)
                if i == 0:
                    continue  # warm-up
                if len(got) == vms:
                    latencies[who].append(
                        (max(a.received_at for a in got) - started) * 1000)
                else:
                    log(f'B6 trial {i}: {who} {len(got)} of {vms} alarms')
    finally:
        ours.stop()
        aodh.stop()
        pipeline.close()
        receiver.stop()
        broker.delete_queues(options.transport_url,
                             broker.listener_queue_names(
                                 [ours_topic, aodh_topic]))
    summary = harness.latency_summary(latencies['ours'])
    aodh_summary = harness.latency_summary(latencies['aodh'])
    ours_p50, aodh_p50 = summary['p50'], aodh_summary['p50']
    ratio = (aodh_p50 / ours_p50
             if ours_p50 is not None and aodh_p50 is not None else 0.0)
    sent = trials * vms
    got_ours = received['ours'] - vms
    return harness.ScenarioResult(
        scenario='B6', transport=options.transport_url.split(':', 1)[0],
        trials=trials, latency_ms=summary, sent=sent, received=got_ours,
        lost=max(0, sent - got_ours), duplicates=max(0, got_ours - sent),
        target='ratio (Aodh p50 / ours p50) >= 20',
        met=ratio >= 20 and got_ours == sent,
        env=harness.environment(options.transport_url),
        extra={'vms': vms, 'aodh_latency_ms': aodh_summary,
               'aodh_received': received['aodh'] - vms,
               'ratio': round(ratio, 1)})


SCENARIOS: dict[str, typing.Callable[..., harness.ScenarioResult]] = {
    'B1': run_b1,
    'B1-bus': run_b1_bus,
    'B1-cluster': cluster.run_b1_cluster,
    'B2': detection.run_b2,
    'B3': run_b3,
    'B4': run_b4,
    'B5': throughput.run_b5,
    'B6': run_b6,
    'B7': memory.run_b7,
    'B8': throughput.run_b8,
    'B9': partitions.run_b9,
    'B10': partitions.run_b10,
    'B11': partitions.run_b11,
    'F1': fencing.run_f1,
    'R1': reliability.run_r1,
    'R2': reliability.run_r2,
    'R3': reliability.run_r3,
    'R4': poison.run_r4,
    'R5': cluster.run_r5,
    'R6': cluster.run_r6,
    'S1': startup.run_s1,
}

#: Names for several scenarios at once (``--scenario reliability``).
GROUPS = {
    'reliability': ('R1', 'R2', 'R3'),
}
