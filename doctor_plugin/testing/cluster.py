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

"""Several real inspector processes in one cluster, and what they did.

:class:`InspectorCluster` runs N ``doctor-plugin-inspector`` processes as
three controllers would: one tooz group on the real Redis (each member
through a :class:`~doctor_plugin.testing.tcpproxy.TcpProxy` of its own,
so that a test can cut one off), one RabbitMQ, and a fresh database on the
real PostgreSQL. Tenants' webhooks go to a
:class:`~doctor_plugin.testing.consumer.ConsumerServer`, Nova's API is a
:class:`~doctor_plugin.testing.nova.NovaStandIn`; both count what they
got, so a test or the benchmark can tell lost faults, tenants alarmed
twice and hosts fixed up twice.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
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

import requests

from doctor_plugin.common import messaging
from doctor_plugin.testing import broker
from doctor_plugin.testing import childproc
from doctor_plugin.testing import consumer as consumer_mod
from doctor_plugin.testing import nova as nova_mod
from doctor_plugin.testing import services
from doctor_plugin.testing import tcpproxy

PROGRAM = 'doctor-plugin-inspector'


def host_name(i: int) -> str:
    return f'compute-{i}'


class Alarms:
    """The tenants' webhooks, by host and event id."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        #: host -> event ids its alarms arrived under
        self.ids_of_host: dict[str, set[str]] = collections.defaultdict(set)
        #: (host, the tenant's webhook path) -> event ids it arrived under
        self.ids_of: dict[tuple[str, str], set[str]] = (
            collections.defaultdict(set))
        #: host -> when its first alarm arrived (time.time())
        self.first_at: dict[str, float] = {}
        #: host -> when its latest alarm arrived, and how many did
        self.last_at: dict[str, float] = {}
        self.count_of_host: collections.Counter[str] = collections.Counter()
        self.deliveries = 0
        #: Deliveries a tenant had already had (same host, same event id).
        self.duplicates = 0

    def __call__(self, alarm: consumer_mod.ReceivedAlarm) -> None:
        host = alarm.trait('host') or ''
        event_id = alarm.headers.get('X-Doctor-Event-Id', '')
        with self.lock:
            self.deliveries += 1
            now = time.time()
            self.ids_of_host[host].add(event_id)
            key = (host, alarm.path)
            if event_id in self.ids_of[key]:
                self.duplicates += 1
            self.ids_of[key].add(event_id)
            self.first_at.setdefault(host, now)
            self.last_at[host] = now
            self.count_of_host[host] += 1
            self.lock.notify_all()

    def wait(self, predicate: typing.Callable[[], bool],
             timeout: float) -> bool:
        """Wait until ``predicate`` (of what arrived) holds, or timeout.

        Woken by each arrival, so a latency measured with it is not a
        polling interval.
        """
        with self.lock:
            return self.lock.wait_for(predicate, timeout)

    def wait_hosts(self, hosts: typing.Iterable[str], timeout: float
                   ) -> bool:
        wanted = set(hosts)
        return self.wait(lambda: wanted <= self.ids_of_host.keys(), timeout)

    def alarmed_twice(self) -> list[str]:
        """Hosts a tenant heard of under two event ids (one fault each)."""
        with self.lock:
            return sorted({h for (h, _), ids in self.ids_of.items()
                           if len(ids) > 1})


