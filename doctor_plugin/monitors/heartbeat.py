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

"""Heartbeats: a small agent on each compute host, a detector that watches.

The agent (``doctor-plugin-heartbeat``) sends a UDP datagram every
``[heartbeat] interval`` (50 ms by default) to the detector: the host's
name, a sequence number, the agent's boot id, its send time and, with
``[heartbeat] key`` set, an HMAC-SHA256 over all of it. The detector (the
``heartbeat`` monitor of ``doctor-plugin-monitor``) declares a host down
when nothing valid came from it for ``miss_count`` intervals, and up again
at its next heartbeat.

Detection is driven by time, not by the next packet: every host sits in
one slot of a timer wheel (ticks of a quarter interval) at its deadline,
so a tick looks only at the hosts due then, and a heartbeat only updates
the host's last-seen time (the host moves on when its slot comes up). The
socket is drained before any host is declared down, so that the detector
falling behind itself (a loaded CPU) is never taken for silence; and for
``startup_grace`` after the detector starts no host is declared down, so
that restarting it does not report every host.

A datagram that does not parse, is unsigned or wrongly signed when a key
is set, or repeats an older sequence number of the same boot (a replay) is
counted and dropped.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import select
import socket
import struct
import threading
import time
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import profiler
from doctor_plugin import exceptions
from doctor_plugin.monitors import base

LOG = logging.getLogger(__name__)

GROUP = 'heartbeat'

OPTS = [
    cfg.StrOpt('listen',
               default='0.0.0.0:12346',
               help='Detector: address:port the heartbeats are received on '
                    '(IPv6 in brackets).'),
    cfg.ListOpt('detectors',
                default=['127.0.0.1:12346'],
                help='Agent: address:port of each detector to send the '
                     'heartbeats to.'),
    cfg.StrOpt('hostname',
               help='Agent: the host name to announce, as Nova knows the '
                    'compute host; this machine\'s host name by default.'),
    cfg.FloatOpt('interval',
                 default=0.05, min=0.005,
                 help='Seconds between two heartbeats of an agent; the '
                      'detector uses the same value.'),
    cfg.IntOpt('miss_count',
               default=2, min=1,
               help='Detector: intervals without a heartbeat after which a '
                    'host is down. Detection takes interval × miss_count '
                    'after the last heartbeat, plus at most a quarter '
                    'interval; a host whose heartbeats are late by more '
                    'than (miss_count − 1) intervals is reported down.'),
    cfg.FloatOpt('startup_grace',
                 min=0.0,
                 help='Detector: seconds after start during which no host '
                      'is reported down. Defaults to 2 × interval × '
                      'miss_count, at least 1 second.'),
    cfg.ListOpt('hosts',
                default=[],
                help='Detector: hosts to watch from the start, so that one '
                     'whose agent never sent is reported down after the '
                     'grace period. Others are watched from their first '
                     'heartbeat.'),
    cfg.FloatOpt('max_age',
                 default=2.0, min=0.0,
                 help='Detector, with a key: drop signed heartbeats sent '
                      'more than this many seconds away from the '
                      "detector's clock (a replay, or a clock that NTP "
                      'does not keep); 0 turns the check off.'),
    cfg.StrOpt('key',
               secret=True,
               help='Shared secret: agents sign their heartbeats with '
                    'HMAC-SHA256 and the detector drops unsigned or wrongly '
                    'signed ones. Unset: heartbeats are not signed.'),
]

#: ``magic, version, flags, host length, sequence, sent, boot id``
_HEADER = struct.Struct('!4sBBHQd16s')
_MAGIC = b'DHB1'
_VERSION = 1
_SIGNED = 0x01
_DIGEST = hashlib.sha256
_SIG_LEN = _DIGEST().digest_size
MAX_HOSTNAME = 255


class Heartbeat(typing.NamedTuple):
    host: str
    seq: int
    sent: float
    boot: bytes


def encode(host: str, seq: int, sent: float, boot: bytes,
           key: bytes | None = None) -> bytes:
    """The datagram of one heartbeat."""
    name = host.encode('utf-8')
    data = _HEADER.pack(_MAGIC, _VERSION, _SIGNED if key else 0, len(name),
                        seq, sent, boot) + name
    if key:
        data += hmac.new(key, data, _DIGEST).digest()
    return data


def decode(data: bytes, key: bytes | None = None) -> Heartbeat:
    """Parse and check one datagram.

    :raises ValueError: saying why it is dropped
    """
    if len(data) < _HEADER.size:
        raise ValueError('too short for a heartbeat')
    magic, version, flags, length, seq, sent, boot = _HEADER.unpack_from(
        data)
    if magic != _MAGIC or version != _VERSION:
        raise ValueError('not a doctor_plugin heartbeat (version 1)')
    end = _HEADER.size + length
    signed = bool(flags & _SIGNED)
    if len(data) != end + (_SIG_LEN if signed else 0) or not 0 < length <= \
            MAX_HOSTNAME:
        raise ValueError('malformed heartbeat (length)')
    if key:
        if not signed:
            raise ValueError('unsigned heartbeat, and [heartbeat] key is '
                             'set')
        if not hmac.compare_digest(
                hmac.new(key, data[:end], _DIGEST).digest(), data[end:]):
            raise ValueError('bad signature (is [heartbeat] key the same '
                             'on the agent?)')
    try:
        host = data[_HEADER.size:end].decode('utf-8')
    except UnicodeDecodeError:
        raise ValueError('host name is not UTF-8') from None
    return Heartbeat(host, seq, sent, boot)


def parse_address(text: str, option: str,
                  any_port: bool = False) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → ``(host, port)``.

    :param any_port: accept port 0 (to listen on any free port)
    """
    host, sep, port = text.strip().rpartition(':')
    if (not sep or not port.isdigit()
            or not (0 if any_port else 1) <= int(port) < 65536):
        raise exceptions.ConfigurationError(
            option, text, 'expected address:port, e.g. 192.0.2.1:12346 or '
                          '[2001:db8::1]:12346')
    return host.strip('[]') or '0.0.0.0', int(port)


