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

"""A Doctor site on network namespaces: hosts, monitors, one inspector.

:class:`Site` lays out, on a :class:`~doctor_plugin.testing.netns.Testbed`,
what an operator runs:

- each compute host in a namespace of its own, on every plane
  (management and tenant by default), running ``doctor-plugin-heartbeat``
  towards every monitor on every plane;
- each monitor in a namespace of its own, on every plane, running
  ``doctor-plugin-monitor`` with the heartbeat driver: it listens on every
  plane, probes its peers over management, and reports to the inspector;
- the inspector in a namespace of its own, on management, running
  ``doctor-plugin-inspector`` with k-of-n corroboration. It reaches the
  real RabbitMQ, a Nova stand-in and the tenants' webhook receiver on the
  root namespace's loopback through the testbed's forwards.

Faults are injected as OPNFV Doctor injects them: links set down in a
namespace, and packet loss (``tc``). What the inspector decided is read
off the bus: it publishes every event it emits on a topic of the site's
own, which :class:`BusLog` records with its arrival time, so a test or a
benchmark can tell when a host was declared down, and count the false
ones. The Nova stand-in counts the force-downs (fix-ups), the receiver the
tenants' alarms.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import typing
import uuid

from oslo_config import cfg
import oslo_messaging
import yaml

from doctor_plugin.common import messaging
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.testing import bmc as bmc_mod
from doctor_plugin.testing import broker
from doctor_plugin.testing import childproc
from doctor_plugin.testing import cluster as cluster_mod
from doctor_plugin.testing import consumer as consumer_mod
from doctor_plugin.testing import netns
from doctor_plugin.testing import nova as nova_mod
from doctor_plugin.testing import poll
from doctor_plugin.testing import services

PLANES = ('management', 'tenant')
MANAGEMENT = PLANES[0]
INSPECTOR_PORT = 12345
HEARTBEAT_PORT = 12346
PROBE_PORT = 12347
#: The IPMI port of the first host's BMC; the others' follow.
BMC_PORT = 6230

#: The real-time priority (SCHED_RR) of the agents and monitors: above
#: every normal process, below the kernel's threads (50).
REALTIME_PRIORITY = 40

#: How long the services of a site may take to start, in seconds.
START_TIMEOUT = 60.0

#: What a monitor logs once it watches (see HeartbeatMonitor.run).
_WATCHING = 'Watching heartbeats on'

Options = typing.Mapping[str, typing.Mapping[str, typing.Any]]


class Decision(typing.NamedTuple):
    """One event the inspector published, as the bus brought it."""

    event_type: str
    traits: dict[str, typing.Any]
    #: time.time() of its arrival here
    at: float

    @property
    def host(self) -> str | None:
        return self.traits.get('host')

    @property
    def confirmed_at(self) -> float | None:
        """When the inspector confirmed the failure (``time.time()``).

        The ``confirmed_at`` trait of a corroborated ``compute.host.down``
        (naive UTC); None for other events.
        """
        text = self.traits.get('confirmed_at')
        if not text:
            return None
        when = event_model.parse_datetime(str(text))
        return when.replace(tzinfo=datetime.timezone.utc).timestamp()

    @property
    def tenant(self) -> bool:
        """Whether it is a tenant's copy (fan-out), not the host event."""
        return 'project_id' in self.traits


