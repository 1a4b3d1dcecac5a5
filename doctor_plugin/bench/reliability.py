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

"""R1–R3: what a broker restart, a consumer outage and a killed inspector
cost the tenants' alarms.

Each scenario runs a real ``doctor-plugin-inspector`` process over the
RabbitMQ on 127.0.0.1:5672 (durable queues, an exchange of the run's own)
with the delivery outbox in a SQLite file, tenant alarms evaluated in the
inspector (``alarms://``) and a consumer webhook on loopback. Reports go
in as ``doctor.monitor.report`` notifications on the bus (R1, R3) or as
``PUT /events`` (R2), one host each; every report fires one tenant's alarm
(``repeat_actions``), so the webhook must see each report's event id.

- R1: ``rabbitmqctl stop_app`` while the reports flow, ``start_app`` 5 s
  later (in a ``finally``).
- R2: the consumer's port refuses connections for 30 s, then a consumer
  takes it; every alarm must arrive, in order per alarm.
- R3: the inspector is SIGKILLed mid-stream and started again.

Lost is reports whose event never reached the consumer; duplicates
"after dedup" are reports that reached it under two different event ids,
which a consumer dropping repeats of ``X-Doctor-Event-Id`` would count
twice. Repeats of one id (at-least-once) are reported as ``redelivered``.
"""

from __future__ import annotations

import collections
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import typing
import uuid

from oslo_config import cfg
import oslo_messaging

from doctor_plugin.bench import harness
from doctor_plugin.common import messaging
from doctor_plugin import exceptions
from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin import opts
from doctor_plugin.testing import broker
from doctor_plugin.testing import childproc
from doctor_plugin.testing import consumer as consumer_mod
from doctor_plugin.testing import services

TENANTS = 10
R1_EVENTS = 10000
R3_EVENTS = 3000
R2_EVENTS = 300
R2_OUTAGE = 30.0
BROKER_DOWN = 5.0
#: R3's consumer answers each webhook after this long, as a busy VNF
#: manager would: the tenants' alarms then queue up in the inspector
#: (ten at a time are in flight, one per alarm), and the kill finds
#: deliveries waiting, not only ones being made.
R3_CONSUMER_DELAY = 0.05
#: The longest a scenario waits for the last alarm.
SETTLE_TIMEOUT = 180.0