def _key(conf: cfg.ConfigOpts) -> bytes | None:
    return conf.heartbeat.key.encode('utf-8') if conf.heartbeat.key else None


@dataclasses.dataclass(slots=True)
class _Host:
    name: str
    last_seen: float
    slot: int = -1
    state: str | None = None
    seq: int = -1
    boot: bytes = b''
    sent: float = 0.0


class Detector:
    """The detector's timing logic, on a clock the caller gives.

    :param interval: seconds between heartbeats
    :param miss_count: intervals of silence that make a host down
    :param grace: seconds after ``start`` without down reports
    :param start: the clock's time now (monotonic seconds)
    """

    def __init__(self, interval: float, miss_count: int, grace: float,
                 start: float) -> None:
        self.timeout = interval * miss_count
        self.tick = interval / 4
        self.grace_ends = start + grace
        self.hosts: dict[str, _Host] = {}
        self.dropped: collections.Counter[str] = collections.Counter()
        # Slots cover a little more than one timeout: a host is always due
        # within it.
        self._slots: list[set[str]] = [
            set() for _ in range(int(self.timeout / self.tick) + 2)]
        self._tick_no = int(start / self.tick)

    def _schedule(self, host: _Host) -> None:
        due = int((host.last_seen + self.timeout) / self.tick) + 1
        slot = due % len(self._slots)
        if host.slot != slot:
            if host.slot >= 0:
                self._slots[host.slot].discard(host.name)
            self._slots[slot].add(host.name)
            host.slot = slot

    def watch(self, name: str, now: float) -> None:
        """Watch ``name`` as if it was last seen at ``now``."""
        if name not in self.hosts:
            host = self.hosts[name] = _Host(name, now)
            self._schedule(host)

    def heartbeat(self, hb: Heartbeat, now: float) -> str | None:
        """Account for a heartbeat; ``'up'`` when it ends an outage."""
        host = self.hosts.get(hb.host)
        if host is None:
            host = self.hosts[hb.host] = _Host(hb.host, now)
        elif (hb.seq <= host.seq if hb.boot == host.boot
              else hb.sent <= host.sent):
            # An older heartbeat of this boot, or one of an older boot: a
            # replay (or a datagram overtaken by its successor).
            self.dropped['replayed or reordered'] += 1
            return None
        host.seq, host.boot, host.sent = hb.seq, hb.boot, hb.sent
        host.last_seen = now
        if host.slot < 0:
            self._schedule(host)
        if host.state == 'down':
            host.state = 'up'
            return 'up'
        host.state = 'up'
        return None

    def next_tick(self) -> float:
        """When :meth:`expire` has work next (the clock's time)."""
        return (self._tick_no + 1) * self.tick

    def expire(self, now: float) -> list[tuple[_Host, str]]:
        """Hosts silent past their deadline, as ``(host, 'down')``."""
        changes = []
        target = int(now / self.tick)
        # A late call looks at every slot it skipped, at most one round.
        first = max(self._tick_no + 1, target - len(self._slots) + 1)
        for tick_no in range(first, target + 1):
            slot = self._slots[tick_no % len(self._slots)]
            for name in list(slot):
                host = self.hosts[name]
                if now < host.last_seen + self.timeout:
                    self._schedule(host)
                    continue
                slot.discard(name)
                host.slot = -1
                if host.state == 'down':
                    continue
                if now < self.grace_ends:
                    # Look again once the grace period is over.
                    host.last_seen = self.grace_ends - self.timeout
                    self._schedule(host)
                    continue
                host.state = 'down'
                changes.append((host, 'down'))
        self._tick_no = max(self._tick_no, target)
        return changes