class BusLog:
    """Every event the inspector publishes on ``topic``, as it arrives."""

    def __init__(self, transport: oslo_messaging.Transport,
                 topic: str) -> None:
        self.cond = threading.Condition()
        self.decisions: list[Decision] = []
        self._tap = broker.EventTap(transport, topic, self._received)

    def _received(self, events: list[dict[str, typing.Any]],
                  at: float) -> None:
        with self.cond:
            self.decisions.extend(
                Decision(str(ev.get('event_type')), broker.traits_of(ev), at)
                for ev in events)
            self.cond.notify_all()

    def select(self, event_type: str | None = None,
               host: str | None = None, since: float = 0.0,
               tenants: bool = False) -> list[Decision]:
        """The host events (not tenants' copies) that match."""
        with self.cond:
            return [d for d in self.decisions
                    if (event_type is None or d.event_type == event_type)
                    and (host is None or d.host == host)
                    and d.at >= since and d.tenant == tenants]

    def wait(self, event_type: str, host: str | None = None,
             since: float = 0.0, timeout: float = 10.0,
             **traits: typing.Any) -> Decision | None:
        """The first matching host event since ``since``; None on timeout.

        Woken by each arrival, so a latency measured with it is not a
        polling interval.
        """
        def found() -> Decision | None:
            for d in self.select(event_type, host, since):
                if all(d.traits.get(k) == v for k, v in traits.items()):
                    return d
            return None

        with self.cond:
            self.cond.wait_for(lambda: found() is not None, timeout)
        return found()

    def start(self) -> BusLog:
        self._tap.start()
        return self

    def stop(self) -> None:
        self._tap.stop()


def _ini(sections: Options) -> str:
    lines = []
    for group, values in sections.items():
        lines.append(f'[{group}]')
        lines.extend(f'{key} = {value}' for key, value in values.items())
    return '\n'.join(lines) + '\n'


def _merge(base: dict[str, dict[str, typing.Any]],
           extra: Options | None) -> dict[str, dict[str, typing.Any]]:
    for group, values in (extra or {}).items():
        base.setdefault(group, {}).update(values)
    return base