class Counter:
    """What the consumer received, by report."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        #: event id -> deliveries of it
        self.by_id: collections.Counter[str] = collections.Counter()
        #: host -> the event ids it arrived under
        self.ids_of_host: dict[str, set[str]] = collections.defaultdict(set)
        #: alarm (path) -> hosts in arrival order (first arrival of each)
        self.order: dict[str, list[int]] = collections.defaultdict(list)
        self.first_at: float | None = None
        self.last_at: float | None = None

    def __call__(self, alarm: consumer_mod.ReceivedAlarm) -> None:
        event_id = alarm.headers.get('X-Doctor-Event-Id', '')
        host = alarm.trait('host') or ''
        with self.lock:
            self.by_id[event_id] += 1
            if self.by_id[event_id] == 1:
                self.ids_of_host[host].add(event_id)
                self.order[alarm.path].append(int(host.rsplit('-', 1)[1]))
            now = time.time()
            self.first_at = self.first_at or now
            self.last_at = now
            self.lock.notify_all()

    @property
    def hosts(self) -> int:
        with self.lock:
            return len(self.ids_of_host)

    def wait_hosts(self, count: int, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(
                lambda: len(self.ids_of_host) >= count, timeout)

    def figures(self, sent: int) -> dict[str, int]:
        with self.lock:
            return {
                'sent': sent,
                'received': len(self.ids_of_host),
                'lost': sent - len(self.ids_of_host),
                'duplicates_after_dedup': sum(
                    len(ids) - 1 for ids in self.ids_of_host.values()),
                'redelivered': sum(n - 1 for n in self.by_id.values()),
            }

    def out_of_order(self) -> int:
        """Alarms whose reports arrived out of their order."""
        with self.lock:
            return sum(1 for seq in self.order.values() if seq != sorted(seq))


class Chain:
    """The inspector process, its configuration and the consumer."""

    def __init__(self, transport_url: str, hosts: int,
                 log: typing.Callable[[str], None],
                 consumer_port: int | None = None,
                 transformers: str = 'doctor') -> None:
        self.log = log
        self.run_id = uuid.uuid4().hex[:8]
        self.dir = tempfile.mkdtemp(prefix=f'doctor-rel-{self.run_id}-')
        self.transport_url = transport_url
        self.topic = f'doctor-rel-{self.run_id}'
        self.pool = f'{self.topic}-inspector'
        self.exchange = f'doctor-rel-{self.run_id}'
        self.port = services.free_port()
        self.consumer_port = consumer_port or services.free_port()
        self.counter = Counter()
        self.consumer: consumer_mod.ConsumerServer | None = None
        self.proc: subprocess.Popen | None = None
        self.secret = secrets.token_hex(16)
        self.transformers = transformers
        #: The inspector's log of each start.
        self.log_files: list[typing.IO] = []
        self._write_files(hosts)

    @property
    def consumer_url(self) -> str:
        return f'http://127.0.0.1:{self.consumer_port}'

    def _write_files(self, hosts: int) -> None:
        childproc.write_tenant_files(
            self.dir, [f'{self.consumer_url}/tenant-{t}'
                       for t in range(TENANTS)],
            {host_name(i): [(f'vm-{i}', f'tenant-{i % TENANTS}')]
             for i in range(hosts)})
        self.conf_file = os.path.join(self.dir, 'doctor_plugin.conf')
        with open(self.conf_file, 'w') as f:
            f.write(f"""[DEFAULT]
