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

"""A monitor that probes hosts' management addresses with TCP connects.

Every ``interval`` seconds one non-blocking ``connect()`` is started to each
watched host's ``address:port`` and all of them are awaited together in one
``selectors`` loop, so hundreds of hosts cost one thread. A probe that is
refused, unreachable or not connected within ``interval`` is a miss;
``miss_count`` consecutive misses make the host down, the next successful
probe makes it up again. Each change is reported once.

Probe connections are closed with a reset (``SO_LINGER`` 0) rather than a
FIN: thousands of probes a second would otherwise fill the monitor host with
``TIME_WAIT`` sockets and exhaust its ephemeral ports.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import selectors
import socket
import struct
import threading
import time

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import profiler
from doctor_plugin import exceptions
from doctor_plugin.monitors import base

LOG = logging.getLogger(__name__)

GROUP = 'monitor'

OPTS = [
    cfg.ListOpt('hosts',
                default=[],
                help='The hosts to watch, as hostname=address:port entries: '
                     'the compute host\'s name as Nova knows it, and a TCP '
                     'port that answers on its management address, e.g. '
                     'compute-1=192.0.2.11:22,compute-2=[2001:db8::12]:22. '
                     'Every probe is a connection to that port, so pick a '
                     'listener that tolerates frequent connects.'),
    cfg.FloatOpt('interval',
                 default=0.1,
                 min=0.005,
                 help='Seconds between two probes of a host; a probe that '
                      'has not connected within this time is a miss.'),
    cfg.IntOpt('miss_count',
               default=2,
               min=1,
               help='Consecutive missed probes after which a host is '
                    'reported down. Detection takes at most '
                    'interval × miss_count seconds.'),
    cfg.FloatOpt('startup_grace',
                 min=0.0,
                 help='Seconds after the monitor starts during which no host '
                      'is reported down, so that restarting the monitor '
                      'does not report hosts it could not reach yet. Hosts '
                      'still unreachable afterwards are reported then. '
                      'Defaults to twice the detection time '
                      '(2 × interval × miss_count), at least 1 second.'),
]

HOSTS_OPTION = '[monitor] hosts'
_HOSTS_SYNTAX = ('hostname=address:port, e.g. compute-1=192.0.2.11:22 or '
                 'compute-1=[2001:db8::11]:22 (IPv6 addresses in brackets)')
_HOSTS_FORMAT = f'expected {_HOSTS_SYNTAX}'

#: connect() errors that say this machine, not the watched host, is in
#: trouble; a probe failing with one of them is neither a hit nor a miss.
_LOCAL_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                           errno.ENOMEM, errno.EADDRNOTAVAIL})
_LINGER_RESET = struct.pack('ii', 1, 0)


def parse_host(entry: str) -> tuple[str, str, int]:
    """Split one ``hostname=address:port`` entry.

    :returns: ``(hostname, address, port)``; an IPv6 address is returned
        without its brackets
    :raises ConfigurationError: if the entry is malformed
    """
    def bad(problem: str) -> exceptions.ConfigurationError:
        return exceptions.ConfigurationError(HOSTS_OPTION, entry, problem)

    hostname, sep, target = (part.strip() for part in entry.partition('='))
    if not sep or not hostname or not target:
        raise bad(_HOSTS_FORMAT)
    if any(c.isspace() for c in hostname):
        raise bad(f'hostname {hostname!r} contains whitespace; '
                  f'{_HOSTS_FORMAT}')
    if target.startswith('['):
        address, bracket, rest = target[1:].partition(']')
        if not bracket or not rest.startswith(':'):
            raise bad(_HOSTS_FORMAT)
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(address.split('%', 1)[0])
        except ValueError:
            raise bad(f'{address!r} in brackets is not an IPv6 address; '
                      f'{_HOSTS_FORMAT}') from None
    else:
        address, colon, port_text = target.rpartition(':')
        if not colon or not address:
            raise bad(f'no port given; {_HOSTS_FORMAT}')
        if ':' in address:
            raise bad(f'put the IPv6 address in brackets; {_HOSTS_FORMAT}')
    try:
        port = int(port_text)
    except ValueError:
        raise bad(f'port {port_text!r} is not a number; '
                  f'{_HOSTS_FORMAT}') from None
    if not 0 < port < 65536:
        raise bad(f'port {port} is not between 1 and 65535; {_HOSTS_FORMAT}')
    return hostname, address, port


@dataclasses.dataclass(slots=True)
class WatchedHost:
    """One host being probed, and what the probes said so far.

    ``state`` is ``None`` until the first probe decides it; only changes
    from ``down`` to ``up`` and from anything to ``down`` are reported.
    """

    hostname: str
    address: str
    port: int
    family: int
    sockaddr: tuple
    misses: int = 0
    state: str | None = None
    last_error: str = ''
    #: Wall-clock time of the last successful probe (0: none yet).
    last_ok: float = 0.0

    @property
    def target(self) -> str:
        """``address:port`` as written in configuration."""
        if ':' in self.address:
            return f'[{self.address}]:{self.port}'
        return f'{self.address}:{self.port}'

    def observe(self, ok: bool, miss_count: int,
                may_report_down: bool) -> str | None:
        """Account for one probe; return the new state if it is reported."""
        if ok:
            self.misses = 0
            previous, self.state = self.state, 'up'
            return 'up' if previous == 'down' else None
        self.misses += 1
        if (self.misses >= miss_count and self.state != 'down'
                and may_report_down):
            self.state = 'down'
            return 'down'
        return None


def resolve(source: str, entry: str, hostname: str, address: str,
            port: int) -> WatchedHost:
    """Resolve ``address`` once, so that probes never wait on DNS."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise exceptions.ConfigurationError(
            source, entry,
            f'cannot resolve {address!r}: {exc}; give an IP address or a '
            f'name this machine resolves') from None
    family, _type, _proto, _name, sockaddr = infos[0]
    return WatchedHost(hostname, address, port, family, sockaddr)