class Site:
    """Hosts, monitors and an inspector in namespaces; see the module.

    :param hosts: compute hosts, ``compute-<i>``
    :param monitors: monitors (n), ``mon-<i>``, each watching every host
    :param required_reports: k
    :param tenants: tenants, each with an alarm on ``compute.host.down``;
        host i carries ``vms_per_host`` VMs of tenants i, i + 1, ...
    :param inspector_options: further ``{group: {option: value}}`` of the
        inspector
    :param monitor_options: further options of every monitor
    :param fencing: ``[fencing] on_failure`` (``skip_fixup`` or
        ``wait``) to fence failed hosts through IPMI, each host's BMC a
        stand-in served from a namespace of its own (``bmc``); None: no
        fencing
    :param bmc_credentials_ok: give the inspector the BMCs' password
        (else a wrong one)
    :param realtime: run the agents and the monitors at real-time
        priority (``chrt --rr``), as heartbeat daemons are deployed (see
        the monitoring guide): otherwise a loaded machine delays their
        heartbeats, on every monitor at once
    """

    def __init__(self, hosts: int = 3, monitors: int = 3,
                 required_reports: int = 2,
                 planes: typing.Sequence[str] = PLANES,
                 tenants: int = 2, vms_per_host: int = 2,
                 inspector_options: Options | None = None,
                 monitor_options: Options | None = None,
                 fencing: str | None = None,
                 bmc_credentials_ok: bool = True,
                 realtime: bool = True,
                 transport_url: str = services.TRANSPORT_URL) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.dir = tempfile.mkdtemp(prefix=f'doctor-site-{self.run_id}-')
        self.planes = tuple(planes)
        self.required_reports = required_reports
        self.host_names = [f'compute-{i}' for i in range(hosts)]
        self.monitor_names = [f'mon-{i}' for i in range(monitors)]
        self.tenants = tenants
        self.vms = {host: [(f'vm-{i}-{j}', f'tenant-{(i + j) % tenants}')
                           for j in range(vms_per_host)]
                    for i, host in enumerate(self.host_names)}
        self.inspector_options = inspector_options
        self.monitor_options = monitor_options
        self.realtime = realtime
        self.fencing = fencing
        self.bmc: bmc_mod.BmcProcess | None = None
        self.bmc_password = secrets.token_hex(8)
        self.bmc_credentials_ok = bmc_credentials_ok
        self.transport_url = transport_url
        self.topic = f'doctor-site-{self.run_id}'
        self.exchange = f'doctor-site-{self.run_id}'
        self.secret = secrets.token_hex(16)
        self.heartbeat_key = secrets.token_hex(16)
        self.alarms = cluster_mod.Alarms()
        self.testbed = netns.Testbed(self.planes)
        self.nova: nova_mod.NovaStandIn | None = None
        self.consumer: consumer_mod.ConsumerServer | None = None
        self.bus: BusLog | None = None
        self._transport: oslo_messaging.Transport | None = None
        self.nodes: dict[str, netns.Node] = {}
        #: name -> its process (hosts' agents, monitors, the inspector)
        self.processes: dict[str, typing.Any] = {}
        self._logs: list[typing.IO] = []
        #: Keep the directory (configuration, logs) at stop.
        self.keep = False

    # Set-up.

    def start(self) -> Site:
        try:
            self._start()
        except BaseException:
            # The logs say why: keep them.
            self.keep = True
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.testbed.start()
        self.consumer = consumer_mod.ConsumerServer(
            on_alarm=self.alarms, keep=False).start()
        self.nova = nova_mod.NovaStandIn().start()
        self.nova.add_servers([(vm, tenant, host, vm)
                               for host, vms in self.vms.items()
                               for vm, tenant in vms])
        conf = cfg.ConfigOpts()
        conf([], project='doctor_plugin', default_config_files=[])
        self._transport = messaging.get_transport(conf, self.transport_url)
        self.bus = BusLog(self._transport, self.topic).start()
        inspector = self.testbed.add_node('inspector', (MANAGEMENT,))
        self.nodes['inspector'] = inspector
        for name in self.monitor_names + self.host_names:
            self.nodes[name] = self.testbed.add_node(name, self.planes)
        if self.fencing:
            self._start_bmcs()
        for port in (services.address(self.transport_url, 5672)[1],
                     services.address(self.nova.url, 80)[1],
                     self.consumer.server_port):
            inspector.forward_loopback(port)
        self._write_inspector_files()
        self._start_inspector()
        for name in self.host_names:
            self._start_agent(name)
        for name in self.monitor_names:
            self._start_monitor(name)
        self._wait_monitors()

    @property
    def inspector(self) -> netns.Node:
        return self.nodes['inspector']

    @property
    def inspector_url(self) -> str:
        return (f'http://{self.inspector.address(MANAGEMENT)}:'
                f'{INSPECTOR_PORT}')

    def bmc_port(self, host: str) -> int:
        """The IPMI port of ``host``'s BMC (on the ``bmc`` node)."""
        return BMC_PORT + self.host_names.index(host)

    def _start_bmcs(self) -> None:
        """One BMC per host, on the management plane, and the BMC file."""
        node = self.testbed.add_node('bmc', (MANAGEMENT,))
        self.nodes['bmc'] = node
        address = node.address(MANAGEMENT)
        self.bmc = bmc_mod.BmcProcess(
            [self.bmc_port(h) for h in self.host_names],
            username='doctor', password=self.bmc_password, address=address,
            prefix=['ip', 'netns', 'exec', node.namespace]).start()
        with open(os.path.join(self.dir, 'bmcs.yaml'), 'w') as f:
            yaml.safe_dump({'hosts': {
                host: {'address': address, 'port': self.bmc_port(host),
                       'username': 'doctor',
                       'password': (self.bmc_password
                                    if self.bmc_credentials_ok
                                    else 'not-' + self.bmc_password)}
                for host in self.host_names}}, f)

    def _write_inspector_files(self) -> None:
        assert self.consumer is not None
        childproc.write_tenant_files(
            self.dir, [f'{self.consumer.url}/t{t}'
                       for t in range(self.tenants)], self.vms)
        # Everything the inspector emits also goes on the site's topic.
        with open(os.path.join(self.dir, 'pipeline.yaml'), 'w') as f:
            f.write(
                'sources:\n'
                '  - name: faults\n'
                "    events: ['compute.host.*']\n"
                '    sinks: [tenants]\n'
                '  - name: all\n'
                "    events: ['*']\n"
                '    sinks: [observed]\n'
                'sinks:\n'
                '  - name: tenants\n'
                "    notifiers: ['alarms://']\n"
                '  - name: observed\n'
                f"    notifiers: ['messaging://?topic={self.topic}"
                "&notification_topic=']\n")

    def _conf_file(self, name: str, sections: Options) -> str:
        path = os.path.join(self.dir, f'{name}.conf')
        with open(path, 'w') as f:
            f.write(_ini(sections))
        return path

    def _log(self, name: str) -> typing.IO:
        log = open(os.path.join(self.dir, f'{name}.log'), 'w')
        self._logs.append(log)
        return log

    def log_of(self, name: str, lines: int = 30) -> str:
        """The end of the log of ``name``'s process."""
        return childproc.log_tail(os.path.join(self.dir, f'{name}.log'),
                                  lines)

    def _start_inspector(self) -> None:
        assert self.nova is not None
        state = os.path.join(self.dir, 'state')
        os.makedirs(state, exist_ok=True)
        sections = _merge({
            'DEFAULT': {
                'transport_url': self.transport_url,
                'control_exchange': self.exchange,
                'state_path': state,
                'pipeline_cfg_file': f'{self.dir}/pipeline.yaml'},
            'inspector': {
                'host': self.inspector.address(MANAGEMENT),
                'port': INSPECTOR_PORT,
                'transformers': 'doctor',
                'enable_notification_listener': 'false',
                'topology_file': f'{self.dir}/topology.yaml',
                'instance_events': 'false',
                'controller': 'nova',
                'shared_secret': self.secret,
                'rate_limit': 0},
            'detection': {
                'required_reports': self.required_reports,
                'monitors_per_host': len(self.monitor_names)},
            'nova': {
                'auth_type': 'none',
                'endpoint_override': self.nova.compute_url},
            'alarms': {
                'definitions_file': f'{self.dir}/alarms.yaml',
                'reload_interval': 0},
            'notifier': {'webhook_max_retries': 0,
                         'webhook_timeout': 2.0},
        }, self.inspector_options)
        if self.fencing:
            sections = _merge({'fencing': {
                'driver': 'ipmi', 'on_failure': self.fencing,
                'bmc_file': f'{self.dir}/bmcs.yaml'}}, sections)
        path = self._conf_file('inspector', sections)
        proc = self.inspector.popen(
            childproc.console('inspector',
                              '--config-file', path),
            stdout=self._log('inspector'), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        self.processes['inspector'] = proc
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise exceptions.DoctorPluginError(
                    f'the inspector exited with {proc.returncode} at '
                    f'start (logs in {self.dir}): '
                    f'{self.log_of("inspector")}')
            if self.inspector_status() == 200:
                return
            time.sleep(0.1)
        raise exceptions.DoctorPluginError(
            f'the inspector did not answer within {START_TIMEOUT:g} s: '
            f'{self.log_of("inspector")}')

    def inspector_status(self) -> int | None:
        """The status of the inspector's /healthz, asked from its node."""
        sock = self.inspector.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(1.0)
            sock.connect((self.inspector.address(MANAGEMENT),
                          INSPECTOR_PORT))
            sock.sendall(b'GET /healthz HTTP/1.0\r\n\r\n')
            head = sock.recv(64).split(b' ', 2)
            return int(head[1]) if len(head) > 1 else None
        except (OSError, ValueError):
            return None
        finally:
            sock.close()

    def _start_agent(self, host: str) -> None:
        node = self.nodes[host]
        detectors = ','.join(
            f'{self.nodes[m].address(plane)}:{HEARTBEAT_PORT}'
            for m in self.monitor_names for plane in self.planes)
        path = self._conf_file(host, {
            'heartbeat': {'hostname': host, 'detectors': detectors,
                          'key': self.heartbeat_key}})
        self.processes[host] = node.popen(
            self._priority() + childproc.console(
                'heartbeat', '--config-file', path),
            stdout=self._log(host), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

    def _start_monitor(self, name: str) -> None:
        node = self.nodes[name]
        peers = ','.join(f'{self.nodes[m].address(MANAGEMENT)}:{PROBE_PORT}'
                         for m in self.monitor_names if m != name)
        planes = ','.join(f'{plane}={node.address(plane)}:{HEARTBEAT_PORT}'
                          for plane in self.planes)
        sections = _merge({
            'monitor': {
                'driver': 'heartbeat',
                'monitor_id': name,
                'inspector_url': f'{self.inspector_url}/events',
                'inspector_secret': self.secret},
            'heartbeat': {
                'planes': planes,
                'peers': peers,
                'probe_listen': f'{node.address(MANAGEMENT)}:{PROBE_PORT}',
                'key': self.heartbeat_key},
        }, self.monitor_options)
        path = self._conf_file(name, sections)
        self.processes[name] = node.popen(
            self._priority() + childproc.console(
                'monitor', '--config-file', path),
            stdout=self._log(name), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

    def _priority(self) -> list[str]:
        """The command prefix of a time-critical process."""
        return ['chrt', '--rr', str(REALTIME_PRIORITY)] if self.realtime \
            else []

    def _wait_monitors(self) -> None:
        """Until every monitor watches, and is past its start-up grace."""
        end = time.monotonic() + START_TIMEOUT
        waiting = set(self.monitor_names)
        while waiting and time.monotonic() < end:
            for name in list(waiting):
                proc = self.processes[name]
                if proc.poll() is not None:
                    raise exceptions.DoctorPluginError(
                        f'monitor {name} exited with {proc.returncode} at '
                        f'start: {self.log_of(name)}')
                if _WATCHING in self.log_of(name, 200):
                    waiting.discard(name)
            time.sleep(0.1)
        if waiting:
            raise exceptions.DoctorPluginError(
                f'monitor(s) {", ".join(sorted(waiting))} did not start '
                f'within {START_TIMEOUT:g} s')
        # The grace period (1 s by default), and a second of heartbeats.
        time.sleep(2.0)

    # Faults.

    def fail_host(self, host: str) -> float:
        """The host dies: every link of its namespace down; T00."""
        return self.nodes[host].cut_off()

    def recover_host(self, host: str) -> None:
        self.nodes[host].restore()

    def kill(self, name: str) -> None:
        """SIGKILL ``name``'s process (a monitor that dies)."""
        proc = self.processes[name]
        proc.kill()
        proc.wait(10)

    # What happened.

    def force_downs(self) -> int:
        """How many times Nova was asked to force a host down."""
        assert self.nova is not None
        return sum(self.nova.force_downs().values())

    def wait_force_downs(self, count: int, timeout: float) -> bool:
        """Whether Nova was asked ``count`` force-downs within ``timeout``."""
        return poll.wait_until(lambda: self.force_downs() >= count,
                               timeout)

    def tenant_alarms(self) -> int:
        with self.alarms.lock:
            return self.alarms.deliveries

    def false_downs(self, since: float = 0.0) -> list[Decision]:
        """Host-down decisions since ``since`` (none is due in a soak)."""
        assert self.bus is not None
        return self.bus.select('compute.host.down', since=since)

    # Tear-down.

    def stop(self) -> None:
        if self.bmc is not None:
            with contextlib.suppress(Exception):
                self.bmc.stop()
        with contextlib.suppress(Exception):
            self.testbed.close()
        if self.bus is not None:
            with contextlib.suppress(Exception):
                self.bus.stop()
        with contextlib.suppress(Exception):
            broker.delete_queues(self.transport_url,
                                 broker.listener_queue_names([self.topic]))
        if self.consumer is not None:
            self.consumer.stop()
        if self.nova is not None:
            self.nova.stop()
        for log in self._logs:
            log.close()
        if self.keep or os.environ.get('DOCTOR_PLUGIN_KEEP_SITE'):
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc: typing.Any) -> None:
        self.stop()
