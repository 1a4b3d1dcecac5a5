"""The benchmark scenarios (ids as in shared/BENCHMARKS.md)."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import typing
import uuid

import oslo_messaging

from doctor_plugin.bench import harness
from doctor_plugin import demo
from doctor_plugin import messaging
from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin import profiler

DEFAULT_TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'


@dataclasses.dataclass
class BenchOptions:
    transport_url: str = DEFAULT_TRANSPORT_URL
    trials: int | None = None
    duration: float | None = None
    warmup: int = 10
    timeout: float = 5.0


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
                    timeout: float = 5.0) -> dict[str, float]:
    """The baseline: one bare oslo.messaging notification hop, in ms.

    Measured in the same run as the scenario, on the same broker, so that
    the chain's figures can be read against what the bus alone costs.
    """
    conf = demo.make_conf(demo.ChainSettings(transport_url=transport_url))
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
        messaging.delete_queues(conf, transport_url,
                                messaging.listener_queue_names([topic]))
    return harness.latency_summary(samples)


def run_b1(options: BenchOptions,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B1: Doctor's notification time, T01 → every tenant's webhook (T09).

    One host with 100 VMs of 10 tenants (a static topology); the monitor
    reports over HTTP to the inspector, the inspector publishes over the
    bus, the alarm listener fires one alarm per tenant to a real HTTP
    consumer. Each trial is a new fault.
    """
    trials = options.trials or 200
    settings = demo.ChainSettings(transport_url=options.transport_url,
                                  vms=100, tenants=10, host='compute-b1',
                                  repeat_actions=True,
                                  consumer_process=True,
                                  report_repeats=True,
                                  event_topic=f'alarm.bench-{uuid.uuid4()}')
    timeline = profiler.Timeline()
    chain = demo.Chain(settings, timeline)
    chain.start()
    received: collections.Counter[tuple[str, str]] = collections.Counter()
    try:
        reporter = reporter_mod.InspectorReporter(chain.conf)
        latencies = []
        expected = 0
        for i in range(options.warmup + trials):
            fault = monitor_base.FaultReport(
                settings.host, 'down', 'bench', detected_at=time.time())
            timeline.mark(fault.monitor_event_id, 'T01', fault.detected_at)
            reporter(fault)
            expected += settings.tenants
            alarms = chain.consumer.wait_for(expected, options.timeout)
            expected = len(alarms)
            if i < options.warmup:
                continue
            total = timeline.notification_time(fault.monitor_event_id)
            got = [a for a in alarms if a.trait('monitor_event_id')
                   == fault.monitor_event_id]
            for alarm in got:
                received[(fault.monitor_event_id, alarm.path)] += 1
            if len(got) == settings.tenants and total is not None:
                latencies.append(total * 1000.0)
            else:
                log(f'B1 trial {i}: {len(got)} of {settings.tenants} '
                    f'alarms within {options.timeout} s')
        summary = harness.latency_summary(latencies)
    finally:
        chain.stop()
    log('B1: measuring the bare bus hop baseline ...')
    baseline = measure_bus_hop(options.transport_url, trials)
    sent = trials * settings.tenants
    unique = len(received)
    return harness.ScenarioResult(
        scenario='B1', transport=options.transport_url.split(':', 1)[0],
        trials=trials, latency_ms=summary, sent=sent, received=unique,
        lost=sent - unique,
        duplicates=sum(c - 1 for c in received.values()),
        target='p99 <= 20 ms',
        met=bool(latencies) and summary['p99'] <= 20.0 and unique == sent,
        env=harness.environment(options.transport_url),
        extra={'vms': settings.vms, 'tenants': settings.tenants,
               'baseline_bus_hop_ms': baseline})


SCENARIOS: dict[str, typing.Callable[..., harness.ScenarioResult]] = {
    'B1': run_b1,
}
