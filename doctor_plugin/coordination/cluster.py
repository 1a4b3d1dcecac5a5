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

"""One member's part in the cluster: route reports, take over the dead.

:class:`Cluster` is what the inspector's engine asks: which of a batch's
host events this member handles, and the others handed to their owners
(:meth:`Cluster.dispatch`); whether a host's change is this member's to
make (:meth:`Cluster.claim`). :class:`Takeover` moves the pending
deliveries of members that left to one survivor.
"""

from __future__ import annotations

import threading
import time
import typing

from oslo_log import log as logging

from doctor_plugin.coordination import claims as claims_mod
from doctor_plugin.coordination import forward
from doctor_plugin.coordination import membership as membership_mod
from doctor_plugin.delivery import store as store_mod
from doctor_plugin import event as event_model
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)


class NotOwner(exceptions.DeliveryError):
    """This member may not act on a host now: it has no lease."""


Members = typing.Union[membership_mod.Membership, membership_mod.Standalone]


class Cluster:
    """Route host events to their owner and claim their changes.

    :param membership: the group, or :class:`~doctor_plugin.coordination.
        membership.Standalone`
    :param claims: the shared host states; None when alone
    :param forwarder: hands events to other members; None when alone
    :param host_event_types: the event types owned by a host (its
        ``host`` trait); other events are handled where they arrive
    """

    def __init__(self, membership: Members,
                 claims: claims_mod.HostClaims | None = None,
                 forwarder: forward.Forwarder | None = None,
                 host_event_types: typing.Collection[str] = (),
                 forward_timeout: float = 2.0) -> None:
        self.membership = membership
        self.claims = claims
        self.forwarder = forwarder
        self.host_event_types = frozenset(host_event_types)
        self.forward_timeout = forward_timeout
        self.stats = {'handed_over': 0, 'handed_over_retries': 0}

    @property
    def enabled(self) -> bool:
        return self.membership.enabled

    def split(self, events: typing.Sequence[event_model.Event]
              ) -> tuple[list[event_model.Event],
                         dict[str, tuple[membership_mod.Member,
                                         list[event_model.Event]]]]:
        """This member's events, and the others' by owner.

        :raises NotOwner: if this member has no lease
        """
        local: list[event_model.Event] = []
        remote: dict[str, tuple[membership_mod.Member,
                                list[event_model.Event]]] = {}
        me = self.membership.member_id
        for ev in events:
            host = (ev.trait('host') if ev.event_type in self.host_event_types
                    else None)
            if not host:
                local.append(ev)
                continue
            owner = self.membership.owner(str(host))
            if owner is None:
                raise self.no_lease()
            if owner.id == me:
                local.append(ev)
            else:
                remote.setdefault(owner.id, (owner, []))[1].append(ev)
        return local, remote

    def no_lease(self) -> NotOwner:
        membership = self.membership
        error = getattr(membership, 'last_error', '')
        return NotOwner(
            f'this inspector ({membership.member_id}) is not in touch with '
            f'its coordination backend'
            + (f' ({error})' if error else '')
            + ' and acts on no host; report to another inspector')

    def require_lease(self) -> None:
        if not self.membership.has_lease():
            raise self.no_lease()

    def dispatch(self, events: typing.Sequence[event_model.Event],
                 handle: typing.Callable[[list[event_model.Event]], object]
                 ) -> None:
        """Hand others' events to their owners; ``handle`` our own.

        An owner that does not answer is given the time the group takes
        to drop it (``member_timeout``) plus ``forward_timeout``; its
        events then go to the new owner, which may be this member.

        :raises DeliveryError: if an owner could not take its events in
            that time (or refused them), or ``handle`` failed
        """
        local, remote = self.split(events)
        if local:
            handle(local)
        if not remote:
            return
        assert self.forwarder is not None
        wait_limit = getattr(self.membership, 'member_timeout', 0.0)
        deadline = time.monotonic() + wait_limit + self.forward_timeout
        pending = list(remote.values())
        while pending:
            owner, batch = pending.pop()
            version = self.membership.view.version
            try:
                self.forwarder.send(owner, batch)
                self.stats['handed_over'] += len(batch)
                continue
            except forward.OwnerUnreachable as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                LOG.warning('%s; waiting up to %.1f s for the group to '
                            'change', exc, left)
                self.stats['handed_over_retries'] += 1
            self.membership.wait_for_change(
                version, min(left, max(0.05, wait_limit / 4)))
            mine, others = self.split(batch)
            if mine:
                handle(mine)
            pending.extend(others.values())

    def broadcast(self, events: typing.Sequence[event_model.Event]) -> None:
        """Hand ``events`` to every other member, as far as it can.

        For what every member must know, not only a host's owner (a
        monitor that says it is isolated). A member that cannot be
        reached is logged and skipped: it learns nothing it would act on
        wrongly, only less.
        """
        if not events or self.forwarder is None:
            return
        me = self.membership.member_id
        for member in self.membership.view.members.values():
            if member.id == me:
                continue
            try:
                self.forwarder.send(member, events)
            except exceptions.DeliveryError as exc:
                LOG.warning('Could not tell member %s of %d event(s) every '
                            'member must know: %s', member.id, len(events),
                            exc)

    def claim(self, host: str, state: str, event_id: str
              ) -> tuple[str, claims_mod.Previous | None]:
        """Whether this member makes ``host``'s change to ``state``.

        Alone, every change is this process's (its own correlation
        decides repeats).

        :raises NotOwner: if this member lost its lease
        :raises DeliveryError: if the shared database failed
        """
        if self.claims is None:
            return claims_mod.WON, None
        self.require_lease()
        members = self.membership.view.members
        return self.claims.claim(host, state, event_id,
                                 alive=members.__contains__)

    def release(self, host: str, event_id: str,
                previous: claims_mod.Previous | None) -> None:
        if self.claims is not None:
            self.claims.release(host, event_id, previous)

    def fixed(self, host: str, event_id: str) -> None:
        """Record that this member made the Nova fix-up of a claim."""
        if self.claims is not None:
            self.claims.mark_fixed(host, event_id)

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()