class HeartbeatMonitor(base.MonitorBase):
    """The detector: receive heartbeats, report hosts that fall silent.

    :param conf: configuration with the ``[heartbeat]`` options
    :param reporter: called once per state change, from a worker thread
    :param timeline: where T00 (last heartbeat) and T01 (detection) are
        marked
    :param sock: a bound UDP socket to use instead of ``[heartbeat]
        listen`` (tests, the demo, the benchmark)
    """

    name = 'heartbeat'

    def __init__(self, conf: cfg.ConfigOpts, reporter: base.Reporter,
                 timeline: profiler.Timeline | None = None,
                 sock: socket.socket | None = None) -> None:
        super().__init__(conf, reporter)
        opts = conf.heartbeat
        self.interval = opts.interval
        self.miss_count = opts.miss_count
        self.grace = (max(1.0, 2 * self.interval * self.miss_count)
                      if opts.startup_grace is None else opts.startup_grace)
        self.key = _key(conf)
        self.max_age = opts.max_age if self.key else 0.0
        self.timeline = profiler.Timeline() if timeline is None else timeline
        if sock is None:
            host, port = parse_address(opts.listen, '[heartbeat] listen',
                                       any_port=True)
            family = socket.AF_INET6 if ':' in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                raise exceptions.ConfigurationError(
                    '[heartbeat] listen', opts.listen,
                    f'cannot listen there: {exc.strerror}') from None
        sock.setblocking(False)
        self.sock = sock
        self.address = sock.getsockname()
        self._reports: base.ReportQueue | None = None
        self.detector: Detector | None = None
        #: Set once the detector runs (for whoever waits on it).
        self.started = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self._reports = base.ReportQueue(self.reporter,
                                         'doctor-heartbeat-reporter')
        now = time.monotonic()
        self.detector = Detector(self.interval, self.miss_count,
                                 self.grace, now)
        for name in self.conf.heartbeat.hosts:
            self.detector.watch(name, now)
        LOG.info('Watching heartbeats on %(addr)s every %(interval)s s; '
                 'down after %(misses)d missed; no down reports for the '
                 'first %(grace)s s; signatures %(signed)s',
                 {'addr': self.address, 'interval': self.interval,
                  'misses': self.miss_count, 'grace': self.grace,
                  'signed': 'required' if self.key else 'off'})
        self.started.set()
        try:
            while not stop.is_set():
                timeout = self.detector.next_tick() - time.monotonic()
                if timeout > 0:
                    select.select([self.sock], [], [], timeout)
                self._drain()
                for host, state in self.detector.expire(time.monotonic()):
                    self._report(host, state)
        finally:
            self._reports.close(1.0)
            self.sock.close()

    def _drain(self) -> None:
        """Take every datagram waiting, before anyone is declared down."""
        detector = self.detector
        assert detector is not None, 'only while run() runs'
        while True:
            try:
                data = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                LOG.warning('Heartbeat socket error: %s', exc)
                return
            try:
                hb = decode(data, self.key)
            except ValueError as exc:
                self._drop(str(exc))
                continue
            if self.max_age and abs(time.time() - hb.sent) > self.max_age:
                self._drop(f'sent more than {self.max_age} s from this '
                           f'clock (a replay, or clocks out of step)')
                continue
            if detector.heartbeat(hb, time.monotonic()) == 'up':
                self._report(detector.hosts[hb.host], 'up')

    def _drop(self, reason: str) -> None:
        assert self.detector is not None, 'only while run() runs'
        dropped = self.detector.dropped
        dropped[reason] += 1
        if dropped[reason] == 1:
            LOG.warning('Dropping heartbeat: %s (further drops for this '
                        'reason are counted, not logged)', reason)

    def _report(self, host: _Host, state: str) -> None:
        now = time.time()
        report = base.FaultReport(host.name, state, self.name,
                                  detected_at=now)
        if state == 'down':
            # The last sign of life, on the wall clock.
            self.timeline.mark(report.monitor_event_id, 'T00',
                               now - (time.monotonic() - host.last_seen))
            LOG.warning('Host %(host)s is down: no heartbeat for %(s).3f s '
                        '(event %(id)s)',
                        {'host': host.name,
                         's': time.monotonic() - host.last_seen,
                         'id': report.monitor_event_id})
        else:
            LOG.info('Host %(host)s is up again: heartbeats resumed '
                     '(event %(id)s)',
                     {'host': host.name, 'id': report.monitor_event_id})
        self.timeline.mark(report.monitor_event_id, 'T01', now)
        assert self._reports is not None, 'only while run() runs'
        self._reports.put(report)