transport_url = {self.transport_url}
control_exchange = {self.exchange}
state_path = {self.dir}
pipeline_cfg_file = {self.dir}/pipeline.yaml
executor_thread_pool_size = 8
[oslo_messaging_rabbit]
amqp_durable_queues = true
rabbit_qos_prefetch_count = 200
[inspector]
host = 127.0.0.1
port = {self.port}
transformers = {self.transformers}
notification_topics = {self.topic}
notification_pool = {self.pool}
topology_file = {self.dir}/topology.yaml
instance_events = false
shared_secret = {self.secret}
[monitor]
inspector_url = http://127.0.0.1:{self.port}/events
inspector_secret = {self.secret}
notification_topic = {self.topic}
[alarms]
definitions_file = {self.dir}/alarms.yaml
reload_interval = 0
[delivery]
retry_initial_interval = 0.2
retry_max_interval = 2.0
[notifier]
webhook_max_retries = 0
webhook_timeout = 2.0
""")

    def conf(self) -> cfg.ConfigOpts:
        """The run's configuration, for the bench's own clients."""
        conf = cfg.ConfigOpts()
        opts.register_all(conf)
        conf(['--config-file', self.conf_file], project='doctor_plugin',
             default_config_files=[])
        return conf

    def start_consumer(self, delay: float = 0.0) -> None:
        self.consumer = consumer_mod.ConsumerServer(
            port=self.consumer_port, on_alarm=self.counter,
            keep=False, delay=delay).start()

    def start_inspector(self) -> None:
        log = open(os.path.join(
            self.dir, f'inspector-{len(self.log_files)}.log'), 'w')
        self.log_files.append(log)
        self.proc = childproc.start_inspector(
            self.conf_file, f'http://127.0.0.1:{self.port}', log)

    def kill_inspector(self) -> None:
        assert self.proc is not None, 'start_inspector() first'
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            childproc.stop_process(self.proc, 30)
        if self.consumer is not None:
            self.consumer.stop()
        for log in self.log_files:
            log.close()
        try:
            broker.delete_queues(
                self.transport_url,
                broker.listener_queue_names([self.topic]) + [self.pool])
            delete_exchange(self.transport_url, self.exchange)
        except Exception as exc:
            self.log(f'could not clean the broker up: {exc}')
        messaging.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


def host_name(i: int) -> str:
    return f'rel-{i:05d}'


def report(i: int) -> monitor_base.FaultReport:
    return monitor_base.FaultReport(
        hostname=host_name(i), status='down', monitor='reliability',
        monitor_event_id=f'rel-{i}', detected_at=time.time())


class BusSender:
    """Put reports on the bus, as monitors with report_to = bus do.

    oslo.messaging's notifier retries forever (``retry=-1``) and waits
    for the broker's confirmation, so a report is only counted as sent
    once the broker has it.
    """

    def __init__(self, conf: cfg.ConfigOpts, topic: str) -> None:
        transport = messaging.get_transport(conf)
        self._notifier = oslo_messaging.Notifier(
            transport, driver='messagingv2', publisher_id='doctor-rel',
            topics=[topic], retry=-1)
        self.sent = 0
        self.errors = 0

    def send(self, first: int, count: int, rate: float,
             stop: threading.Event) -> None:
        started = time.monotonic()
        for n, i in enumerate(range(first, first + count)):
            if stop.is_set():
                return
            while True:
                try:
                    self._notifier.info(
                        {}, reporter_mod.REPORT_EVENT_TYPE,
                        [report(i).as_doctor_event()])
                    break
                except oslo_messaging.MessageDeliveryFailure:
                    self.errors += 1
                    time.sleep(0.5)
            self.sent += 1
            ahead = (n + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


def delete_exchange(url: str, name: str) -> None:
    if not url.startswith('rabbit'):
        return
    with broker.broker_connection(url) as conn:
        channel = conn.channel()
        try:
            channel.exchange_delete(name)
        finally:
            channel.close()


def rabbitmqctl(*args: str) -> None:
    subprocess.run(['rabbitmqctl', *args], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def broker_available() -> bool:
    return shutil.which('rabbitmqctl') is not None


def _result(scenario: str, transport_url: str, figures: dict,
            target: str, met: bool, latency: list[float],
            **extra: typing.Any) -> harness.ScenarioResult:
    extra.update({k: v for k, v in figures.items()
                  if k not in ('sent', 'received', 'lost')})
    return harness.ScenarioResult(
        scenario=scenario, transport=transport_url.split(':', 1)[0],
        trials=1, latency_ms=harness.latency_summary(latency),
        sent=figures['sent'], received=figures['received'],
        lost=figures['lost'], duplicates=figures['duplicates_after_dedup'],
        target=target, met=met, env=harness.environment(transport_url),
        extra=extra)


def _stream(chain: Chain, count: int, rate: float,
            fault: typing.Callable[[], dict], at_fraction: float,
            log: typing.Callable[[str], None]) -> tuple[dict, float]:
    """Send ``count`` reports, inject ``fault`` part way; wait for all."""
    sender = BusSender(chain.conf(), chain.topic)
    stop = threading.Event()
    thread = threading.Thread(target=sender.send,
                              args=(0, count, rate, stop), daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        chain.counter.wait_hosts(int(count * at_fraction), SETTLE_TIMEOUT)
        log(f'{chain.counter.hosts} of {count} alarms in; fault')
        info = fault()
        thread.join(SETTLE_TIMEOUT)
        log(f'all {sender.sent} reports sent ({sender.errors} send errors '
            f'retried); waiting for the alarms')
        chain.counter.wait_hosts(count, SETTLE_TIMEOUT)
    finally:
        stop.set()
    info['send_errors_retried'] = sender.errors
    info['reports_sent_by_bench'] = sender.sent
    return info, time.monotonic() - started


def _bus_run(options: typing.Any, log: typing.Callable[[str], None],
             scenario: str, count: int, at_fraction: float,
             fault: typing.Callable[[Chain], dict], target: str,
             no_duplicates: bool, consumer_delay: float = 0.0
             ) -> harness.ScenarioResult:
    """Reports over the bus, with ``fault`` once ``at_fraction`` are in."""
    chain = Chain(options.transport_url, count, log)
    try:
        chain.start_consumer(consumer_delay)
        chain.start_inspector()
        info, elapsed = _stream(chain, count, 1000.0, lambda: fault(chain),
                                at_fraction, log)
        figures = chain.counter.figures(count)
    finally:
        chain.stop()
    met = figures['lost'] == 0 and (
        not no_duplicates or figures['duplicates_after_dedup'] == 0)
    return _result(scenario, options.transport_url, figures, target, met,
                   [], total_s=round(elapsed, 1), **info)


def run_r1(options: typing.Any, log: typing.Callable[[str], None]
           ) -> harness.ScenarioResult:
    """RabbitMQ stopped and restarted while 10,000 reports flow."""
    if not broker_available():
        raise exceptions.DoctorPluginError(
            'R1 needs rabbitmqctl to stop and start the local broker')

    def broker_restart(chain: Chain) -> dict:
        t0 = time.monotonic()
        try:
            rabbitmqctl('stop_app')
            log('broker stopped')
            time.sleep(BROKER_DOWN)
        finally:
            rabbitmqctl('start_app')
            log('broker started')
        return {'broker_down_s': round(time.monotonic() - t0, 1)}

    return _bus_run(options, log, 'R1', options.trials or R1_EVENTS, 0.25,
                    broker_restart, 'lost 0, duplicates after dedup 0',
                    no_duplicates=True)


def run_r3(options: typing.Any, log: typing.Callable[[str], None]
           ) -> harness.ScenarioResult:
    """The inspector SIGKILLed mid-stream and started again."""
    def kill_and_restart(chain: Chain) -> dict:
        chain.kill_inspector()
        log('inspector killed')
        t0 = time.monotonic()
        chain.start_inspector()
        log('inspector restarted')
        return {'restart_s': round(time.monotonic() - t0, 1)}

    return _bus_run(options, log, 'R3', options.trials or R3_EVENTS, 0.3,
                    kill_and_restart, 'lost 0', no_duplicates=False,
                    consumer_delay=R3_CONSUMER_DELAY)


def run_r2(options: typing.Any, log: typing.Callable[[str], None]
           ) -> harness.ScenarioResult:
    """The consumer down for 30 s: all alarms after, in order per alarm."""
    count = options.trials or R2_EVENTS
    outage = options.duration or R2_OUTAGE
    chain = Chain(options.transport_url, count, log)
    try:
        chain.start_inspector()
        reporter = reporter_mod.InspectorReporter(chain.conf())
        down_at = time.time()
        for i in range(count):
            reporter(report(i))
        log(f'{count} reports accepted with the consumer down; waiting '
            f'out the {outage:.0f} s outage')
        time.sleep(max(0.0, down_at + outage - time.time()))
        back_at = time.time()
        chain.start_consumer()
        chain.counter.wait_hosts(count, SETTLE_TIMEOUT)
        figures = chain.counter.figures(count)
        out_of_order = chain.counter.out_of_order()
        all_in = (chain.counter.last_at or back_at) - back_at
        reporter.close()
    finally:
        chain.stop()
    met = figures['lost'] == 0 and out_of_order == 0
    return _result('R2', options.transport_url, figures,
                   'all delivered after the consumer returns, in order per '
                   'alarm', met, [all_in * 1000.0],
                   outage_s=round(back_at - down_at, 1),
                   all_delivered_after_return_s=round(all_in, 2),
                   alarms_out_of_order=out_of_order)


def run_reliability(options: typing.Any, log: typing.Callable[[str], None]
                    ) -> list[harness.ScenarioResult]:
    return [run(options, log) for run in (run_r1, run_r2, run_r3)]
