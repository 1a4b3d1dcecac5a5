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

"""Heartbeats: a small agent on each compute host, detectors that watch.

The agent (``doctor-plugin-heartbeat``) sends a UDP datagram every
``[heartbeat] interval`` (50 ms by default) to every detector address of
``[heartbeat] detectors``: the host's name, a sequence number, the agent's
boot id, its send time and, with ``[heartbeat] key`` set, an HMAC-SHA256
over all of it. The detector (the ``heartbeat`` monitor of
``doctor-plugin-monitor``) declares a host down when nothing valid came
from it for ``miss_count`` intervals, and up again at its next heartbeat.

Detection is driven by time, not by the next packet: every host sits in
one slot of a timer wheel (ticks of a quarter interval) at its deadline,
so a tick looks only at the hosts due then, and a heartbeat only updates
the host's last-seen time (the host moves on when its slot comes up). The
sockets are drained before any host is declared down, so that the
detector falling behind itself (a loaded CPU) is never taken for silence;
and for ``startup_grace`` after the detector starts no host is declared
down, so that restarting it does not report every host.

A datagram that does not parse, is unsigned or wrongly signed when a key
is set, or repeats an older sequence number of the same boot on the same
plane (a replay) is counted and dropped.

Several monitors watch the same hosts (the inspector believes k of n of
them), so each one's word must be worth counting; four things make it so.

**Planes.** A detector may listen on several networks (``[heartbeat]
planes``), the agent sending to its address on each. A heartbeat is
tagged with the plane it came in on; a host is down only when it is
silent on every plane it has been heard on, so one broken switch or NIC
does not make it down. A host heard on some planes only is *degraded*
once a plane has been silent for ``plane_miss_count`` intervals (checked
when the host's wheel slot comes up, so within ``miss_count`` intervals
more), and *restored* when every such plane is heard again. Per-plane
times are kept per host; the check costs one pass over the planes per
``plane_miss_count`` intervals and host, not per heartbeat.

**Indirect probes** (SWIM's ping-req, :mod:`~doctor_plugin.monitors.
probe`). When a host's deadline passes the detector asks its peers
(``[heartbeat] peers``) whether they hear it, and waits up to
``probe_timeout`` for those it knows to answer (each is pinged every
:data:`PING_INTERVAL`; one silent for :data:`PEER_TIMEOUT`, or that
failed to answer a question, is not waited for until it answers again).
One ``ALIVE`` answer means the host lives and only this monitor's path
to it broke: no report, the host is looked at again at its next
deadline. An ``ALIVE`` counts only if the peer's last heartbeat from the
host is newer (by the agent's send time, the same clock for every
detector) than this detector's: a peer on a loaded CPU that reads the
host's last heartbeat late takes it for a recent one, but heard nothing
this detector did not. Peers answer from their own state: ``ALIVE``
when their last heartbeat from the host, on any plane, is at most the
*freshness bound* old (``Detector.freshness``: 1.5 intervals, less
than the timeout). A live host sends every interval, so a peer that
hears it heard it less than an interval ago (plus jitter, for which the
half interval is); for a dead host every peer got the same last
heartbeat as the asker, within network jitter, and is asked after the
asker's timeout (2 intervals), so its last heartbeat is older than the
bound. When all peers answered or
the timeout passed, the host is down: about one round trip after its
deadline when the peers are alive, at once when none is.

**Isolation.** A monitor that lost its own network sees every host fall
silent; reporting them all down would make the inspector evacuate a
healthy cloud. When every host it watches that is not down (at least two)
is silent past its deadline and no peer was heard since the first
question went out, the detector reports itself ``isolated`` once
(:data:`~doctor_plugin.monitors.base.MONITOR_ISOLATED`), reports no host
down while so, and ``connected`` at the first heartbeat after; hosts
that did not come back are watched afresh from then (a timeout more),
with no ``up`` for those that did (none was reported down).

The decision has to come before the first host's down report, although
the hosts' deadlines lie up to an interval apart when the monitor is cut
off: the first host is due while the others are still within theirs. So
a host past its deadline is reported down only on evidence that *this
monitor's network works*, any of:

* a peer was heard (an answer to any question, a pong) since the
  question about this host went out: the network reaches at least the
  peers, whatever they said;
* some host was heard 1.5 intervals or more after this host's last
  heartbeat. Had the monitor been cut off at time T, nothing was heard
  after T, and this host, sending every interval, was last heard at most
  an interval (plus jitter, the half interval) before T. A host dying
  while the monitor is connected leaves the others talking, so this
  evidence comes within half an interval with two hosts, at once with
  many;
* fewer than two hosts are being watched (one host going silent says
  nothing of the monitor).

Without evidence the host waits (its question may be answered, another
host may be heard); when every watched host is silent past its deadline
and still no evidence came, the monitor is isolated. A real failure of
every host while peers answer ``SILENT`` is reported normally, a down
for each; without peers (and without another host heard), all hosts
silent at once cannot be told from this monitor's isolation and is
reported as isolation: the inspector is told, and trusts the other
monitors. An isolated monitor answers its peers' questions ``UNKNOWN``:
its silence is no evidence about a host.
"""

