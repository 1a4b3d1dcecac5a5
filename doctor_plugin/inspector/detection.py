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

"""Corroborate host failures: never act on one monitor's word.

A heartbeat monitor that loses its own network, or a host that loses only
its management network, looks exactly like a dead host to one monitor.
Telling every tenant to fail over on that one report causes the attach
storm the inspector exists to prevent. So each host is ``up``,
``suspect`` or ``down``:

- The first down report makes a host ``suspect``, and a
  ``compute.host.suspect`` event goes on the bus for whoever wants the
  early signal. Tenants are not told, Nova is not touched.
- It becomes ``down`` (and the report goes on to the correlation, the
  tenants and the controller, as before) when ``[detection]
  required_reports`` (k) distinct monitors report it down within
  ``corroboration_window`` of each other, or when an independent signal
  confirms a standing report: Nova's ``service.update`` saying the
  service is down, the host's power state read from its BMC, or (if
  enabled) the report itself saying the host is silent on a second
  network plane.
- A monitor's vote stands until it reports the host up again (its
  heartbeats came back: a blip), until it says it is isolated, or for
  ``suspect_timeout``; the host is ``up`` again (``compute.host.suspect``
  with status ``cleared``) once no vote stands.
- A monitor that reports ``doctor.monitor.isolated`` lost its own
  network: its votes are dropped, and its down reports are discounted
  until it reports ``connected``.

With k = 1 (the default) every report goes on at once, as a single
monitor's did before; only the isolation discount applies.

Votes are counted by vantage point: the report's ``monitor_id`` (each
monitor of ``doctor-plugin-monitor`` sends its own), or its ``monitor``
when it has none (Doctor's sample monitor, Alertmanager). Times are the
inspector's own monotonic clock at receipt, so the monitors' clocks do not
matter.

This keeps its state in memory: in a cluster of inspectors the owner of a
host (which every report of it reaches) keeps its votes, and a host whose
owner changes starts again from ``up`` on its new owner.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin import event as event_model
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

GROUP = 'detection'

#: The signals that can confirm a single report.
NOVA_SERVICE, POWER_STATE, PLANE = 'nova_service', 'power_state', 'plane'

OPTS = [
    cfg.IntOpt('required_reports',
               default=1, min=1,
               help='k: how many distinct monitors must report a host down '
                    '(within corroboration_window) before tenants are told '
                    'and Nova is fixed up. 1 acts on the first report. '
                    'With k > 1 the first report makes the host suspect '
                    '(a compute.host.suspect event on the bus) and a '
                    'confirming signal (confirming_signals) can stand in '
                    'for the missing reports.'),
    cfg.IntOpt('monitors_per_host',
               default=1, min=1,
               help='n: how many monitors watch each host. It must be at '
                    'least required_reports; with n - k monitors dead or '
                    'isolated, failures are still detected.'),
    cfg.FloatOpt('corroboration_window',
                 default=2.0, min=0.0,
                 help='Seconds within which the k reports of a failure '
                      'must arrive. It must cover the spread of the '
                      "monitors' detection times (a heartbeat interval or "
                      'two, an indirect probe, report retries). Votes are '
                      'withdrawn when their monitor hears the host again, '
                      'so a longer window mostly matters for monitors '
                      'that never report a recovery.'),
    cfg.FloatOpt('suspect_timeout',
                 default=90.0, min=0.0,
                 help='Seconds a report keeps a host suspect (and '
                      'confirmable by a confirming signal) unless its '
                      'monitor withdraws it. Longer than Nova\'s '
                      'service_down_time plus its report_interval (70 s '
                      'by default) for Nova\'s own detection to confirm a '
                      'single report.'),
    cfg.ListOpt('confirming_signals',
                default=[NOVA_SERVICE, POWER_STATE],
                item_type=cfg.types.String(
                    choices=[NOVA_SERVICE, POWER_STATE, PLANE]),
                help='Signals that confirm a single report of a suspect '
                     'host. nova_service: a Nova service.update saying '
                     'nova-compute is down (heartbeat timeout; not a '
                     'forced-down echo). power_state: the host\'s BMC, '
                     'through the [fencing] driver, says its power is off '
                     '(read when the host becomes suspect). plane: the '
                     'report says the host is silent on two or more '
                     'heartbeat planes. Empty: only k reports make a host '
                     'down.'),
]

SUSPECT_EVENT_TYPE = 'compute.host.suspect'
ISOLATED_EVENT_TYPE = 'doctor.monitor.isolated'
DEGRADED_EVENT_TYPE = 'compute.host.degraded'
DOWN_EVENT_TYPE = 'compute.host.down'
UP_EVENT_TYPE = 'compute.host.up'

#: A suspect host's status in its ``compute.host.suspect`` events.
SUSPECT, CLEARED = 'suspect', 'cleared'

#: Where the votes come from: Nova's service.update (nova_service
#: transformer), and its cause for a down service found by heartbeat.
NOVA_MONITOR = 'nova'
NOVA_HEARTBEAT_TIMEOUT = 'heartbeat_timeout'

_SUSPECT_NAMESPACE = uuid.UUID('8f1d7a52-6c3e-4b9a-a0d4-2e7c5b1f9a36')

_TEXT = event_model.TraitType.TEXT
_INT = event_model.TraitType.INT


class HostState(str, enum.Enum):
    UP = 'up'
    SUSPECT = 'suspect'
    DOWN = 'down'


@dataclasses.dataclass(slots=True)
class _Vote:
    at: float
    event: event_model.Event


@dataclasses.dataclass(slots=True)
class _Host:
    state: HostState = HostState.UP
    #: vantage point → its standing down report
    votes: dict[str, _Vote] = dataclasses.field(default_factory=dict)
    #: confirming signals seen while suspect, by name
    signals: set[str] = dataclasses.field(default_factory=set)
    #: the report that first made it suspect
    first: event_model.Event | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one report.

    :param forward: the event to hand on to correlation and fan-out (the
        report itself, or, once corroborated, the report of the failure
        with the traits saying who confirmed it); None to hold it back
    :param publish: events to put on the bus only (suspicion changes)
    :param query_power: a host whose BMC power state should be read now
    """

    forward: event_model.Event | None
    publish: tuple[event_model.Event, ...] = ()
    query_power: str | None = None