class Member:
    """One inspector process of the cluster."""

    def __init__(self, index: int, conf_file: str, port: int,
                 proxy: tcpproxy.TcpProxy, log_path: str) -> None:
        self.index = index
        self.id = f'ctl-{index}:{PROGRAM}'
        self.conf_file = conf_file
        self.port = port
        self.url = f'http://127.0.0.1:{port}'
        self.proxy = proxy
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._log: typing.IO | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self._log = open(self.log_path, 'a')
        self.proc = childproc.start_inspector(self.conf_file, self.url,
                                              self._log)

    def kill(self) -> float:
        """SIGKILL it; when it died (time.time())."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return time.time()

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM); :meth:`stop` waits for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None:
            childproc.stop_process(self.proc, 20)
        if self._log is not None:
            self._log.close()
            self._log = None

    def health(self) -> dict[str, typing.Any]:
        """Its ``GET /healthz`` answer ({} if it does not answer)."""
        try:
            return requests.get(f'{self.url}/healthz', timeout=2).json()
        except (requests.RequestException, ValueError):
            return {}

    def sees(self, size: int) -> bool:
        """Whether it holds a lease and sees ``size`` members."""
        coordination = self.health().get('coordination') or {}
        return bool(coordination.get('lease')) and (
            coordination.get('members') == size)

    def log(self) -> str:
        return childproc.log_tail(self.log_path, 40)


class InspectorCluster:
    """N inspectors, a consumer, Nova and the shared services; see module.

    :param members: how many inspectors
    :param hosts: compute hosts, one VM of one tenant on each
    :param tenants: tenants, each with an alarm on compute.host.down
    :param coordination: ``[coordination]`` overrides (member_timeout...)
    """

    def __init__(self, members: int = 3, hosts: int = 12, tenants: int = 4,
                 vms_per_host: int = 1,
                 coordination: typing.Mapping[str, typing.Any] | None = None,
                 transport_url: str = services.TRANSPORT_URL,
                 redis_url: str = services.REDIS_URL,
                 database_server_url: str = services.DATABASE_SERVER_URL
                 ) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.dir = tempfile.mkdtemp(prefix=f'doctor-ha-{self.run_id}-')
        self.size = members
        self.hosts = [host_name(i) for i in range(hosts)]
        self.tenants = tenants
        #: host -> its VMs as (id, tenant); VM j of host i is tenant j
        #: (mod tenants), so a host of n VMs affects min(n, tenants).
        self.vms = {host: [(f'vm-{i}-{j}', self._tenant(i + j))
                           for j in range(vms_per_host)]
                    for i, host in enumerate(self.hosts)}
        self.coordination = dict(coordination or {})
        self.transport_url = transport_url
        self.redis_url = redis_url
        self.topic = f'doctor-ha-{self.run_id}'
        self.pool = f'{self.topic}-inspectors'
        self.exchange = f'doctor-ha-{self.run_id}'
        self.group = f'doctor-ha-{self.run_id}'
        self.secret = secrets.token_hex(16)
        self.member_secret = secrets.token_hex(16)
        self.alarms = Alarms()
        self.database = services.FreshDatabase(database_server_url,
                                               'doctor_ha')
        self.consumer: consumer_mod.ConsumerServer | None = None
        self.consumer_port = services.free_port()
        self.nova: nova_mod.NovaStandIn | None = None
        self.members: list[Member] = []
        self._session = requests.Session()
        self._observer: typing.Any = None

    # Set-up.

    def start(self) -> InspectorCluster:
        try:
            self.database.create()
            self.start_consumer()
            self.nova = nova_mod.NovaStandIn().start()
            self.nova.add_servers([
                (vm, tenant, host, vm)
                for host, vms in self.vms.items() for vm, tenant in vms])
            self._write_shared_files()
            redis_host, redis_port = self._redis_address()
            for i in range(self.size):
                proxy = tcpproxy.TcpProxy(redis_host, redis_port).start()
                member = Member(i, os.path.join(self.dir, f'ctl-{i}.conf'),
                                services.free_port(), proxy,
                                os.path.join(self.dir, f'ctl-{i}.log'))
                self._write_member_conf(member)
                self.members.append(member)
            for member in self.members:
                member.start()
            if self.coordinated:
                self.wait_group(self.size)
        except BaseException:
            self.stop()
            raise
        return self

    def start_consumer(self) -> None:
        """Start (again) the tenants' webhook receiver, on its port."""
        self.consumer = consumer_mod.ConsumerServer(
            port=self.consumer_port, on_alarm=self.alarms,
            keep=False).start()

    def stop_consumer(self) -> None:
        """Stop the receiver: webhooks fail and wait in the outboxes."""
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None

    def _tenant(self, i: int) -> str:
        return f'tenant-{i % self.tenants}'

    def _redis_address(self) -> tuple[str, int]:
        netloc = self.redis_url.split('://', 1)[1].split('/', 1)[0]
        host, _, port = netloc.rsplit('@', 1)[-1].partition(':')
        return host or '127.0.0.1', int(port or 6379)

    def _write_shared_files(self) -> None:
        childproc.write_tenant_files(
            self.dir, [f'http://127.0.0.1:{self.consumer_port}/t{t}'
                       for t in range(self.tenants)], self.vms)

    @property
    def coordinated(self) -> bool:
        return self.coordination.get('backend_url', True) != ''

    def _write_member_conf(self, member: Member) -> None:
        assert self.nova is not None
        state = os.path.join(self.dir, f'state-{member.index}')
        os.makedirs(state, exist_ok=True)
        coordination = {
            'backend_url': f'redis://127.0.0.1:{member.proxy.port}',
            'group': self.group,
            'member_secret': self.member_secret,
            **self.coordination}
        lines = [
            '[DEFAULT]',
            f'transport_url = {self.transport_url}',
            f'control_exchange = {self.exchange}',
            f'state_path = {state}',
            f'pipeline_cfg_file = {self.dir}/pipeline.yaml',
            '[inspector]',
            'host = 127.0.0.1',
            f'port = {member.port}',
            'transformers = doctor',
            f'notification_topics = {self.topic}',
            f'notification_pool = {self.pool}',
            f'topology_file = {self.dir}/topology.yaml',
            'instance_events = false',
            'controller = nova',
            f'shared_secret = {self.secret}',
            'rate_limit = 0',
            '[nova]',
            'auth_type = none',
            f'endpoint_override = {self.nova.compute_url}',
            '[alarms]',
            f'definitions_file = {self.dir}/alarms.yaml',
            'reload_interval = 0',
            '[delivery]',
            f'connection = {self.database.url}',
            f'owner = ctl-{member.index}',
            'retry_initial_interval = 0.2',
            'retry_max_interval = 1.0',
            'poll_interval = 0.5',
            '[notifier]',
            'webhook_max_retries = 0',
            'webhook_timeout = 2.0',
            '[coordination]',
            *(f'{k} = {v}' for k, v in coordination.items()),
        ]
        with open(member.conf_file, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    # What the group says.

    def _coordinator(self) -> typing.Any:
        """An observer of the group, as ``doctor-plugin status`` reads it."""
        from doctor_plugin.coordination import membership

        if self._observer is None:
            self._observer = membership.make_coordinator(
                self.redis_url, f'observer-{self.run_id}', 2.0, 1.0,
                self.group)
            self._observer.start(start_heart=False)
        return self._observer

    def group_members(self) -> set[str]:
        """The members of the group, as Redis has them now."""
        from doctor_plugin.coordination import membership

        return set(membership.read_group(
            self._coordinator(), f'{self.group}.inspector', 2.0))

    def wait_group(self, size: int, timeout: float = 30.0,
                   without: typing.Collection[str] = ()) -> set[str]:
        """Wait for ``size`` members, none of ``without``, in one view.

        Each of them must hold a lease and see ``size`` members (its
        ``/healthz``), so that every member routes hosts the same way.

        :raises AssertionError: with the members found and the logs
        """
        end = time.monotonic() + timeout
        found: set[str] = set()
        while time.monotonic() < end:
            found = self.group_members()
            if (len(found) == size and not found & set(without)
                    and all(m.sees(size) for m in self.members
                            if m.id in found)):
                return found
            time.sleep(0.05)
        raise AssertionError(
            f'the group has {sorted(found)}, not {size} members without '
            f'{sorted(without)}; logs:\n' + '\n'.join(
                m.log() for m in self.members))

    def owner_of(self, host: str,
                 members: typing.Iterable[str] | None = None) -> Member:
        """The member the ring gives ``host`` to, as members compute it."""
        from doctor_plugin.coordination import membership

        ids = members if members is not None else self.group_members()
        owner = membership.View.of(
            {i: membership.Member(i) for i in ids}).owner_id(host)
        return next(m for m in self.members if m.id == owner)

    # Faults.

    def report(self, host: str, member: Member, event_id: str | None = None,
               status: str = 'down', timeout: float = 10.0
               ) -> requests.Response:
        """PUT Doctor's report of ``host`` to ``member``'s API."""
        body = [{
            'id': event_id or uuid.uuid4().hex,
            'time': datetime.datetime.now(datetime.timezone.utc).replace(
                tzinfo=None).isoformat(),
            'type': 'compute.host.down',
            'details': {'hostname': host, 'status': status,
                        'monitor': 'ha-test',
                        'monitor_event_id': event_id or uuid.uuid4().hex}}]
        return self._session.put(f'{member.url}/events', json=body,
                                 headers={'X-Auth-Token': self.secret},
                                 timeout=timeout)

    def force_downs(self) -> collections.Counter[str]:
        """How many times Nova was asked to force each host down."""
        assert self.nova is not None
        return self.nova.force_downs()

    def fixed_up_twice(self) -> list[str]:
        return sorted(h for h, n in self.force_downs().items() if n > 1)

    # Tear-down.

    def stop(self) -> None:
        for member in self.members:
            member.terminate()
        for member in self.members:
            member.stop()
            member.proxy.stop()
        self.stop_consumer()
        if self.nova is not None:
            self.nova.stop()
        self._session.close()
        if self._observer is not None:
            with contextlib.suppress(Exception):
                self._observer.stop()
        with contextlib.suppress(Exception):
            self.database.drop()
        with contextlib.suppress(Exception):
            broker.delete_queues(
                self.transport_url,
                broker.listener_queue_names([self.topic]) + [self.pool])
        messaging.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