from __future__ import annotations

import collections
import dataclasses
import secrets
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
from doctor_plugin.monitors import probe
from doctor_plugin import signing

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
    cfg.ListOpt('planes',
                default=[],
                help='Detector: the networks heartbeats are received on, '
                     'as name=address:port entries, e.g. '
                     'management=198.18.0.21:12346,tenant=198.18.1.21:12346'
                     '. A host is down only when it is silent on every '
                     'plane it has been heard on, and degraded when silent '
                     'on some. List this detector\'s address on each plane '
                     'in the agents\' [heartbeat] detectors. Unset: one '
                     'plane, "management", on [heartbeat] listen.'),
    cfg.IntOpt('plane_miss_count',
               default=20, min=1,
               help='Detector: intervals of silence on one plane, while the '
                    'host is heard on another, after which the host is '
                    'reported degraded (checked at the host\'s next '
                    'deadline: within miss_count intervals more); '
                    'restored when every silent plane is heard again. '
                    'Never less than miss_count. A false alarm needs this '
                    'many heartbeats lost in a row on one plane: with 30 % '
                    'loss and the defaults (50 ms) a plane of a host goes '
                    'falsely degraded about every 65 years (0.7 × 0.3^20 '
                    '/ 50 ms = 4.9e-10 per second), every 24 days in a '
                    'cloud of 1,000 hosts; with 10, every 3.4 hours per '
                    'host (0.7 × 0.3^10 / 50 ms = 8.3e-5 per second). '
                    'Detection of a dead plane takes plane_miss_count × '
                    'interval (1 s by default).'),
    cfg.ListOpt('peers',
                default=[],
                help='Detector: the probe endpoints (address:port, their '
                     '[heartbeat] probe_listen) of the other detectors '
                     'watching the same hosts. Before reporting a host '
                     'down, a detector asks them whether they hear it, and '
                     'reports nothing if one does (only its own path to '
                     'the host broke). Its own endpoint may be listed too, '
                     'and is skipped. Requires probe_listen.'),
    cfg.StrOpt('probe_listen',
               help='Detector: address:port (UDP) this detector answers '
                    'its peers\' probes on, and sends its own from.'),
    cfg.FloatOpt('probe_timeout',
                 min=0.001,
                 help='Detector: seconds to wait for the peers\' answers '
                      'before reporting a silent host down; peers that do '
                      'not answer pings are not waited for. Added to '
                      'detection time only when a peer that answered pings '
                      'a moment ago stops answering. Defaults to half an '
                      'interval.'),
]

#: ``magic, version, flags, host length, sequence, sent, boot id``
_HEADER = struct.Struct('!4sBBHQd16s')
_MAGIC = b'DHB1'
_VERSION = 1
_SIGNED = 0x01
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
    return signing.seal(key, _HEADER.pack(
        _MAGIC, _VERSION, _SIGNED if key else 0, len(name), seq, sent,
        boot) + name)


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
    if (len(data) != end + (signing.SEAL_LENGTH if signed else 0)
            or not 0 < length <= MAX_HOSTNAME):
        raise ValueError('malformed heartbeat (length)')
    signing.check_seal(
        key, data, end, signed,
        'unsigned heartbeat, and [heartbeat] key is set',
        'bad signature (is [heartbeat] key the same on the agent?)')
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


#: The plane of a detector without ``[heartbeat] planes``.
DEFAULT_PLANE = 'management'
_PLANES_SYNTAX = ('name=address:port, e.g. '
                  'management=198.18.0.21:12346')


def parse_planes(entries: typing.Sequence[str],
                 listen: str) -> list[tuple[str, str, int]]:
    """``[heartbeat] planes`` (or ``listen``) as ``(name, host, port)``.

    :raises ConfigurationError: for a malformed entry, or a plane name or
        address listed twice
    """
    option = '[heartbeat] planes'
    if not entries:
        host, port = parse_address(listen, '[heartbeat] listen',
                                   any_port=True)
        return [(DEFAULT_PLANE, host, port)]
    planes: list[tuple[str, str, int]] = []
    for entry in entries:
        name, sep, target = (part.strip() for part in entry.partition('='))
        if not sep or not name or not target:
            raise exceptions.ConfigurationError(
                option, entry, f'expected {_PLANES_SYNTAX}')
        if any(c.isspace() or c in ',:=' for c in name):
            raise exceptions.ConfigurationError(
                option, entry, f'plane name {name!r} may not contain '
                               f'whitespace, ",", ":" or "="; expected '
                               f'{_PLANES_SYNTAX}')
        host, port = parse_address(target, option, any_port=True)
        for other, other_host, other_port in planes:
            if other == name:
                raise exceptions.ConfigurationError(
                    option, entry, f'plane {name!r} is listed more than '
                                   f'once; give each plane its own name')
            if (other_host, other_port) == (host, port) and port:
                raise exceptions.ConfigurationError(
                    option, entry, f'planes {other!r} and {name!r} have '
                                   f'the same address; give each plane '
                                   f'the address of this detector on '
                                   f'that network')
        planes.append((name, host, port))
    return planes