def vantage_point(ev: event_model.Event) -> str:
    """Who reported ``ev``: its ``monitor_id``, else its ``monitor``."""
    return str(ev.trait('monitor_id') or ev.trait('monitor') or 'unknown')


def check_options(conf: cfg.ConfigOpts) -> None:
    """:raises ConfigurationError: if k exceeds n"""
    opts = conf[GROUP]
    if opts.required_reports > opts.monitors_per_host:
        raise exceptions.ConfigurationError(
            f'[{GROUP}] required_reports', opts.required_reports,
            f'more reports are required than monitors watch a host '
            f'(monitors_per_host = {opts.monitors_per_host}): no failure '
            f'could ever be confirmed by reports; set required_reports '
            f'<= monitors_per_host')


class Corroboration:
    """The suspect/down state of every host, on a clock the caller gives.

    :param conf: configuration with the ``[detection]`` options
    :param clock: monotonic seconds
    :param power_state: whether a power reader is configured (the
        ``power_state`` signal needs one)
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 clock: typing.Callable[[], float] = time.monotonic,
                 power_state: bool = False) -> None:
        check_options(conf)
        opts = conf[GROUP]
        self.required = opts.required_reports
        self.monitors = opts.monitors_per_host
        self.window = opts.corroboration_window
        self.suspect_timeout = opts.suspect_timeout
        self.signals = frozenset(opts.confirming_signals)
        self._power = power_state and POWER_STATE in self.signals
        self._clock = clock
        self._hosts: dict[str, _Host] = {}
        self._isolated: set[str] = set()
        self._lock = threading.Lock()

    @property
    def corroborating(self) -> bool:
        """Whether reports wait for corroboration (k > 1)."""
        return self.required > 1

    def state(self, host: str) -> HostState:
        with self._lock:
            entry = self._hosts.get(host)
            return entry.state if entry else HostState.UP

    def isolated(self) -> frozenset[str]:
        """The vantage points that said they are isolated."""
        with self._lock:
            return frozenset(self._isolated)

    def observe(self, ev: event_model.Event) -> Verdict:
        """Account for one event; say what to do with it."""
        if ev.event_type == ISOLATED_EVENT_TYPE:
            return self._isolation(ev)
        if ev.event_type not in (DOWN_EVENT_TYPE, UP_EVENT_TYPE):
            return Verdict(ev)
        host = ev.trait('host')
        if not host:
            return Verdict(ev)
        who = vantage_point(ev)
        if ev.event_type == UP_EVENT_TYPE:
            return self._up(str(host), who, ev)
        if who in self._isolated:
            LOG.warning('Host %s reported down by %s, which said it is '
                        'isolated: report discounted (event %s)', host, who,
                        ev.message_id)
            return Verdict(None)
        if not self.corroborating:
            with self._lock:
                self._hosts.pop(str(host), None)
            return Verdict(ev)
        return self._down(str(host), who, ev)

    def confirm(self, host: str, signal: str,
                source: event_model.Event | None = None) -> Verdict:
        """A confirming signal for ``host`` (such as its power is off).

        :returns: the corroborated failure to forward, if ``host`` was
            suspect
        """
        with self._lock:
            entry = self._hosts.get(host)
            if entry is None or entry.state is not HostState.SUSPECT:
                return Verdict(None)
            self._prune(entry, self._clock())
            if not entry.votes:
                return Verdict(None)
            entry.signals.add(signal)
            return self._decide(host, entry, source)

    def expire(self) -> list[event_model.Event]:
        """Withdraw the votes older than ``suspect_timeout``.

        :returns: the ``compute.host.suspect`` (cleared) events of the
            hosts no vote keeps suspect any more
        """
        now = self._clock()
        cleared = []
        with self._lock:
            for host, entry in list(self._hosts.items()):
                if entry.state is not HostState.SUSPECT:
                    continue
                self._prune(entry, now)
                if not entry.votes:
                    LOG.info('Host %s: no report of it stands after %.0f '
                             's; no longer suspect', host,
                             self.suspect_timeout)
                    cleared.append(self._clear(host, entry))
        return cleared

    def forget(self, keep: typing.Callable[[str], bool]) -> None:
        """Forget the hosts for which ``keep`` is false (no longer owned)."""
        with self._lock:
            for host in [h for h in self._hosts if not keep(h)]:
                del self._hosts[host]

    def _prune(self, entry: _Host, now: float) -> None:
        if self.suspect_timeout:
            for who in [w for w, vote in entry.votes.items()
                        if now - vote.at > self.suspect_timeout]:
                del entry.votes[who]

    def _down(self, host: str, who: str, ev: event_model.Event) -> Verdict:
        now = self._clock()
        with self._lock:
            entry = self._hosts.setdefault(host, _Host())
            if entry.state is HostState.DOWN:
                # Known down: the correlation drops the repeat, or takes
                # a report after its window as news.
                return Verdict(ev)
            self._prune(entry, now)
            entry.votes[who] = _Vote(now, ev)
            if ev.trait('monitor') == NOVA_MONITOR:
                if (NOVA_SERVICE in self.signals
                        and ev.trait('cause') == NOVA_HEARTBEAT_TIMEOUT):
                    entry.signals.add(NOVA_SERVICE)
                elif ev.trait('cause') != NOVA_HEARTBEAT_TIMEOUT:
                    # Forced down in Nova, by an operator: no monitor's
                    # guess to check.
                    entry.signals.add('forced_down')
            planes = str(ev.trait('planes') or '')
            if PLANE in self.signals and len(
                    [p for p in planes.split(',') if p.strip()]) >= 2:
                entry.signals.add(PLANE)
            verdict = self._decide(host, entry, ev)
        return verdict

    def _decide(self, host: str, entry: _Host,
                trigger: event_model.Event | None) -> Verdict:
        """Down if corroborated, else suspect (holding ``_lock``)."""
        monitors = {who: vote for who, vote in entry.votes.items()
                    if vote.event.trait('monitor') != NOVA_MONITOR}
        newest = max((vote.at for vote in monitors.values()), default=0.0)
        agreeing = sorted(who for who, vote in monitors.items()
                          if newest - vote.at <= self.window)
        signals = sorted(entry.signals)
        # A signal confirms a standing report; an operator's force-down
        # in Nova needs none.
        if (len(agreeing) >= self.required
                or (signals and monitors) or 'forced_down' in signals):
            report = self._report_of(entry, trigger)
            entry.state = HostState.DOWN
            entry.signals.clear()
            LOG.warning('Host %s is down: reported by %s%s (%d reports, '
                        '%d required)', host, ', '.join(agreeing) or
                        'no monitor', f', confirmed by {", ".join(signals)}'
                        if signals else '', len(agreeing), self.required)
            return Verdict(_confirmed(report, agreeing, signals,
                                      len(entry.votes)))
        if entry.state is HostState.SUSPECT:
            LOG.info('Host %s still suspect: %d of %d required reports '
                     '(%s)', host, len(agreeing), self.required,
                     ', '.join(agreeing))
            return Verdict(None)
        entry.state = HostState.SUSPECT
        entry.first = trigger
        assert trigger is not None
        LOG.warning('Host %s is suspect: reported down by %s; waiting for '
                    '%d of %d monitors or a confirming signal before '
                    'acting', host, vantage_point(trigger), self.required,
                    self.monitors)
        return Verdict(None, (self._suspect_event(host, entry, SUSPECT),),
                       query_power=host if self._power else None)

    @staticmethod
    def _report_of(entry: _Host,
                   trigger: event_model.Event | None) -> event_model.Event:
        """The report to forward: a monitor's, the latest standing one."""
        if (trigger is not None
                and trigger.trait('monitor') != NOVA_MONITOR):
            return trigger
        monitors = [vote for vote in entry.votes.values()
                    if vote.event.trait('monitor') != NOVA_MONITOR]
        if monitors:
            return max(monitors, key=lambda vote: vote.at).event
        assert trigger is not None or entry.votes
        return trigger or max(entry.votes.values(),
                              key=lambda vote: vote.at).event

    def _up(self, host: str, who: str, ev: event_model.Event) -> Verdict:
        with self._lock:
            if who in self._isolated:
                # It hears hosts: it is connected again.
                self._isolated.discard(who)
                LOG.info('Monitor %s reports again: its reports count '
                         'again', who)
            entry = self._hosts.get(host)
            if entry is None or entry.state is HostState.UP:
                return Verdict(ev)
            if entry.state is HostState.DOWN:
                del self._hosts[host]
                return Verdict(ev)
            entry.votes.pop(who, None)
            if entry.votes:
                LOG.info('Host %s: %s hears it again; still suspect for '
                         '%s', host, who, ', '.join(sorted(entry.votes)))
                return Verdict(None)
            LOG.info('Host %s: %s hears it again; no longer suspect',
                     host, who)
            return Verdict(None, (self._clear(host, entry),))

    def _clear(self, host: str, entry: _Host) -> event_model.Event:
        """Back to up (holding ``_lock``): the cleared event."""
        ev = self._suspect_event(host, entry, CLEARED)
        del self._hosts[host]
        return ev

    def _isolation(self, ev: event_model.Event) -> Verdict:
        who = vantage_point(ev)
        status = ev.trait('status')
        cleared: list[event_model.Event] = []
        with self._lock:
            if status == 'isolated':
                if who not in self._isolated:
                    LOG.warning('Monitor %s says it is isolated (every host '
                                'it watches went silent at once): its down '
                                'reports are discounted until it is '
                                'connected again', who)
                self._isolated.add(who)
                for host, entry in list(self._hosts.items()):
                    if (entry.state is HostState.SUSPECT
                            and entry.votes.pop(who, None) is not None
                            and not entry.votes):
                        cleared.append(self._clear(host, entry))
            else:
                if who in self._isolated:
                    LOG.info('Monitor %s is connected again: its reports '
                             'count again', who)
                self._isolated.discard(who)
        return Verdict(ev, tuple(cleared))

    def _suspect_event(self, host: str, entry: _Host,
                       status: str) -> event_model.Event:
        first = entry.first
        first_id = first.message_id if first is not None else host
        traits = [
            event_model.Trait('host', _TEXT, host),
            event_model.Trait('status', _TEXT, status),
            event_model.Trait('reports', _INT, len(entry.votes)),
            event_model.Trait('required_reports', _INT, self.required),
            event_model.Trait('monitors_per_host', _INT, self.monitors),
            event_model.Trait('monitor_ids', _TEXT,
                              ','.join(sorted(entry.votes))),
        ]
        if first is not None:
            for name in ('monitor', 'monitor_id', 'monitor_event_id',
                         'planes'):
                value = first.trait(name)
                if value:
                    traits.append(event_model.Trait(name, _TEXT, value))
        return event_model.Event.create(
            SUSPECT_EVENT_TYPE, traits,
            message_id=str(uuid.uuid5(_SUSPECT_NAMESPACE,
                                      f'{first_id}/{status}')))


def _confirmed(report: event_model.Event, agreeing: typing.Sequence[str],
               signals: typing.Sequence[str],
               votes: int) -> event_model.Event:
    """``report``, with the traits that say who confirmed it."""
    if not agreeing and not signals:
        return report
    extra = [event_model.Trait('confirmed_by', _TEXT,
                               ','.join(list(agreeing) + list(signals))),
             event_model.Trait('reports', _INT, votes),
             event_model.Trait('confirmed_at', event_model.TraitType.DATETIME,
                               event_model.utcnow())]
    names = {t.name for t in extra}
    return dataclasses.replace(report, traits=[
        t for t in report.traits if t.name not in names] + extra)
