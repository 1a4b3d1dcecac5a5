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

"""B5 and B8: sustained event throughput, and its scale-out.

The stream, the same in both: :data:`HOSTS` compute hosts, each with
:data:`VMS_PER_HOST` instances of one of :data:`TENANTS` tenants, report
``compute.host.down`` and ``compute.host.up`` in turn, host after host
(every host down, then every host up, ...), as ``doctor.monitor.report``
notifications of :data:`BATCH` Doctor reports each (a monitor fleet's
reports, relayed). The inspector transforms them (``doctor``), correlates
and fans each out (the host event, its tenant's event and, for a failure,
one ``compute.instance.update`` per instance) and evaluates the events
against two event alarms per host (down and up, ``traits.host eq
<host>``). Deliveries are durable (the shipped default: recorded in the
outbox first).

B5 (:data:`STORM`) measures the pipeline, Ceilometer's view: the
pipeline's sink also has the ``messaging://`` event publisher, to a topic
of the run, and the alarms have Aodh's default ``repeat_actions: false``:
an alarm calls its webhook on its transition only (the first down, the
first up of each host), not for each of the thousands of events a second
that keep it in ``alarm``. A report counts as received when its host
event reached a listener of that topic (in the bench process, by
``monitor_event_id``; every event is also counted by ``message_id``, for
duplicates); the webhooks, to a consumer process, must be as many as the
transitions (``webhooks`` and ``webhooks_expected``).

B8 (:data:`PER_EVENT`) measures how the inspector's heaviest per-event
work scales out: the alarms have ``repeat_actions`` (the per-resource
alarms Doctor sets up), every report is one alarm, one webhook, and a
report counts as received when its webhook did. (With ``repeat_actions:
false`` each worker would keep its own alarm states, so the webhooks
would depend on which worker took which message; and the pipeline-only
work is cheap enough that the publisher and the broker, on the same
cores, would be measured as much as the workers.)

The throughput is the received reports over the time from the first to
the last of them. The publisher keeps at most :data:`MAX_AHEAD` reports
ahead of the far end, so that the queue stays bounded and the figure is
the chain's, not the publisher's. Every loop is bounded by ``--duration``
and by a count; queues, exchange, processes and files are removed at the
end.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import typing
import uuid

from oslo_config import cfg
import oslo_messaging
import yaml

from doctor_plugin.bench import harness
from doctor_plugin.bench import reliability
from doctor_plugin.common import messaging
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin import opts
from doctor_plugin.testing import broker
from doctor_plugin.testing import childproc
from doctor_plugin.testing import consumer as consumer_mod
from doctor_plugin.testing import services

HOSTS = 1000
VMS_PER_HOST = 2
TENANTS = 50
#: Doctor reports per bus message.
BATCH = 50
#: Events the publisher may be ahead of the webhooks.
MAX_AHEAD = 20000
#: The most events one run publishes, whatever its duration.
MAX_EVENTS = 2_000_000
#: The longest a run waits for its last webhooks after it stopped sending.
DRAIN_TIMEOUT = 30.0

B5_DURATION = 10.0
B5_FAKE_TARGET = 50000.0
B5_RABBIT_TARGET = 10000.0
B8_DURATION = 8.0
B8_WORKERS = (1, 2, 4)
B8_TARGET = 1.7

FAKE_URL = messaging.FAKE_TRANSPORT_URL

#: B5's load: the event publisher to the bus, alarms firing on their
#: transitions.
STORM = 'storm'
#: B8's load: every report fires an alarm (``repeat_actions``).
PER_EVENT = 'per-event'
#: How long a B5 run waits after the expected webhooks, for extra ones.
WEBHOOK_GRACE = 0.5


def host_name(i: int) -> str:
    return f'tp-{i:05d}'


def tenant_of(i: int) -> str:
    return f'tenant-{i % TENANTS:03d}'


def report_payload(run: str, first: int, count: int,
                   detected_at: float) -> list[dict]:
    """Doctor reports ``first`` to ``first + count`` of the stream.

    Report ``i`` is of host ``i % HOSTS``, down in even rounds and up in
    odd ones. Every report has the same detection time: the pool's
    workers take them in any order, and a later one must not look stale.
    """
    return [monitor_base.FaultReport(
        hostname=host_name(i % HOSTS),
        status='down' if (i // HOSTS) % 2 == 0 else 'up',
        monitor='bench', monitor_event_id=f'{run}-{i}',
        detected_at=detected_at).as_doctor_event()
        for i in range(first, first + count)]


class Arrivals:
    """What of one run reached the far end, by report (``monitor_event_id``).

    Fed by webhooks (called with each) or by :class:`BusCounter` (with
    the events of each bus message). What other runs sent (a previous
    one's late messages) is not counted.
    """

    def __init__(self, run: str) -> None:
        self.prefix = f'{run}-'
        self.cond = threading.Condition()
        self.by_id: collections.Counter[str] = collections.Counter()
        #: Every event of the run seen on the bus, by ``message_id``.
        self.events: collections.Counter[str] = collections.Counter()
        self.first_at: float | None = None
        self.last_at: float | None = None

    def __call__(self, alarm: consumer_mod.ReceivedAlarm) -> None:
        event_id = alarm.trait('monitor_event_id') or ''
        if not event_id.startswith(self.prefix):
            return
        with self.cond:
            self._arrived(event_id, alarm.received_at)
            self.cond.notify_all()

    def _arrived(self, event_id: str, at: float) -> None:
        self.by_id[event_id] += 1
        if self.first_at is None:
            self.first_at = at
        self.last_at = at

    def add_events(self, events: typing.Sequence[typing.Any],
                   at: float) -> None:
        """The serialised events of one bus message, received at ``at``.

        A report arrived with its host event (a host event type, no
        project: not one of its tenants' copies).
        """
        with self.cond:
            for ev in events:
                if not isinstance(ev, dict):
                    continue
                traits = broker.traits_of(ev)
                event_id = str(traits.get('monitor_event_id') or '')
                if not event_id.startswith(self.prefix):
                    continue
                self.events[str(ev.get('message_id'))] += 1
                if (str(ev.get('event_type')).startswith('compute.host.')
                        and 'project_id' not in traits):
                    self._arrived(event_id, at)
            self.cond.notify_all()

    @property
    def count(self) -> int:
        with self.cond:
            return len(self.by_id)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` reports have their webhook, or timeout."""
        with self.cond:
            return self.cond.wait_for(lambda: len(self.by_id) >= count,
                                      timeout)

    def figures(self, sent: int) -> dict[str, typing.Any]:
        with self.cond:
            received = len(self.by_id)
            duplicates = sum(n - 1 for n in self.by_id.values())
            span = ((self.last_at - self.first_at)
                    if self.first_at is not None and self.last_at is not None
                    else 0.0)
        return {'sent': sent, 'received': received,
                'lost': max(0, sent - received), 'duplicates': duplicates,
                'span_s': round(span, 3),
                'throughput_per_s': (round(received / span, 1) if span > 0
                                     else None)}

    def event_figures(self) -> dict[str, typing.Any]:
        """The events seen on the bus (every one, not only host events)."""
        with self.cond:
            received = len(self.events)
            duplicates = sum(n - 1 for n in self.events.values())
            span = ((self.last_at - self.first_at)
                    if self.first_at is not None and self.last_at is not None
                    else 0.0)
        return {'events_received': received,
                'event_duplicates': duplicates,
                'events_per_s': (round(received / span, 1) if span > 0
                                 else None)}


class BusCounter:
    """The far end of B5: a listener of the topic the inspector publishes to.

    The ``sample`` notifications of the ``messaging://`` event publisher,
    each a list of serialised events, go to the current run's
    :class:`Arrivals`.
    """

    def __init__(self, transport: oslo_messaging.Transport,
                 topic: str) -> None:
        self.current: Arrivals | None = None
        self._tap = broker.EventTap(transport, topic, self._received)

    def _received(self, events: list[dict[str, typing.Any]],
                  at: float) -> None:
        current = self.current
        if current is not None:
            current.add_events(events, at)

    def start(self) -> BusCounter:
        self._tap.start()
        return self

    def stop(self) -> None:
        self._tap.stop()


class Dispatch:
    """The consumer's callback: hands each webhook to the current run."""

    def __init__(self) -> None:
        self.current: Arrivals | None = None

    def __call__(self, alarm: consumer_mod.ReceivedAlarm) -> None:
        current = self.current
        if current is not None:
            current(alarm)


@dataclasses.dataclass
class Workload:
    """The configuration files of a run, in a directory of its own."""

    transport_url: str
    consumer_url: str
    #: :data:`STORM` (B5) or :data:`PER_EVENT` (B8).
    load: str = STORM
    run: str = dataclasses.field(
        default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix=f'doctor-tp-{self.run}-')
        self.topic = f'doctor-tp-{self.run}'
        self.pool = f'{self.topic}-inspector'
        self.exchange = f'doctor-tp-{self.run}'
        #: Where the inspector publishes its events (B5).
        self.events_topic = f'{self.topic}-events'
        #: (host, state) of the alarms that have fired so far (B5).
        self.fired: set[tuple[int, int]] = set()
        self.secret = secrets.token_hex(16)
        #: Workers configured so far (each gets a state directory).
        self.workers = 0
        self._write_shared()

    def _dump(self, name: str, data: typing.Any) -> str:
        path = os.path.join(self.dir, name)
        with open(path, 'w') as f:
            yaml.safe_dump(data, f)
        return path

    def _write_shared(self) -> None:
        notifiers = ['alarms://']
        if self.load == STORM:
            # Ceilometer's event publisher: the event batch only, no plain
            # notification per event.
            notifiers.append(f'messaging://?topic={self.events_topic}'
                             f'&notification_topic=')
        self._dump('pipeline.yaml', {
            'sources': [{'name': 'faults',
                         'events': ['compute.host.*', 'compute.instance.*'],
                         'sinks': ['tenants']}],
            'sinks': [{'name': 'tenants', 'notifiers': notifiers}]})
        alarms = []
        for h in range(HOSTS):
            for state in ('down', 'up'):
                alarms.append({
                    'name': f'{host_name(h)}-{state}',
                    'project_id': tenant_of(h),
                    'repeat_actions': self.load == PER_EVENT,
                    'event_rule': {
                        'event_type': f'compute.host.{state}',
                        'query': [{'field': 'traits.host', 'op': 'eq',
                                   'value': host_name(h),
                                   'type': 'string'}]},
                    'alarm_actions': [
                        f'{self.consumer_url}/{tenant_of(h)}']})
        self._dump('alarms.yaml', {'alarms': alarms})
        self._dump('topology.yaml', {'hosts': {
            host_name(h): [{'id': f'vm-{h:05d}-{v}',
                            'project_id': tenant_of(h)}
                           for v in range(VMS_PER_HOST)]
            for h in range(HOSTS)}})

    def write_conf(self, port: int) -> str:
        """The configuration file of a new worker, on ``port``."""
        index = self.workers
        self.workers += 1
        state = os.path.join(self.dir, f'worker-{index}')
        os.makedirs(state, exist_ok=True)
        path = os.path.join(self.dir, f'inspector-{index}.conf')
        with open(path, 'w') as f:
            f.write(f"""[DEFAULT]
transport_url = {self.transport_url}
control_exchange = {self.exchange}
state_path = {state}
pipeline_cfg_file = {self.dir}/pipeline.yaml
executor_thread_pool_size = 8
[oslo_messaging_rabbit]
rabbit_qos_prefetch_count = 50
[inspector]
host = 127.0.0.1
port = {port}
transformers = doctor
notification_topics = {self.topic}
notification_pool = {self.pool}
topology_file = {self.dir}/topology.yaml
shared_secret = {self.secret}
host_report_window = 0
flap_window = 0
[alarms]
definitions_file = {self.dir}/alarms.yaml
reload_interval = 0
[notifier]
webhook_timeout = 10.0
""")
        return path

    def transitions(self, sent: int) -> int:
        """The alarms that reports ``0`` to ``sent`` newly fire (B5).

        Report ``i`` fires the alarm of its host and state unless an
        earlier report (of this run or an earlier one on the same
        inspector) did: without ``repeat_actions`` an alarm calls its
        webhook on its transition only. One evaluator, so one worker.
        """
        new = {(i % HOSTS, (i // HOSTS) % 2)
               for i in range(min(sent, 2 * HOSTS))} - self.fired
        self.fired |= new
        return len(new)

    def conf(self, path: str) -> cfg.ConfigOpts:
        conf = cfg.ConfigOpts()
        opts.register_all(conf)
        conf(['--config-file', path], project='doctor_plugin',
             default_config_files=[])
        return conf

    def cleanup(self, log: typing.Callable[[str], None]) -> None:
        try:
            broker.delete_queues(
                self.transport_url,
                broker.listener_queue_names([self.topic,
                                             self.events_topic])
                + broker.listener_queue_names([], self.pool))
            reliability.delete_exchange(self.transport_url, self.exchange)
        except Exception as exc:
            log(f'could not clean the broker up: {exc}')
        shutil.rmtree(self.dir, ignore_errors=True)


class Publisher:
    """Put the stream on the bus, at most :data:`MAX_AHEAD` ahead.

    :param conf: a configuration naming the run's transport and exchange
    """

    def __init__(self, conf: cfg.ConfigOpts, topic: str, run: str,
                 arrivals: Arrivals) -> None:
        transport = messaging.get_transport(conf)
        self._notifier = oslo_messaging.Notifier(
            transport, driver='messagingv2', publisher_id='doctor-bench',
            topics=[topic], retry=3)
        self.run = run
        self.arrivals = arrivals
        self.sent = 0

    def send_for(self, duration: float, limit: int = MAX_EVENTS) -> float:
        """Publish for ``duration`` seconds (or ``limit`` events).

        :returns: the seconds spent publishing
        """
        started = time.monotonic()
        end = started + duration
        detected_at = time.time()
        while time.monotonic() < end and self.sent < limit:
            if self.sent - self.arrivals.count > MAX_AHEAD:
                self.arrivals.wait_for(self.sent - MAX_AHEAD,
                                       max(0.0, end - time.monotonic()))
                continue
            count = min(BATCH, limit - self.sent)
            self._notifier.info({}, reporter_mod.REPORT_EVENT_TYPE,
                                report_payload(self.run, self.sent, count,
                                               detected_at))
            self.sent += count
        return time.monotonic() - started


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (/proc/<pid>/stat)."""
    with open(f'/proc/{pid}/stat') as f:
        # The command name may hold spaces: fields count after its ')'.
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class Worker:
    """One ``doctor-plugin-inspector`` process of the pool."""

    def __init__(self, workload: Workload) -> None:
        self.port = services.free_port()
        self.conf_file = workload.write_conf(self.port)
        self.log = open(self.conf_file[:-len('.conf')] + '.log', 'w')
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = childproc.start_inspector(
            self.conf_file, f'http://127.0.0.1:{self.port}', self.log)

    def stop(self) -> None:
        if self.proc is not None:
            childproc.stop_process(self.proc, 30)
        self.log.close()


def stream(workload: Workload, conf: cfg.ConfigOpts, dispatch: Dispatch,
           duration: float, pids: typing.Mapping[str, int],
           log: typing.Callable[[str], None],
           bus: BusCounter | None = None) -> dict[str, typing.Any]:
    """Publish for ``duration`` s, wait for the far end; the figures.

    :param pids: the processes whose CPU use over the run is reported,
        by name
    :param bus: the listener of the inspector's event topic (B5): reports
        are received there, and the webhooks are checked against the
        alarms' transitions; None: reports are received as webhooks (B8)
    """
    run = f'{workload.run}-{uuid.uuid4().hex[:4]}'
    webhooks = Arrivals(run)
    arrivals = webhooks if bus is None else Arrivals(run)
    dispatch.current = webhooks
    if bus is not None:
        bus.current = arrivals
    publisher = Publisher(conf, workload.topic, run, arrivals)
    before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    publish_s = publisher.send_for(duration)
    arrivals.wait_for(publisher.sent, DRAIN_TIMEOUT)
    expected = None
    if bus is not None:
        expected = workload.transitions(publisher.sent)
        webhooks.wait_for(expected, DRAIN_TIMEOUT)
    wall = time.monotonic() - started
    cpu = {name: round(100.0 * (_cpu_seconds(pid) - before[name]) / wall, 1)
           for name, pid in pids.items()}
    figures = arrivals.figures(publisher.sent)
    if bus is not None:
        # Late extra webhooks would be repeats of a transition.
        time.sleep(WEBHOOK_GRACE)
        bus.current = None
        hooks = webhooks.figures(expected or 0)
        figures.update(arrivals.event_figures(), webhooks=hooks['received'],
                       webhooks_expected=expected,
                       webhook_duplicates=hooks['duplicates'])
    dispatch.current = None
    figures.update(publish_s=round(publish_s, 2), wall_s=round(wall, 2),
                   cpu_percent_of_one_core=cpu)
    hooks_note = ('' if bus is None else
                  f'; {figures["webhooks"]} webhooks of {expected} '
                  f'transitions')
    log(f'{figures["received"]} of {publisher.sent} events in '
        f'{figures["span_s"]} s: {figures["throughput_per_s"]}/s'
        f'{hooks_note}; CPU % {cpu}')
    return figures


def _broker_pid() -> int | None:
    """The RabbitMQ server's process on this machine, if it is local."""
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                argv0 = f.read().split(b'\0', 1)[0]
        except OSError:
            continue
        if argv0.endswith(b'beam.smp'):
            return int(entry)
    return None


def _median(values: typing.Sequence[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    return known[(len(known) - 1) // 2] if known else None


def _totals(runs: typing.Sequence[dict[str, typing.Any]],
            keys: typing.Sequence[str] = ('sent', 'received', 'lost',
                                          'duplicates')
            ) -> dict[str, int]:
    return {key: sum(r[key] for r in runs) for key in keys}


def _fake_runs(consumer: consumer_mod.ConsumerProcess, dispatch: Dispatch,
               trials: int, duration: float,
               log: typing.Callable[[str], None]
               ) -> list[dict[str, typing.Any]]:
    """B5 on ``fake://``: inspector, publisher and listener in this process."""
    workload = Workload(FAKE_URL, consumer.url)
    inspector = None
    bus = None
    try:
        conf = workload.conf(workload.write_conf(services.free_port()))
        # The inspector's transport: fake:// is one process's memory.
        bus = BusCounter(messaging.get_transport(conf),
                         workload.events_topic).start()
        inspector = inspector_service.InspectorService(conf).start()
        pids = {'bench (inspector + publisher + listener)': os.getpid()}
        if consumer.pid is not None:
            pids['consumer'] = consumer.pid
        runs = []
        for trial in range(trials):
            log(f'B5 fake:// trial {trial + 1} of {trials} ...')
            runs.append(stream(workload, conf, dispatch, duration, pids,
                               log, bus))
        return runs
    finally:
        if inspector is not None:
            inspector.stop()
        if bus is not None:
            bus.stop()
        messaging.cleanup()
        workload.cleanup(log)


def _pool_runs(transport_url: str, consumer: consumer_mod.ConsumerProcess,
               dispatch: Dispatch, workers: int, trials: int,
               duration: float, log: typing.Callable[[str], None],
               workload: Workload | None = None
               ) -> list[dict[str, typing.Any]]:
    """``workers`` inspector processes in one pool, fed on the bus.

    With a :data:`STORM` workload (B5), a listener of its event topic in
    this process is the far end.
    """
    own = workload is None
    workload = workload or Workload(transport_url, consumer.url)
    pool = [Worker(workload) for _ in range(workers)]
    bus = None
    try:
        starters = [threading.Thread(target=w.start) for w in pool]
        for t in starters:
            t.start()
        for t in starters:
            t.join(90)
        for w in pool:
            if w.proc is None:
                raise RuntimeError(f'an inspector did not start: '
                                   f'{childproc.log_tail(w.log.name)}')
        conf = workload.conf(pool[0].conf_file)
        if workload.load == STORM:
            bus = BusCounter(messaging.get_transport(conf),
                             workload.events_topic).start()
        pids = {f'inspector-{i}': w.proc.pid for i, w in enumerate(pool)
                if w.proc is not None}
        pids['publisher' if bus is None
             else 'publisher + listener'] = os.getpid()
        if consumer.pid is not None:
            pids['consumer'] = consumer.pid
        beam = _broker_pid()
        if beam is not None:
            pids['rabbitmq'] = beam
        runs = []
        for trial in range(trials):
            log(f'{workers} inspector(s), trial {trial + 1} of {trials} ...')
            runs.append(stream(workload, conf, dispatch, duration, pids,
                               log, bus))
        return runs
    finally:
        for w in pool:
            w.stop()
        if bus is not None:
            bus.stop()
        messaging.cleanup()
        if own:
            workload.cleanup(log)


def run_b5(options: harness.BenchOptions,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B5: sustained events per second through one inspector process.

    ``throughput_per_s`` is the RabbitMQ figure (a real
    ``doctor-plugin-inspector`` process fed on the bus);
    ``fake_throughput_per_s`` the ``fake://`` one (inspector, bus,
    publisher and listener in this process). Both are medians over
    ``--trials`` runs (default 1) of ``--duration`` seconds (default 10)
    of publishing, in reports per second (``events_per_s`` in each run
    counts every event the inspector published); the counts are summed
    over both transports and every run. The webhooks' consumer is a
    process of its own in both; ``webhooks`` must equal
    ``webhooks_expected``, the alarms' transitions.

    With ``--transport-url fake://`` only the ``fake://`` figure is
    measured: ``throughput_per_s`` is then that one, and the target is
    the ``fake://`` one.
    """
    trials = options.trials or 1
    duration = options.duration or B5_DURATION
    fake_only = options.transport_url.startswith('fake')
    dispatch = Dispatch()
    consumer = consumer_mod.ConsumerProcess(on_alarm=dispatch,
                                            keep=False).start()
    rabbit: list[dict[str, typing.Any]] = []
    try:
        fake = _fake_runs(consumer, dispatch, trials, duration, log)
        if not fake_only:
            rabbit = _pool_runs(options.transport_url, consumer, dispatch,
                                1, trials, duration, log)
    finally:
        consumer.stop()
    fake_rate = _median([r['throughput_per_s'] for r in fake])
    rate = (fake_rate if fake_only
            else _median([r['throughput_per_s'] for r in rabbit]))
    totals = _totals(fake + rabbit)
    hooks = _totals(fake + rabbit, ('webhooks', 'webhooks_expected',
                                    'webhook_duplicates', 'events_received',
                                    'event_duplicates'))
    met = (rate is not None
           and rate >= (B5_FAKE_TARGET if fake_only else B5_RABBIT_TARGET)
           and fake_rate is not None and fake_rate >= B5_FAKE_TARGET
           and totals['lost'] == 0 and totals['duplicates'] == 0
           and hooks['event_duplicates'] == 0
           and hooks['webhooks'] == hooks['webhooks_expected']
           and hooks['webhook_duplicates'] == 0)
    return harness.ScenarioResult(
        scenario='B5', transport=options.transport_url.split(':', 1)[0],
        trials=trials, latency_ms=harness.latency_summary([]), **totals,
        target=(f'>= {B5_FAKE_TARGET:,.0f}/s on fake://'
                + ('' if fake_only
                   else f', >= {B5_RABBIT_TARGET:,.0f}/s on RabbitMQ')),
        met=met, env=harness.environment(options.transport_url),
        extra={'throughput_per_s': rate, 'fake_throughput_per_s': fake_rate,
               'hosts': HOSTS, 'vms_per_host': VMS_PER_HOST,
               'tenants': TENANTS, 'reports_per_message': BATCH,
               'duration_s': duration, **hooks,
               'fake_runs': fake, 'rabbit_runs': rabbit})


def run_b8(options: harness.BenchOptions,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B8: 1, 2 and 4 inspector processes in one notification pool.

    The stream of B5, with alarms that fire on every report
    (:data:`PER_EVENT`: see the module's doc), on one RabbitMQ topic
    whose pool's queue the workers share (each message is handled by one
    of them), for
    ``--duration`` seconds (default 8) per worker count, one count after
    the other in this run. ``ratio`` is the 2-worker throughput over the
    1-worker one; ``throughput_by_workers`` and
    ``cpu_percent_by_workers`` (user + system CPU of each process over the
    run, in % of one core: the inspectors, the publisher, the consumer,
    the broker) say where the cores went. ``--trials N`` repeats each
    count N times (the median is kept).
    """
    trials = options.trials or 1
    duration = options.duration or B8_DURATION
    dispatch = Dispatch()
    consumer = consumer_mod.ConsumerProcess(on_alarm=dispatch,
                                            keep=False).start()
    workload = Workload(options.transport_url, consumer.url, PER_EVENT)
    by_workers: dict[int, list[dict[str, typing.Any]]] = {}
    try:
        for workers in B8_WORKERS:
            by_workers[workers] = _pool_runs(
                options.transport_url, consumer, dispatch, workers, trials,
                duration, log, workload)
    finally:
        consumer.stop()
        workload.cleanup(log)
    rates = {n: _median([r['throughput_per_s'] for r in runs])
             for n, runs in by_workers.items()}
    one, two = rates.get(1), rates.get(2)
    ratio = round(two / one, 2) if one and two else None
    totals = _totals([r for runs in by_workers.values() for r in runs])
    cpus = os.cpu_count() or 1
    notes = None
    if ratio is None or ratio < B8_TARGET:
        notes = (f'{cpus} CPU(s) for the inspectors, the publisher, the '
                 f'consumer and the broker together: see '
                 f'cpu_percent_by_workers for where they went')
    return harness.ScenarioResult(
        scenario='B8', transport=options.transport_url.split(':', 1)[0],
        trials=trials, latency_ms=harness.latency_summary([]), **totals,
        target=f'ratio >= {B8_TARGET}x at 2 workers',
        met=(ratio is not None and ratio >= B8_TARGET
             and totals['lost'] == 0 and totals['duplicates'] == 0),
        env=harness.environment(options.transport_url),
        extra={'ratio': ratio,
               'throughput_per_s': two,
               'throughput_by_workers': {str(n): r
                                         for n, r in rates.items()},
               'cpu_percent_by_workers': {
                   str(n): runs[-1]['cpu_percent_of_one_core']
                   for n, runs in by_workers.items()},
               'duration_s': duration, 'notes': notes,
               'runs_by_workers': {str(n): runs
                                   for n, runs in by_workers.items()}})