#: Seconds between two pings of each peer.
PING_INTERVAL = 1.0
#: A peer not heard for this long (three pings) is not waited for.
PEER_TIMEOUT = 3 * PING_INTERVAL
#: A host is last seen at -inf on a plane it was never heard on.
NEVER = float('-inf')

#: Statuses of :class:`Change` that become reports; ``vetoed`` (a peer
#: hears the host) is only logged.
REPORTED = frozenset({'down', 'up', 'degraded', 'restored', 'isolated',
                      'connected'})


class Change(typing.NamedTuple):
    """What the detector found: a host's (or its own) change of state.

    :ivar status: ``down``, ``up``, ``degraded``, ``restored``,
        ``isolated``, ``connected``, or ``vetoed`` (silent here, heard
        by a peer)
    :ivar host: the host, empty for ``isolated`` and ``connected``
    :ivar planes: the planes silent (``down``, ``degraded``) or heard
        again (``restored``)
    """

    status: str
    host: str = ''
    planes: tuple[str, ...] = ()


@dataclasses.dataclass(slots=True)
class _Probe:
    """The question about one silent host, and what came back."""

    started: float
    deadline: float
    #: peer index → nonce of the question sent to it
    nonces: dict[int, int]
    #: peers known to answer that did not answer yet
    waiting: set[int]
    #: the youngest heartbeat age an ``ALIVE`` answer gave
    alive_age: float | None = None


@dataclasses.dataclass(slots=True)
class _Plane:
    """A host on one plane: when last heard, and the replay check's."""

    heard: float = NEVER
    seq: int = -1
    boot: bytes = b''
    sent: float = 0.0


@dataclasses.dataclass(slots=True)
class _Host:
    name: str
    last_seen: float
    planes: list[_Plane]
    slot: int = -1
    state: str | None = None
    #: a heartbeat has more to do than note the time (see _attend)
    attention: bool = True
    #: past its deadline and not heard since (questioned, vetoed, or
    #: silent while the detector is isolated)
    silent: bool = False
    #: not due before this (a peer heard it; reconnected; grace)
    not_before: float = 0.0
    #: planes reported silent, and every plane of this degraded episode
    degraded: set[int] | None = None
    episode: set[int] | None = None
    #: when a plane may next have been silent for plane_miss_count
    plane_check: float = float('inf')
    probe: _Probe | None = None


@dataclasses.dataclass(slots=True)
class _Peer:
    address: tuple[str, int]
    heard: float = NEVER
    #: failed to answer a question (or never answered): not waited for
    missed: bool = True