class Takeover:
    """Move the pending deliveries of departed members to one survivor.

    Each look (at a change of the group, and every ``interval`` seconds
    for members that died while no one watched) lists the owners of
    pending deliveries of this program that are not members; the one
    survivor the ring gives such an owner to adopts its rows in one
    conditional update and resumes them.

    :param membership: the group
    :param store: the shared delivery database
    :param program: this program's suffix of owner names
        (``:doctor-plugin-inspector``); other programs adopt their own
    :param resume: makes this process's outbox load its new rows
    """

    def __init__(self, membership: membership_mod.Membership,
                 store: store_mod.DeliveryStore, program: str,
                 resume: typing.Callable[[], object],
                 interval: float = 5.0,
                 claims: claims_mod.HostClaims | None = None,
                 fix_up: typing.Callable[[str, str, str], object]
                 | None = None) -> None:
        self.membership = membership
        self.store = store
        self.program = program
        self.resume = resume
        self.interval = interval
        self.claims = claims
        self.fix_up = fix_up
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='doctor-takeover')
        #: owner -> (rows adopted, time.time() when)
        self.adopted: dict[str, tuple[int, float]] = {}

    def start(self) -> Takeover:
        self._thread.start()
        return self

    def trigger(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sweep()
            except exceptions.DeliveryError as exc:
                LOG.error('Could not take over deliveries: %s', exc)
            except Exception:
                LOG.exception('Taking over deliveries failed')

    def _departed(self, owner: str, view: membership_mod.View) -> bool:
        return (owner != self.membership.member_id
                and owner not in view.members
                and owner.endswith(self.program))

    def sweep(self) -> int:
        """Adopt what is ours to adopt now; how many delivery rows.

        Also the departed members' claimed changes that they never fixed
        up, each by the member that owns the host now.
        """
        membership = self.membership
        if not membership.has_lease():
            return 0
        view = membership.view
        me = membership.member_id
        if self.claims is not None and self.fix_up is not None:
            self._fix_ups(view)
        total = 0
        for owner in sorted(self.store.pending_by_owner()):
            if not self._departed(owner, view):
                continue
            if view.owner_id(owner) != me or not membership.has_lease():
                continue
            moved = self.store.adopt(owner, me)
            if moved:
                LOG.warning('Took over %d pending deliveries of %s, which '
                            'left the group', moved, owner)
                self.adopted[owner] = (moved, time.time())
                total += moved
        if total:
            self.resume()
        return total

    def _fix_ups(self, view: membership_mod.View) -> None:
        assert self.claims is not None and self.fix_up is not None
        for owner in sorted(self.claims.unfixed_owners()):
            if not self._departed(owner, view):
                continue
            changes = self.claims.adopt_unfixed(owner, self.membership.owns)
            if changes:
                LOG.warning('Took over %d Nova fix-up(s) that %s claimed '
                            'and never made, of host(s) %s', len(changes),
                            owner, ', '.join(c[0] for c in changes))
            for change in changes:
                self.fix_up(*change)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)
