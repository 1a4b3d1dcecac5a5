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

"""Correlate host state reports: drop repeats, damp flapping hosts.

Several monitors (and Nova itself, once the controller forces a service
down) report the same fault. A tenant must hear of it once. And a host
whose link flaps must not toggle every tenant between active and standby:
while a host flaps, its recovery is held back until it has been stable
for a while. And a report observed before the host's current state was
(Nova's echo of a forced-down service, delivered after the monitor already
reported the host up again) is stale: it must not undo the newer state.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import threading
import time
import typing

from oslo_config import cfg
from oslo_log import log as logging

LOG = logging.getLogger(__name__)

GROUP = 'inspector'

OPTS = [
    cfg.FloatOpt('host_report_window',
                 default=60.0, min=0.0,
                 help='Seconds during which a report that a host is in the '
                      'state it was last reported in (down again, from '
                      'another monitor or from Nova) is dropped as a '
                      'repeat. 0 lets every report through.'),
    cfg.FloatOpt('flap_window',
                 default=60.0, min=0.0,
                 help='Seconds over which state changes of one host are '
                      'counted to detect flapping.'),
    cfg.IntOpt('flap_threshold',
               default=4, min=2,
               help='State changes within flap_window that make a host '
                    'flapping. A flapping host\'s recovery is held back '
                    'until it has stayed up for flap_window seconds; its '
                    'failures are always reported.'),
]

DOWN, UP = 'down', 'up'


@dataclasses.dataclass
class _HostState:
    state: str
    since: float
    changes: collections.deque = dataclasses.field(
        default_factory=collections.deque)
    held: typing.Any = None
    timer: threading.Timer | None = None
    #: When the report of the current state was observed (its ``time``).
    observed: datetime.datetime | None = None


def _aware(when: datetime.datetime) -> datetime.datetime:
    """``when`` with a time zone (naive times are UTC, as OpenStack's)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=datetime.timezone.utc)
    return when


class HostStateTracker:
    """Decide which host state reports go out.

    :param conf: configuration with the ``[inspector]`` options above
    :param release: called with a held recovery once the host has been
        stable long enough
    :param clock: monotonic seconds (injectable for tests)
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 release: typing.Callable[[typing.Any], object],
                 clock: typing.Callable[[], float] = time.monotonic) -> None:
        self._window = conf.inspector.host_report_window
        self._flap_window = conf.inspector.flap_window
        self._flap_threshold = conf.inspector.flap_threshold
        self._release = release
        self._clock = clock
        self._hosts: dict[str, _HostState] = {}
        self._lock = threading.Lock()

    def state(self, host: str) -> str | None:
        """The state last let through for ``host`` (None: never reported)."""
        with self._lock:
            entry = self._hosts.get(host)
            return entry.state if entry else None

    def admit(self, host: str, state: str, item: typing.Any,
              observed: datetime.datetime | None = None) -> bool:
        """Whether a report that ``host`` is ``state`` goes out now.

        :param item: what to hand to ``release`` if a recovery is held
        :param observed: when the report's source saw that state (its
            ``time`` trait); a change observed before the current state
            was is stale and dropped
        """
        now = self._clock()
        with self._lock:
            entry = self._hosts.get(host)
            if entry is None:
                self._hosts[host] = _HostState(state, now, observed=observed)
                return True
            if (state != entry.state and observed is not None
                    and entry.observed is not None
                    and _aware(observed) < _aware(entry.observed)):
                LOG.info('Host %s reported %s as of %s, before it was '
                         'reported %s (as of %s): stale report dropped',
                         host, state, observed.isoformat(), entry.state,
                         entry.observed.isoformat())
                return False
            if entry.held is not None and state == DOWN:
                # Down again while its recovery was held: the held
                # recovery is void and tenants already know it is down.
                self._cancel_hold(entry)
                self._record_change(entry, now)
                LOG.info('Host %s down again while flapping; its held '
                         'recovery is dropped', host)
                return False
            if state == entry.state:
                if now - entry.since < self._window:
                    LOG.info('Host %s reported %s again within %.0f s: '
                             'repeat dropped', host, state, self._window)
                    return False
                entry.since = now
                return True
            self._record_change(entry, now)
            if state == UP and len(entry.changes) >= self._flap_threshold:
                self._hold(host, entry, item)
                return False
            entry.state, entry.since = state, now
            entry.observed = observed
            return True

    def discard(self, host: str) -> None:
        """Forget ``host``, whose last report could not be published.

        The next report must not be taken for a repeat of it.
        """
        with self._lock:
            entry = self._hosts.pop(host, None)
            if entry is not None:
                self._cancel_hold(entry)

    def retain(self, keep: typing.Callable[[str], bool]) -> None:
        """Forget the hosts for which ``keep`` is false.

        A member of a cluster forgets the hosts it no longer owns.
        """
        with self._lock:
            gone = [host for host in self._hosts if not keep(host)]
            for host in gone:
                self._cancel_hold(self._hosts.pop(host))
        if gone:
            LOG.info('Forgot the state of %d host(s) this member no '
                     'longer owns', len(gone))

    def _record_change(self, entry: _HostState, now: float) -> None:
        entry.changes.append(now)
        while entry.changes and now - entry.changes[0] > self._flap_window:
            entry.changes.popleft()

    def _hold(self, host: str, entry: _HostState, item: typing.Any) -> None:
        LOG.warning('Host %s is flapping (%d state changes in %.0f s); its '
                    'recovery is held until it stays up for %.0f s', host,
                    len(entry.changes), self._flap_window, self._flap_window)
        self._cancel_hold(entry)
        entry.held = item
        entry.timer = threading.Timer(self._flap_window, self._expire,
                                      args=(host, entry))
        entry.timer.daemon = True
        entry.timer.start()

    def _cancel_hold(self, entry: _HostState) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        entry.held, entry.timer = None, None

    def _expire(self, host: str, entry: _HostState) -> None:
        with self._lock:
            if self._hosts.get(host) is not entry or entry.held is None:
                return
            item, entry.held, entry.timer = entry.held, None, None
            entry.state, entry.since = UP, self._clock()
            entry.changes.clear()
        LOG.info('Host %s stayed up for %.0f s: releasing its recovery',
                 host, self._flap_window)
        self._release(item)

    def close(self) -> None:
        """Cancel pending holds (their recoveries are not sent)."""
        with self._lock:
            for entry in self._hosts.values():
                self._cancel_hold(entry)