class Detector:
    """The detector's logic, on a clock the caller gives.

    Pure: it sends and receives nothing, its caller feeds it heartbeats
    (:meth:`heartbeat`), the peers' answers (:meth:`probe_answer`,
    :meth:`pong`) and the time (:meth:`expire`), sends what
    :meth:`take_outbox` gives, and reports the :class:`Change` records
    they return.

    :param interval: seconds between heartbeats
    :param miss_count: intervals of silence that make a host down
    :param grace: seconds after ``start`` without down reports
    :param start: the clock's time now (monotonic seconds)
    :param planes: the planes' names; a heartbeat's plane is an index
    :param plane_miss_count: intervals of silence on one plane that make
        the host degraded (at least ``miss_count``)
    :param peers: the other detectors' probe addresses
    :param probe_timeout: seconds to wait for their answers; half an
        interval by default
    """

    def __init__(self, interval: float, miss_count: int, grace: float,
                 start: float,
                 planes: typing.Sequence[str] = (DEFAULT_PLANE,),
                 plane_miss_count: int = 20,
                 peers: typing.Sequence[tuple[str, int]] = (),
                 probe_timeout: float | None = None) -> None:
        self.interval = interval
        self.timeout = interval * miss_count
        self.tick = interval / 4
        self.grace_ends = start + grace
        self.planes = tuple(planes)
        self.plane_timeout = interval * max(plane_miss_count, miss_count)
        self._multi_plane = len(self.planes) > 1
        self.probe_timeout = (interval / 2 if probe_timeout is None
                              else probe_timeout)
        #: An answer says ALIVE for a heartbeat at most this old.
        self.freshness = min(1.5 * interval, self.timeout - interval / 4)
        #: Heard after a host's last heartbeat + this, another host
        #: proves this detector was not cut off when that host went quiet.
        self.proof_delay = 1.5 * interval
        self.hosts: dict[str, _Host] = {}
        self.peers = [_Peer(address) for address in peers]
        self.dropped: collections.Counter[str] = collections.Counter()
        #: Whether this detector lost its network (hears no one).
        self.isolated = False
        #: When any heartbeat, and any peer, was heard last.
        self.last_heard = NEVER
        self.peer_heard = NEVER
        self._silent: set[str] = set()
        self._down = 0
        self._pending: dict[str, _Host] = {}
        #: nonce → (host or '' for a ping, peer index, when asked)
        self._nonces: dict[int, tuple[str, int, float]] = {}
        self._outbox: list[tuple[int, int, int, str]] = []
        self._next_ping = start
        # Slots cover a little more than one timeout: a host is always due
        # within it (one due later comes round again until it is).
        self._slots: list[set[str]] = [
            set() for _ in range(int(self.timeout / self.tick) + 2)]
        self._tick_no = int(start / self.tick)

    # -- hosts -------------------------------------------------------------

    def _schedule(self, host: _Host, due: float) -> None:
        slot = (int(due / self.tick) + 1) % len(self._slots)
        if host.slot != slot:
            if host.slot >= 0:
                self._slots[host.slot].discard(host.name)
            self._slots[slot].add(host.name)
            host.slot = slot

    def _add(self, name: str, now: float) -> _Host:
        host = self.hosts[name] = _Host(
            name, now, [_Plane() for _ in self.planes])
        return host

    def watch(self, name: str, now: float) -> None:
        """Watch ``name`` as if it was last seen at ``now``."""
        if name not in self.hosts:
            host = self._add(name, now)
            self._schedule(host, now + self.timeout)

    def heartbeat(self, hb: Heartbeat, now: float,
                  plane: int = 0) -> typing.Sequence[Change]:
        """Account for a heartbeat that came in on ``plane``."""
        host = self.hosts.get(hb.host)
        if host is None:
            host = self._add(hb.host, now)
        state = host.planes[plane]
        if (hb.seq <= state.seq if hb.boot == state.boot
                else hb.sent <= state.sent):
            # An older heartbeat of this boot, or one of an older boot: a
            # replay (or a datagram overtaken by its successor). Per
            # plane: each plane brings its own copy of every heartbeat.
            self.dropped['replayed or reordered'] += 1
            return ()
        state.seq = hb.seq
        state.boot = hb.boot
        state.sent = hb.sent
        state.heard = now
        host.last_seen = now
        self.last_heard = now
        if host.attention:
            return self._attend(host, plane, now)
        return ()

    def _attend(self, host: _Host, plane: int,
                now: float) -> list[Change]:
        """A heartbeat of a host that is not simply up and scheduled."""
        changes = []
        if self.isolated:
            changes.append(Change('connected'))
            self._reconnect(now)
        if host.silent:
            self._unsilence(host)
        if host.slot < 0:
            self._schedule(host, now + self.timeout)
        if host.state != 'up':
            if host.state == 'down':
                self._down -= 1
                changes.append(Change('up', host.name))
            host.state = 'up'
            # The other planes get a plane timeout of their own to be
            # heard again, from now.
            self._refresh_planes(host, now)
            host.degraded = host.episode = None
            if self._multi_plane:
                host.plane_check = now + self.plane_timeout
        elif host.degraded is not None and plane in host.degraded:
            host.degraded.discard(plane)
            if not host.degraded:
                assert host.episode is not None  # set with degraded
                changes.append(Change('restored', host.name,
                                      self._names(host.episode)))
                host.degraded = host.episode = None
            self._next_plane_check(host)
        host.attention = host.degraded is not None
        return changes

    def _names(self, planes: typing.Iterable[int]) -> tuple[str, ...]:
        return tuple(self.planes[p] for p in sorted(planes))

    def _next_plane_check(self, host: _Host) -> None:
        degraded = host.degraded or ()
        heard = [state.heard for p, state in enumerate(host.planes)
                 if state.heard != NEVER and p not in degraded]
        host.plane_check = (min(heard) + self.plane_timeout if heard
                            else float('inf'))

    def _check_planes(self, host: _Host, now: float,
                      changes: list[Change]) -> None:
        """Report ``host`` degraded if a plane it was heard on fell quiet."""
        limit = now - self.plane_timeout
        degraded = host.degraded or set()
        quiet = {p for p, state in enumerate(host.planes)
                 if NEVER < state.heard <= limit and p not in degraded}
        if quiet:
            degraded |= quiet
            host.degraded = degraded
            host.episode = (host.episode or set()) | quiet
            host.attention = True
            changes.append(Change('degraded', host.name,
                                  self._names(degraded)))
        self._next_plane_check(host)

    def _silent_planes(self, host: _Host) -> tuple[str, ...]:
        heard = [p for p, state in enumerate(host.planes)
                 if state.heard != NEVER]
        return self._names(heard) if heard else self.planes

    @staticmethod
    def _refresh_planes(host: _Host, now: float) -> None:
        """Give each plane ``host`` was heard on a plane timeout from now."""
        for state in host.planes:
            if state.heard != NEVER:
                state.heard = now

    def _unsilence(self, host: _Host) -> None:
        host.silent = False
        host.not_before = 0.0
        self._silent.discard(host.name)
        self._clear_probe(host)

    def _clear_probe(self, host: _Host) -> None:
        if host.probe is not None:
            for nonce in host.probe.nonces.values():
                self._nonces.pop(nonce, None)
            host.probe = None
            self._pending.pop(host.name, None)

    def _reconnect(self, now: float) -> None:
        """Watch afresh every host that fell silent while isolated."""
        self.isolated = False
        for name in list(self._silent):
            host = self.hosts[name]
            host.silent = False
            host.not_before = now + self.timeout
            self._schedule(host, host.not_before)
        self._silent.clear()
        for host in self.hosts.values():
            if host.state != 'down':
                self._refresh_planes(host, now)
                if self._multi_plane:
                    host.plane_check = now + self.plane_timeout

    # -- time --------------------------------------------------------------

    def next_tick(self) -> float:
        """When :meth:`expire` has work next (the clock's time)."""
        when = (self._tick_no + 1) * self.tick
        for host in self._pending.values():
            assert host.probe is not None  # pending hosts have one
            if host.probe.waiting and host.probe.deadline < when:
                when = host.probe.deadline
        if self.peers and self._next_ping < when:
            when = self._next_ping
        return when

    def expire(self, now: float) -> list[Change]:
        """Whatever the passing of time decides, up to ``now``."""
        changes: list[Change] = []
        target = int(now / self.tick)
        # A late call looks at every slot it skipped, at most one round.
        first = max(self._tick_no + 1, target - len(self._slots) + 1)
        for tick_no in range(first, target + 1):
            slot = self._slots[tick_no % len(self._slots)]
            for name in list(slot):
                host = self.hosts[name]
                due = host.last_seen + self.timeout
                if host.not_before > due:
                    due = host.not_before
                if now < due:
                    if host.plane_check <= now and host.state == 'up':
                        self._check_planes(host, now, changes)
                    self._schedule(host, due)
                    continue
                slot.discard(name)
                host.slot = -1
                host.attention = True
                if host.state == 'down':
                    continue
                if now < self.grace_ends:
                    self._schedule(host, self.grace_ends)
                    continue
                self._fall_silent(host, now)
        self._tick_no = max(self._tick_no, target)
        if self._pending:
            self._decide(now, changes)
        if self.peers and now >= self._next_ping:
            self._ping(now)
        return changes

    def _fall_silent(self, host: _Host, now: float) -> None:
        """``host`` is past its deadline: ask the peers about it."""
        host.silent = True
        self._silent.add(host.name)
        if self.isolated:
            return
        nonces = {}
        for index in range(len(self.peers)):
            nonce = self._nonce(host.name, index, now)
            nonces[index] = nonce
            self._outbox.append((index, probe.REQUEST, nonce, host.name))
        waiting = {i for i, peer in enumerate(self.peers)
                   if self._responsive(peer, now)}
        host.probe = _Probe(now, now + self.probe_timeout, nonces, waiting)
        self._pending[host.name] = host

    def _nonce(self, host: str, peer: int, now: float) -> int:
        nonce = secrets.randbits(64)
        while nonce in self._nonces:
            nonce = secrets.randbits(64)
        self._nonces[nonce] = (host, peer, now)
        return nonce

    def _responsive(self, peer: _Peer, now: float) -> bool:
        return not peer.missed and now - peer.heard <= PEER_TIMEOUT

    def _decide(self, now: float, changes: list[Change]) -> None:
        """Decide the silent hosts whose questions are settled."""
        ready = []
        for host in list(self._pending.values()):
            question = host.probe
            assert question is not None  # pending hosts have one
            if question.alive_age is not None:
                self._veto(host, question.alive_age, now, changes)
                continue
            if question.waiting:
                if now < question.deadline:
                    continue
                self._missed(question.waiting)
            ready.append(host)
        # A host reported down may leave fewer than two hosts up: decide
        # again until nothing changes.
        progress = True
        while ready and progress:
            progress = False
            for host in list(ready):
                if self._connected(host):
                    ready.remove(host)
                    self._report_down(host, changes)
                    progress = True
        if ready and len(self._silent) >= len(self.hosts) - self._down:
            self._isolate(changes)

    def _connected(self, host: _Host) -> bool:
        """Whether this detector was shown to hear when ``host`` went."""
        assert host.probe is not None  # only for pending hosts
        return (self.peer_heard >= host.probe.started
                or len(self.hosts) - self._down < 2
                or self.last_heard >= host.last_seen + self.proof_delay)

    def _missed(self, peers: set[int]) -> None:
        """``peers`` did not answer: wait for them no more."""
        for index in list(peers):
            self.peers[index].missed = True
            for other in self._pending.values():
                assert other.probe is not None  # pending hosts have one
                other.probe.waiting.discard(index)
        peers.clear()

    def _veto(self, host: _Host, age: float, now: float,
              changes: list[Change]) -> None:
        self._clear_probe(host)
        # Its next deadline, as the peer that hears it sees it.
        host.not_before = now + max(self.timeout - age, self.tick)
        self._schedule(host, host.not_before)
        changes.append(Change('vetoed', host.name))

    def _report_down(self, host: _Host, changes: list[Change]) -> None:
        self._unsilence(host)
        host.state = 'down'
        host.degraded = host.episode = None
        host.plane_check = float('inf')
        self._down += 1
        changes.append(Change('down', host.name, self._silent_planes(host)))

    def _isolate(self, changes: list[Change]) -> None:
        self.isolated = True
        for host in list(self._pending.values()):
            self._clear_probe(host)
        changes.append(Change('isolated'))

    # -- peers -------------------------------------------------------------

    def _ping(self, now: float) -> None:
        self._next_ping = now + PING_INTERVAL
        for nonce, (host, _peer, asked) in list(self._nonces.items()):
            if not host and asked < now - PEER_TIMEOUT:
                del self._nonces[nonce]
        for index in range(len(self.peers)):
            self._outbox.append((index, probe.PING,
                                 self._nonce('', index, now), ''))

    def take_outbox(self) -> list[tuple[int, int, int, str]]:
        """What to send: ``(peer index, kind, nonce, host)`` each."""
        outbox, self._outbox = self._outbox, []
        return outbox

    def _peer(self, nonce: int, host: str, now: float) -> int | None:
        """The peer a reply with ``nonce`` about ``host`` answers."""
        asked = self._nonces.get(nonce)
        if asked is None or asked[0] != host:
            self.dropped['probe reply to no question of ours (late, '
                         'replayed or forged)'] += 1
            return None
        del self._nonces[nonce]
        peer = self.peers[asked[1]]
        peer.heard = self.peer_heard = now
        peer.missed = False
        return asked[1]

    def pong(self, nonce: int, now: float) -> None:
        """A peer answered a ping."""
        self._peer(nonce, '', now)

    def probe_answer(self, nonce: int, host: str, status: int, age: float,
                     last_sent: float, now: float) -> list[Change]:
        """A peer answered the question about ``host``.

        ``ALIVE`` vetoes only if the peer's last heartbeat from the host
        (``last_sent``, on the agent's clock) is newer than ours: a peer
        that read the same last heartbeat late (a loaded CPU) thinks it
        recent, but heard nothing we did not.
        """
        index = self._peer(nonce, host, now)
        if index is None:
            return []
        watched = self.hosts.get(host)
        question = watched.probe if watched is not None else None
        if (watched is None or question is None
                or question.nonces.get(index) != nonce):
            return []
        question.waiting.discard(index)
        ours = max(state.sent for state in watched.planes)
        if (status == probe.ALIVE and last_sent > ours
                and (question.alive_age is None
                     or age < question.alive_age)):
            question.alive_age = age
        changes: list[Change] = []
        self._decide(now, changes)
        return changes

    def answer(self, name: str, now: float) -> tuple[int, float, float]:
        """A peer asks about ``name``: ``(status, age, last sent)``.

        ``UNKNOWN`` while isolated (silence here means nothing), for a
        host not watched, or not heard since this detector started.
        """
        host = self.hosts.get(name)
        if self.isolated or host is None or host.state is None:
            return probe.UNKNOWN, 0.0, 0.0
        age = max(now - host.last_seen, 0.0)
        last_sent = max(state.sent for state in host.planes)
        return (probe.ALIVE if age <= self.freshness else probe.SILENT,
                age, last_sent)