class HeartbeatSender:
    """The agent: send one heartbeat per host every ``interval``.

    One sender can speak for several host names (the benchmark simulates
    hundreds of hosts with one); :meth:`pause` stops one host's heartbeats
    as its death would.

    :param hosts: the host names to announce
    :param detectors: ``(address, port)`` of each detector
    """

    def __init__(self, hosts: typing.Iterable[str],
                 detectors: typing.Iterable[tuple[str, int]],
                 interval: float, key: bytes | None = None) -> None:
        self.hosts = list(hosts)
        self.detectors = list(detectors)
        self.interval = interval
        self.key = key
        self.boot = uuid.uuid4().bytes
        self.paused: set[str] = set()
        self._seq = 0
        self._socks: dict[socket.AddressFamily, socket.socket] = {}
        for address, _port in self.detectors:
            family = socket.AF_INET6 if ':' in address else socket.AF_INET
            if family not in self._socks:
                self._socks[family] = socket.socket(family,
                                                    socket.SOCK_DGRAM)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> HeartbeatSender:
        opts = conf.heartbeat
        detectors = [parse_address(d, '[heartbeat] detectors')
                     for d in opts.detectors]
        if not detectors:
            raise exceptions.ConfigurationError(
                '[heartbeat] detectors', None,
                'no detector to send to; list address:port entries')
        return cls([opts.hostname or socket.gethostname()], detectors,
                   opts.interval, _key(conf))

    def send_once(self) -> None:
        self._seq += 1
        now = time.time()
        for host in self.hosts:
            if host in self.paused:
                continue
            data = encode(host, self._seq, now, self.boot, self.key)
            for address, port in self.detectors:
                family = (socket.AF_INET6 if ':' in address
                          else socket.AF_INET)
                try:
                    self._socks[family].sendto(data, (address, port))
                except OSError as exc:
                    LOG.debug('Heartbeat to %s:%d failed: %s', address,
                              port, exc)

    def run(self, stop: threading.Event) -> None:
        """Send on a fixed schedule (not drifting) until ``stop``."""
        next_send = time.monotonic()
        while not stop.is_set():
            self.send_once()
            next_send += self.interval
            delay = next_send - time.monotonic()
            if delay < 0:
                # Late (a loaded CPU): send now, keep the schedule.
                next_send = time.monotonic()
                continue
            stop.wait(delay)

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