def _socket(key: selectors.SelectorKey) -> socket.socket:
    """The probe socket of a selector key (only sockets are registered)."""
    sock = key.fileobj
    assert isinstance(sock, socket.socket)
    return sock


class TCPMonitor(base.MonitorBase):
    """Report hosts whose management address stops accepting connections.

    :param conf: configuration with the ``[monitor]`` options of this module
    :param reporter: called once per state change, from a worker thread
    :param hosts: hosts to watch as ``{hostname: (address, port)}``;
        replaces ``[monitor] hosts`` when given
    :param timeline: where detection (T01) is marked; a timeline of the
        monitor's own by default
    :raises ConfigurationError: if a host entry is malformed or
        unresolvable, or there is no host to watch
    """

    name = 'tcp'

    def __init__(self, conf: cfg.ConfigOpts, reporter: base.Reporter,
                 hosts: dict[str, tuple[str, int]] | None = None,
                 timeline: profiler.Timeline | None = None) -> None:
        super().__init__(conf, reporter)
        self.interval: float = conf.monitor.interval
        self.miss_count: int = conf.monitor.miss_count
        grace = conf.monitor.startup_grace
        self.startup_grace: float = (
            max(1.0, 2 * self.interval * self.miss_count)
            if grace is None else grace)
        self.timeline = profiler.Timeline() if timeline is None else timeline
        #: ``[monitor] monitor_id``, in every report.
        self.monitor_id = base.monitor_id(conf)
        if hosts is None:
            self.hosts = self._hosts_from_conf(conf.monitor.hosts)
        else:
            self.hosts = self._hosts_from_mapping(hosts)
        if not self.hosts:
            raise exceptions.ConfigurationError(
                HOSTS_OPTION, None,
                f'no hosts to watch; list them as {_HOSTS_SYNTAX}')
        self._reports: base.ReportQueue | None = None
        self._grace_ends = 0.0

    @staticmethod
    def _hosts_from_conf(entries: list[str]) -> dict[str, WatchedHost]:
        hosts: dict[str, WatchedHost] = {}
        for entry in entries:
            hostname, address, port = parse_host(entry)
            if hostname in hosts:
                raise exceptions.ConfigurationError(
                    HOSTS_OPTION, entry,
                    f'host {hostname!r} is listed more than once')
            hosts[hostname] = resolve(HOSTS_OPTION, entry, hostname,
                                      address, port)
        return hosts

    @staticmethod
    def _hosts_from_mapping(
            mapping: dict[str, tuple[str, int]]) -> dict[str, WatchedHost]:
        hosts: dict[str, WatchedHost] = {}
        for hostname, (address, port) in mapping.items():
            entry = f'{hostname}=({address!r}, {port!r})'
            if not isinstance(port, int) or not 0 < port < 65536:
                raise exceptions.ConfigurationError(
                    'TCPMonitor hosts', entry,
                    'port must be an integer between 1 and 65535')
            hosts[hostname] = resolve('TCPMonitor hosts', entry, hostname,
                                      address.strip('[]'), port)
        return hosts

    def run(self, stop: threading.Event) -> None:
        """Probe every ``interval`` seconds until ``stop`` is set."""
        self._reports = base.ReportQueue(self.reporter,
                                         'doctor-tcp-monitor-reporter')
        started = time.monotonic()
        self._grace_ends = started + self.startup_grace
        LOG.info('Watching %(count)d host(s) by TCP connect every '
                 '%(interval)s s; down after %(misses)d missed probes; '
                 'no down reports for the first %(grace)s s',
                 {'count': len(self.hosts), 'interval': self.interval,
                  'misses': self.miss_count, 'grace': self.startup_grace})
        try:
            with selectors.DefaultSelector() as selector:
                next_round = started
                while not stop.is_set():
                    deadline = next_round + self.interval
                    self._probe_round(selector, deadline)
                    next_round = deadline
                    now = time.monotonic()
                    if next_round < now:
                        # Fell behind (suspended process, overloaded CPU):
                        # skip the rounds missed rather than burst them.
                        next_round = now
                    stop.wait(next_round - now)
        finally:
            self._reports.close(self.interval)

    def _probe_round(self, selector: selectors.BaseSelector,
                     deadline: float) -> None:
        """Probe every host once; a probe pending at ``deadline`` missed."""
        for host in self.hosts.values():
            self._start_probe(selector, host)
        try:
            while selector.get_map():
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                for key, _events in selector.select(timeout):
                    sock = _socket(key)
                    error = sock.getsockopt(socket.SOL_SOCKET,
                                            socket.SO_ERROR)
                    self._end_probe(selector, sock)
                    self._observe(key.data, error)
        finally:
            # Connects the kernel completed while this process was held
            # up (a loaded CPU) are answers, not misses: take them first.
            if selector.get_map():
                for key, _events in selector.select(0):
                    sock = _socket(key)
                    error = sock.getsockopt(socket.SOL_SOCKET,
                                            socket.SO_ERROR)
                    self._end_probe(selector, sock)
                    self._observe(key.data, error)
            for key in list(selector.get_map().values()):
                self._end_probe(selector, _socket(key))
                self._observe(key.data, errno.ETIMEDOUT)

    def _start_probe(self, selector: selectors.BaseSelector,
                     host: WatchedHost) -> None:
        try:
            sock = socket.socket(host.family, socket.SOCK_STREAM)
        except OSError as exc:
            self._observe(host, exc.errno or errno.ENOMEM)
            return
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            _LINGER_RESET)
            error = sock.connect_ex(host.sockaddr)
        except OSError as exc:
            error = exc.errno or errno.EINVAL
        if error == errno.EINPROGRESS:
            selector.register(sock, selectors.EVENT_WRITE, host)
            return
        sock.close()
        self._observe(host, error)

    @staticmethod
    def _end_probe(selector: selectors.BaseSelector,
                   sock: socket.socket) -> None:
        selector.unregister(sock)
        sock.close()

    def _observe(self, host: WatchedHost, error: int) -> None:
        """Account for one probe of ``host``; report a state change."""
        if error in _LOCAL_ERRORS:
            LOG.warning('Cannot probe host %(host)s at %(target)s: '
                        '%(error)s; this machine is short of resources, '
                        'the probe is not counted',
                        {'host': host.hostname, 'target': host.target,
                         'error': os.strerror(error)})
            return
        if error:
            host.last_error = os.strerror(error)
        else:
            host.last_ok = time.time()
        status = host.observe(error == 0, self.miss_count,
                              time.monotonic() >= self._grace_ends)
        if status is None:
            return
        report = base.FaultReport(host.hostname, status, monitor=self.name,
                                  detected_at=time.time(),
                                  monitor_id=self.monitor_id)
        self.timeline.mark(report.monitor_event_id, 'T01',
                           report.detected_at)
        if status == 'down' and host.last_ok:
            # The last sign of life: the fault came after it.
            self.timeline.mark(report.monitor_event_id, 'T00', host.last_ok)
        if status == 'down':
            LOG.warning('Host %(host)s is down: %(misses)d consecutive '
                        'probes of %(target)s failed, last with '
                        '"%(error)s" (event %(id)s)',
                        {'host': host.hostname, 'misses': host.misses,
                         'target': host.target, 'error': host.last_error,
                         'id': report.monitor_event_id})
        else:
            LOG.info('Host %(host)s is up again: %(target)s accepts '
                     'connections (event %(id)s)',
                     {'host': host.hostname, 'target': host.target,
                      'id': report.monitor_event_id})
        assert self._reports is not None, 'only while run() runs'
        self._reports.put(report)