class HeartbeatMonitor(base.MonitorBase):
    """The detector: receive heartbeats, report hosts that fall silent.

    :param conf: configuration with the ``[heartbeat]`` options
    :param reporter: called once per state change, from a worker thread
    :param timeline: where T00 (last heartbeat) and T01 (detection) are
        marked
    :param sock: a bound UDP socket to use instead of ``[heartbeat]
        listen`` (tests, the demo, the benchmark); the one plane
    :raises ConfigurationError: for bad ``planes``, ``peers`` or
        ``probe_listen``, or an address that cannot be listened on
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
        self.monitor_id = base.monitor_id(conf)
        peers = [parse_address(p, '[heartbeat] peers') for p in opts.peers]
        if peers and not opts.probe_listen:
            raise exceptions.ConfigurationError(
                '[heartbeat] probe_listen', None,
                'peers are set but this detector has no probe endpoint; '
                'set probe_listen to the address:port the peers list for '
                'it')
        if sock is None:
            planes = parse_planes(opts.planes, opts.listen)
            self.plane_names = tuple(name for name, _h, _p in planes)
            self.socks = []
            try:
                for name, host, port in planes:
                    self.socks.append(_bind(
                        host, port, f'[heartbeat] planes ({name})'
                        if opts.planes else '[heartbeat] listen',
                        f'{name}={host}:{port}' if opts.planes
                        else opts.listen))
            except exceptions.ConfigurationError:
                self._close()
                raise
        else:
            sock.setblocking(False)
            self.plane_names = (DEFAULT_PLANE,)
            self.socks = [sock]
        self.probe_sock: socket.socket | None = None
        if opts.probe_listen:
            host, port = parse_address(opts.probe_listen,
                                       '[heartbeat] probe_listen',
                                       any_port=True)
            try:
                self.probe_sock = _bind(host, port,
                                        '[heartbeat] probe_listen',
                                        opts.probe_listen)
            except exceptions.ConfigurationError:
                self._close()
                raise
            own = self.probe_sock.getsockname()[:2]
            peers = [p for p in peers if p != own]
        self.peers = peers
        self.probe_timeout = opts.probe_timeout
        self.plane_miss_count = opts.plane_miss_count
        #: Where each plane listens, by name.
        self.plane_addresses = {
            name: sock.getsockname()
            for name, sock in zip(self.plane_names, self.socks)}
        self.address = self.socks[0].getsockname()
        self.probe_address = (self.probe_sock.getsockname()
                              if self.probe_sock is not None else None)
        self._replays = probe.ReplayGuard(self.max_age)
        self._reports: base.ReportQueue | None = None
        self.detector: Detector | None = None
        #: Set once the detector runs (for whoever waits on it).
        self.started = threading.Event()

    def _close(self) -> None:
        for sock in self.socks:
            sock.close()
        probe_sock = getattr(self, 'probe_sock', None)
        if probe_sock is not None:
            probe_sock.close()

    def run(self, stop: threading.Event) -> None:
        self._reports = base.ReportQueue(self.reporter,
                                         'doctor-heartbeat-reporter')
        now = time.monotonic()
        self.detector = Detector(
            self.interval, self.miss_count, self.grace, now,
            planes=self.plane_names,
            plane_miss_count=self.plane_miss_count, peers=self.peers,
            probe_timeout=self.probe_timeout)
        for name in self.conf.heartbeat.hosts:
            self.detector.watch(name, now)
        LOG.info('Watching heartbeats on %(planes)s every %(interval)s s; '
                 'down after %(misses)d missed; no down reports for the '
                 'first %(grace)s s; signatures %(signed)s; asking '
                 '%(peers)s; monitor id %(id)s',
                 {'planes': ', '.join(f'{n} {a}' for n, a in
                                      self.plane_addresses.items()),
                  'interval': self.interval,
                  'misses': self.miss_count, 'grace': self.grace,
                  'signed': 'required' if self.key else 'off',
                  'peers': ', '.join(f'{h}:{p}' for h, p in self.peers)
                  or 'no peers', 'id': self.monitor_id})
        self.started.set()
        readable = self.socks + ([self.probe_sock] if self.probe_sock
                                 else [])
        try:
            while not stop.is_set():
                timeout = self.detector.next_tick() - time.monotonic()
                if timeout > 0:
                    select.select(readable, [], [], timeout)
                for plane, sock in enumerate(self.socks):
                    self._drain(sock, plane)
                if self.probe_sock is not None:
                    self._drain_probes()
                changes = self.detector.expire(time.monotonic())
                if changes:
                    self._handle(changes)
                if self.peers:
                    self._send_probes()
        finally:
            self._reports.close(1.0)
            self._close()

    def _drain(self, sock: socket.socket, plane: int) -> None:
        """Take every datagram waiting, before anyone is declared down."""
        detector = self.detector
        assert detector is not None, 'only while run() runs'
        # Per datagram: names bound once (5,000 hosts are 100,000 a
        # second).
        recv, account, monotonic = sock.recv, detector.heartbeat, \
            time.monotonic
        key, max_age = self.key, self.max_age
        while True:
            try:
                data = recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                LOG.warning('Heartbeat socket error: %s', exc)
                return
            try:
                hb = decode(data, key)
            except ValueError as exc:
                self._drop(str(exc))
                continue
            if max_age and abs(time.time() - hb.sent) > max_age:
                self._drop(f'sent more than {max_age} s from this '
                           f'clock (a replay, or clocks out of step)')
                continue
            changes = account(hb, monotonic(), plane)
            if changes:
                self._handle(changes)

    def _drain_probes(self) -> None:
        """Answer the peers' questions; take their answers."""
        detector = self.detector
        sock = self.probe_sock
        assert detector is not None and sock is not None
        while True:
            try:
                data, source = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                LOG.warning('Probe socket error: %s', exc)
                return
            try:
                message = probe.decode(data, self.key)
            except ValueError as exc:
                self._drop(str(exc))
                continue
            if message.kind in (probe.REQUEST, probe.PING):
                refused = self._replays.check(message, time.time())
                if refused:
                    self._drop(refused)
                    continue
                if message.kind == probe.REQUEST:
                    status, age, last_sent = detector.answer(
                        message.host, time.monotonic())
                    reply = probe.Message(probe.ANSWER, message.nonce,
                                          time.time(), message.host,
                                          status, age, last_sent)
                else:
                    reply = probe.Message(probe.PONG, message.nonce,
                                          time.time())
                self._send(reply, source)
                continue
            if self.max_age and abs(time.time() - message.sent) > \
                    self.max_age:
                self._drop(f'probe message sent more than {self.max_age} '
                           f's from this clock (a replay, or clocks out '
                           f'of step)')
                continue
            if message.kind == probe.PONG:
                detector.pong(message.nonce, time.monotonic())
            else:
                self._handle(detector.probe_answer(
                    message.nonce, message.host, message.status,
                    message.age, message.last_sent, time.monotonic()))

    def _send_probes(self) -> None:
        assert self.detector is not None, 'only while run() runs'
        now = time.time()
        for index, kind, nonce, host in self.detector.take_outbox():
            self._send(probe.Message(kind, nonce, now, host),
                       self.peers[index])

    def _send(self, message: probe.Message,
              address: tuple[str, int]) -> None:
        assert self.probe_sock is not None, 'only with a probe socket'
        try:
            self.probe_sock.sendto(probe.encode(message, self.key),
                                   address[:2])
        except OSError as exc:
            LOG.debug('Probe message to %s failed: %s', address, exc)

    def _drop(self, reason: str) -> None:
        assert self.detector is not None, 'only while run() runs'
        dropped = self.detector.dropped
        dropped[reason] += 1
        if dropped[reason] == 1:
            LOG.warning('Dropping a datagram: %s (further drops for this '
                        'reason are counted, not logged)', reason)

    def _handle(self, changes: typing.Iterable[Change]) -> None:
        for change in changes:
            if change.status in REPORTED:
                self._report(change)
            else:
                LOG.warning('Host %s is silent here, but a peer hears it: '
                            'only this monitor\'s path to it is broken; '
                            'not reported down, looked at again at its '
                            'next deadline', change.host)

    def _report(self, change: Change) -> None:
        detector = self.detector
        assert detector is not None, 'only while run() runs'
        now = time.time()
        status = change.status
        if status in ('isolated', 'connected'):
            event_type, hostname = base.MONITOR_ISOLATED, self.monitor_id
        elif status in ('degraded', 'restored'):
            event_type, hostname = base.HOST_DEGRADED, change.host
        else:
            event_type, hostname = base.HOST_DOWN, change.host
        report = base.FaultReport(hostname, status, self.name,
                                  detected_at=now,
                                  monitor_id=self.monitor_id,
                                  planes=change.planes,
                                  event_type=event_type)
        args: dict[str, typing.Any] = {
            'host': change.host, 'id': report.monitor_event_id,
            'planes': ', '.join(change.planes)}
        if status == 'down':
            host = detector.hosts[change.host]
            # The last sign of life, on the wall clock.
            self.timeline.mark(report.monitor_event_id, 'T00',
                               now - (time.monotonic() - host.last_seen))
            args['s'] = time.monotonic() - host.last_seen
            LOG.warning('Host %(host)s is down: no heartbeat for %(s).3f s '
                        'on %(planes)s (event %(id)s)', args)
        elif status == 'up':
            LOG.info('Host %(host)s is up again: heartbeats resumed '
                     '(event %(id)s)', args)
        elif status == 'degraded':
            LOG.warning('Host %(host)s is degraded: silent on %(planes)s, '
                        'heard on another plane (event %(id)s)', args)
        elif status == 'restored':
            LOG.info('Host %(host)s is heard again on %(planes)s (event '
                     '%(id)s)', args)
        elif status == 'isolated':
            LOG.error('This monitor (%(mid)s) is isolated: every host and '
                      'every peer fell silent at once; no host is reported '
                      'down until heartbeats come back (event %(id)s)',
                      dict(args, mid=self.monitor_id))
        else:
            LOG.warning('This monitor (%(mid)s) hears heartbeats again '
                        '(event %(id)s)', dict(args, mid=self.monitor_id))
        self.timeline.mark(report.monitor_event_id, 'T01', now)
        assert self._reports is not None, 'only while run() runs'
        self._reports.put(report)


