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

"""Who the members are, and which of them owns a host.

:class:`Membership` keeps this process in a tooz group. It does not run
tooz's heart (``start(start_heart=False)``): its own thread beats every
``heartbeat_interval`` and reads the group in the same turn, so that a
member sees a change within one interval of the backend knowing it.

**The lease.** The backend drops a member ``member_timeout`` seconds after
the last heartbeat it received. A member therefore acts on hosts only
until ``member_timeout - lease_margin`` after it *sent* its last heartbeat
that succeeded: that is before the backend can have dropped it, so before
any survivor can have taken its hosts. A member cut off from the backend
stops by itself; nothing needs to reach it.

**The ring.** Each look at the group that finds other members builds a
new, immutable :class:`tooz.hashring.HashRing` and swaps it in, so readers
never lock. :class:`Standalone` is the same interface for a process
without a backend: it owns every host.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import typing

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import netutils

from doctor_plugin.common import urls
from doctor_plugin import exceptions

if typing.TYPE_CHECKING:
    from tooz import coordination as tooz_coordination
    from tooz import hashring

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Member:
    """A member of the group, as it announced itself when it joined."""

    id: str
    #: Its API's base URL, where other members hand it reports ('' for a
    #: member without an API, such as a listener).
    url: str = ''

    def capabilities(self) -> dict[str, str]:
        return {'url': self.url}

    @classmethod
    def from_capabilities(cls, member_id: str,
                          capabilities: typing.Any) -> Member:
        url = ''
        if isinstance(capabilities, dict):
            url = str(capabilities.get('url') or '')
        return cls(member_id, url)


@dataclasses.dataclass(frozen=True)
class View:
    """One look at the group: its members and their ring."""

    members: dict[str, Member]
    ring: hashring.HashRing | None
    #: Counts the changes this process saw.
    version: int

    @classmethod
    def of(cls, members: dict[str, Member], version: int = 0) -> View:
        """The view of ``members``, with the ring every member builds."""
        from tooz import hashring

        ring = hashring.HashRing(
            [m.encode('utf-8') for m in members]) if members else None
        return cls(members, ring, version)

    def owner_id(self, key: str) -> str | None:
        if self.ring is None:
            return None
        nodes = self.ring.get_nodes(key.encode('utf-8'))
        return next(iter(nodes)).decode('utf-8') if nodes else None


#: Called with (view, left member ids, joined member ids).
ChangeCallback = typing.Callable[[View, frozenset, frozenset], None]


def make_coordinator(url: str, member_id: str, member_timeout: float,
                     backend_timeout: float, namespace: str
                     ) -> tooz_coordination.CoordinationDriver:
    """A tooz coordinator for ``url``, not started.

    :param namespace: ``[coordination] group``. Redis keeps a member's
        heartbeat under its id alone, whatever its group: without a
        namespace of its own, a member of another region with the same id
        (``ctl-1:doctor-plugin-inspector``) would keep a dead member alive.

    :raises ConfigurationError: if tooz has no driver for the URL, or the
        driver's library is missing
    """
    from tooz import coordination as tooz_coordination

    options: dict[str, typing.Any] = {
        'membership_timeout': member_timeout,
        # Redis: how long one command may take; etcd3 and ZooKeeper
        # read 'timeout'.
        'socket_timeout': backend_timeout,
        'socket_connect_timeout': backend_timeout,
        'timeout': max(1, int(member_timeout)),
        # Run each call in the caller's thread: tooz's default pool
        # thread adds nothing here and takes a second to stop.
        'executor': 'synchronous',
        # Redis: the prefix of every key (groups and heartbeats).
        'namespace': f'_doctor_{namespace}',
    }
    for name in netutils.urlsplit(url).params():
        options.pop(name, None)
    try:
        return tooz_coordination.get_coordinator(
            url, member_id.encode('utf-8'), **options)
    except Exception as exc:
        raise exceptions.ConfigurationError(
            '[coordination] backend_url', urls.redact(url),
            f'cannot be used: {exc}; write e.g. redis://host:6379, '
            f'etcd3+http://host:2379 or zookeeper://host:2181 and '
            f'install the driver it needs') from None


def read_group(coordinator: typing.Any, group: str,
               timeout: float) -> dict[str, Member]:
    """The members of ``group`` as the backend has them now ({} if none).

    :param coordinator: a started tooz coordinator (it need not be a
        member of the group)
    """
    from tooz import coordination as tooz_coordination

    try:
        found = coordinator.get_members_with_capabilities(
            group.encode('utf-8')).get(timeout=timeout)
    except tooz_coordination.GroupNotCreated:
        return {}
    return _decode_members(found)


def _decode_members(found: typing.Mapping[bytes, typing.Any]
                    ) -> dict[str, Member]:
    return {m.decode('utf-8'): Member.from_capabilities(
        m.decode('utf-8'), caps) for m, caps in found.items()}


class Standalone:
    """A process that works alone: it owns every host, always."""

    enabled = False

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.me = Member(member_id)

    def start(self) -> Standalone:
        return self

    def stop(self) -> None:
        pass

    def owner(self, host: str) -> Member | None:
        return self.me

    def owns(self, host: str) -> bool:
        return True

    def has_lease(self) -> bool:
        return True

    @property
    def view(self) -> View:
        return View({self.member_id: self.me}, None, 0)

    def wait_for_change(self, version: int, timeout: float) -> bool:
        return False


class Membership:
    """This process in the tooz group ``group``; see the module.

    :param conf: configuration with the ``[coordination]`` options
    :param group: the group to join (``<[coordination] group>.inspector``)
    :param me: this member: its id (``[delivery] owner`` and program,
        unique in the group) and its API's URL
    :param on_change: called from the membership thread after each change
        of the members; must not block for long
    :param clock: monotonic seconds
    """

    enabled = True

    def __init__(self, conf: cfg.ConfigOpts, group: str, me: Member,
                 on_change: ChangeCallback | None = None,
                 clock: typing.Callable[[], float] = time.monotonic) -> None:
        opts = conf.coordination
        if not opts.backend_url:
            raise exceptions.ConfigurationError(
                '[coordination] backend_url', None,
                'is empty; without a backend this process works alone '
                '(use Standalone)')
        if opts.lease_margin >= opts.member_timeout:
            raise exceptions.ConfigurationError(
                '[coordination] lease_margin', str(opts.lease_margin),
                f'must be less than member_timeout '
                f'({opts.member_timeout}); a member would never hold a '
                f'lease')
        if opts.heartbeat_interval * 2 > opts.member_timeout - (
                opts.lease_margin):
            raise exceptions.ConfigurationError(
                '[coordination] heartbeat_interval',
                str(opts.heartbeat_interval),
                f'must be at most half of member_timeout - lease_margin '
                f'({opts.member_timeout - opts.lease_margin:g} s), or one '
                f'late heartbeat would lose the lease')
        self.url = opts.backend_url
        self.namespace = opts.group
        self.group = group
        self.me = me
        self.member_id = me.id
        self.interval = opts.heartbeat_interval
        self.member_timeout = opts.member_timeout
        self.lease_margin = opts.lease_margin
        self.backend_timeout = opts.backend_timeout
        self._on_change = on_change
        self._clock = clock
        self._coordinator: tooz_coordination.CoordinationDriver | None = None
        self._lease_until = 0.0
        self._joined = False
        self._view = View({}, None, 0)
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Why the last turn failed ('' once one succeeds).
        self.last_error = ''

    # The reading side: any thread, no locks.

    @property
    def view(self) -> View:
        return self._view

    def has_lease(self) -> bool:
        """Whether this member may act on hosts now."""
        return self._clock() < self._lease_until

    def owner(self, host: str) -> Member | None:
        """The member that owns ``host``; None without a lease."""
        if not self.has_lease():
            return None
        view = self._view
        owner_id = view.owner_id(host)
        if owner_id is None:
            return None
        return view.members.get(owner_id)

    def owns(self, host: str) -> bool:
        owner = self.owner(host)
        return owner is not None and owner.id == self.member_id

    def wait_for_change(self, version: int, timeout: float) -> bool:
        """Wait until the view is newer than ``version``, or a timeout."""
        end = self._clock() + timeout
        with self._changed:
            while self._view.version <= version:
                left = end - self._clock()
                if left <= 0 or self._stop.is_set():
                    return False
                self._changed.wait(left)
        return True

    # The membership thread.

    def start(self) -> Membership:
        """Join the group (waiting up to member_timeout for the backend).

        A backend that is down at start is not fatal: the thread keeps
        trying, and the member acts on no host until it has joined.
        """
        from tooz import coordination as tooz_coordination  # noqa: F401

        self._coordinator = self._make_coordinator()
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name=f'doctor-membership-{self.group}')
        self._thread.start()
        ready = self.wait_for_change(0, self.member_timeout)
        if not ready:
            LOG.warning('Not in the coordination group %s at %s yet (%s); '
                        'this member acts on no host until it is',
                        self.group, urls.redact(self.url),
                        self.last_error or 'no answer')
        return self

    def _make_coordinator(self) -> tooz_coordination.CoordinationDriver:
        return make_coordinator(self.url, self.member_id, self.member_timeout,
                                self.backend_timeout, self.namespace)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            try:
                self._turn(started)
            except Exception as exc:  # tooz wraps every backend failure
                self._failed(exc)
            self._stop.wait(max(0.0, self.interval
                                - (self._clock() - started)))
        self._leave()

    def _turn(self, started: float) -> None:
        from tooz import coordination as tooz_coordination

        coordinator = self._coordinator
        assert coordinator is not None
        if not self._joined:
            self._join(coordinator)
        coordinator.heartbeat()
        try:
            found = coordinator.get_members_with_capabilities(
                self.group.encode('utf-8')).get(timeout=self.backend_timeout)
        except tooz_coordination.GroupNotCreated:
            self._joined = False
            raise
        if self.me.id.encode('utf-8') not in found:
            # Dropped by the others while we were cut off: join again,
            # and act on nothing until we are back in.
            LOG.warning('This member %s is no longer in the group %s (it '
                        'was cut off from the backend for longer than '
                        'member_timeout); joining again', self.member_id,
                        self.group)
            self._joined = False
            self._lease_until = 0.0
            self._publish(_decode_members({}))
            return
        self._lease_until = started + self.member_timeout - self.lease_margin
        if self.last_error:
            LOG.info('Back in touch with the coordination backend at %s',
                     urls.redact(self.url))
            self.last_error = ''
        self._publish(_decode_members(found))

    def _join(self, coordinator: typing.Any) -> None:
        from tooz import coordination as tooz_coordination

        if not getattr(coordinator, 'is_started', False):
            coordinator.start(start_heart=False)
        group = self.group.encode('utf-8')
        try:
            coordinator.create_group(group).get(
                timeout=self.backend_timeout)
        except tooz_coordination.GroupAlreadyExist:
            pass
        try:
            coordinator.join_group(group, self.me.capabilities()).get(
                timeout=self.backend_timeout)
        except tooz_coordination.MemberAlreadyExist:
            coordinator.update_capabilities(
                group, self.me.capabilities()).get(
                    timeout=self.backend_timeout)
        self._joined = True
        LOG.info('Joined the coordination group %s as %s', self.group,
                 self.member_id)

    def _publish(self, members: dict[str, Member]) -> None:
        old = self._view
        if members == old.members and old.version:
            return
        view = View.of(members, old.version + 1)
        with self._changed:
            self._view = view
            self._changed.notify_all()
        left = frozenset(old.members) - frozenset(members)
        joined = frozenset(members) - frozenset(old.members)
        LOG.info('Coordination group %s: %d member(s)%s%s', self.group,
                 len(members),
                 f'; left: {", ".join(sorted(left))}' if left else '',
                 f'; joined: {", ".join(sorted(joined))}' if joined else '')
        if self._on_change is not None:
            try:
                self._on_change(view, left, joined)
            except Exception:
                LOG.exception('Handling the change of group %s failed',
                              self.group)

    def _failed(self, exc: Exception) -> None:
        error = f'{type(exc).__name__}: {exc}'
        if error != self.last_error:
            held = self.has_lease()
            LOG.error('The coordination backend at %s failed: %s; %s',
                      urls.redact(self.url), error,
                      f'this member keeps acting on its hosts for at most '
                      f'{max(0.0, self._lease_until - self._clock()):.2f} s'
                      if held else 'this member acts on no host until it '
                      'is back')
        self.last_error = error
        if not self.has_lease() and self._view.members:
            # The ring of a member without a lease is nobody's business:
            # it must not seem to own anything.
            self._publish({})

    def _leave(self) -> None:
        coordinator = self._coordinator
        if coordinator is None:
            return
        try:
            if self._joined:
                coordinator.leave_group(self.group.encode('utf-8')).get(
                    timeout=self.backend_timeout)
        except Exception as exc:
            LOG.info('Could not leave the group %s cleanly (%s); the '
                     'backend drops this member after member_timeout',
                     self.group, exc)
        try:
            coordinator.stop()
        except Exception as exc:
            LOG.debug('Stopping the tooz coordinator failed: %s', exc)

    def stop(self) -> None:
        """Leave the group: the others take our hosts at once."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(self.member_timeout + 1.0)