def _bind(host: str, port: int, option: str, value: str) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port``."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise exceptions.ConfigurationError(
            option, value, f'cannot listen there: {exc.strerror}') from None
    sock.setblocking(False)
    return sock


class HeartbeatSender:
    """The agent: send one heartbeat per host every ``interval``.

    One sender can speak for several host names (the benchmark simulates
    hundreds of hosts with one); :meth:`pause` stops one host's heartbeats
    as its death would.

    Each detector gets a non-blocking socket of its own: datagrams to a
    detector whose address cannot be resolved (its machine or link is
    down) wait in the kernel's neighbour queue, charged to the socket that
    sent them; on a shared, blocking socket enough of them stall the
    heartbeats to every other detector. One that cannot be sent now is
    dropped: it would be late anyway.

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
        #: Datagrams dropped because a detector's socket was full.
        self.dropped = 0
        self._socks: list[tuple[socket.socket, tuple[str, int]]] = []
        for address, port in self.detectors:
            sock = socket.socket(
                socket.AF_INET6 if ':' in address else socket.AF_INET,
                socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._socks.append((sock, (address, port)))

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
            for sock, destination in self._socks:
                try:
                    sock.sendto(data, destination)
                except BlockingIOError:
                    self.dropped += 1
                except OSError as exc:
                    LOG.debug('Heartbeat to %s:%d failed: %s',
                              *destination, exc)

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
        for sock, _ in self._socks:
            sock.close()
