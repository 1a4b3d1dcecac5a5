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

"""Exactly one member handles each change of a host's state.

The ring says who should handle a host, but two members can disagree for
a moment: the one that just joined and the one that has not yet seen it,
or the survivor of a takeover and a report retried from the dead
member. Before it tells the tenants, a member *claims* the change in the
shared database: a compare-and-set on the host's row
(``doctor_host_states``), keyed by the report's event id.

- ``WON``: the state changed (or a repeat came after ``[inspector]
  host_report_window``); this member tells the tenants and fixes Nova up.
- ``REPEAT``: the same event id set this state before: a report retried
  after its first receiver failed, or timed out, while that receiver
  handles it. Dropped. If the member that claimed it is no longer in the
  group (it died before it could answer), the claim passes to this member
  and the change is ``WON`` again: the tenants are told again under the
  same ids, which their receivers drop if they had them.

The owner records when it has made the Nova fix-up of a change
(``fixed_at``). A survivor that takes over a member's hosts also takes
over the changes it claimed and never fixed up (:meth:`HostClaims.
adopt_unfixed`), and makes those fix-ups.
- ``TAKEN``: another report (another monitor, another member) set this
  state within the window; dropped as a repeat, as one inspector drops it.
"""

from __future__ import annotations

import time
import typing

from oslo_log import log as logging
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from doctor_plugin.common import urls
from doctor_plugin.delivery import store as store_mod
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

WON, REPEAT, TAKEN = 'won', 'repeat', 'taken'

_TABLE = store_mod.HOST_STATES
#: What a host's row held before a claim: (state, event id, owner).
Previous = tuple[str, str, str]
#: Rounds of read-then-set before giving up on a row that keeps changing.
_ROUNDS = 5


class HostClaims:
    """Claims on host state changes in the shared database.

    :param store: the delivery store whose database the members share
    :param owner: this member's id, kept with each claim it wins
    :param window: ``[inspector] host_report_window``
    :param clock: wall-clock seconds (the members share it through NTP)
    :param fixups: whether changes need a Nova fix-up (the inspector has a
        controller); without, each claim is recorded as fixed up
    :param horizon: seconds after which a change never fixed up is no
        longer worth fixing up (``[delivery] deadline``)
    """

    def __init__(self, store: store_mod.DeliveryStore, owner: str,
                 window: float,
                 clock: typing.Callable[[], float] = time.time,
                 fixups: bool = True, horizon: float = 3600.0) -> None:
        self.engine = store.engine
        self.url = store.url
        self.owner = owner
        self.window = window
        self.fixups = fixups
        self.horizon = horizon
        self._clock = clock

    def claim(self, host: str, state: str, event_id: str,
              alive: typing.Callable[[str], bool] | None = None
              ) -> tuple[str, Previous | None]:
        """Claim that ``host`` is now ``state``, reported as ``event_id``.

        :param alive: whether a member is in the group now; a ``REPEAT``
            claimed by a member that is not passes to this one

        :returns: :data:`WON`, :data:`REPEAT` or :data:`TAKEN`, and the
            (state, event id, owner) the host had before (None if none),
            for :meth:`release`
        :raises DeliveryError: if the database could not be reached; the
            report is then not handled, and its sender retries it
        """
        try:
            for _ in range(_ROUNDS):
                outcome = self._round(host[:255], state, event_id[:255],
                                      alive)
                if outcome is not None:
                    return outcome
        except sa_exc.SQLAlchemyError as exc:
            raise exceptions.DeliveryError(
                f'could not claim the {state} report of host {host} in '
                f'the shared database {urls.redact(self.url)}: '
                f'{type(exc).__name__}: {getattr(exc, "orig", None) or exc}'
            ) from exc
        raise exceptions.DeliveryError(
            f'the state of host {host} kept changing under this member '
            f'({_ROUNDS} tries); retry the report')

    def _round(self, host: str, state: str, event_id: str,
               alive: typing.Callable[[str], bool] | None
               ) -> tuple[str, Previous | None] | None:
        now = self._clock()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(
                _TABLE.c.state, _TABLE.c.event_id, _TABLE.c.owner,
                _TABLE.c.updated_at
            ).where(_TABLE.c.host == host)).first()
            values = {'state': state, 'event_id': event_id,
                      'owner': self.owner, 'updated_at': now,
                      'fixed_at': None if self.fixups else now}
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(_TABLE.insert().values(
                            host=host, **values))
                except sa_exc.IntegrityError:
                    return None  # another member inserted it: read again
                return WON, None
            previous = (row.state, row.event_id, row.owner)
            if row.state == state:
                if row.event_id == event_id:
                    if (alive is None or row.owner == self.owner
                            or alive(row.owner)):
                        return REPEAT, previous
                    LOG.warning('Host %s: %s claimed %s %s and left the '
                                'group; this member takes the change '
                                'over', host, row.owner, state, event_id)
                elif now - row.updated_at < self.window:
                    LOG.info('Host %s was reported %s by %s %.1f s ago: '
                             'this report (%s) is a repeat', host, state,
                             row.event_id, now - row.updated_at, event_id)
                    return TAKEN, previous
            changed = conn.execute(_TABLE.update().where(
                _TABLE.c.host == host, _TABLE.c.state == row.state,
                _TABLE.c.event_id == row.event_id,
                _TABLE.c.owner == row.owner).values(**values)).rowcount
            return (WON, previous) if changed == 1 else None

    def release(self, host: str, event_id: str,
                previous: Previous | None) -> None:
        """Undo a claim won by ``event_id`` whose events were not published.

        The host goes back to ``previous`` (state, event id, owner), or to
        no row, so that the report's retry wins again. Best effort: a
        failure is logged, and the retry is then taken for a repeat.
        """
        try:
            with self.engine.begin() as conn:
                mine = sa.and_(_TABLE.c.host == host[:255],
                               _TABLE.c.event_id == event_id[:255],
                               _TABLE.c.owner == self.owner)
                if previous is None:
                    conn.execute(_TABLE.delete().where(mine))
                else:
                    conn.execute(_TABLE.update().where(mine).values(
                        state=previous[0], event_id=previous[1],
                        owner=previous[2]))
        except sa_exc.SQLAlchemyError as exc:
            LOG.error('Could not release the claim of host %s by %s: %s; '
                      'a retry of that report will be dropped as a repeat',
                      host, event_id, exc)

    def mark_fixed(self, host: str, event_id: str) -> None:
        """Record that the Nova fix-up of ``event_id`` on ``host`` is made.

        Best effort: if it fails, a survivor may make the fix-up again
        should this member die, which Nova takes as a no-op.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(_TABLE.update().where(
                    _TABLE.c.host == host[:255],
                    _TABLE.c.event_id == event_id[:255],
                    _TABLE.c.fixed_at.is_(None)).values(
                        fixed_at=self._clock()))
        except sa_exc.SQLAlchemyError as exc:
            LOG.error('Could not record the Nova fix-up of host %s (%s): '
                      '%s', host, event_id, exc)

    def unfixed_owners(self) -> set[str]:
        """Members with recent changes claimed and not fixed up."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(_TABLE.c.owner).where(
                _TABLE.c.fixed_at.is_(None),
                _TABLE.c.updated_at > self._clock() - self.horizon
            ).distinct()).scalars())

    def adopt_unfixed(self, from_owner: str,
                      mine: typing.Callable[[str], bool]
                      ) -> list[tuple[str, str, str]]:
        """Take over ``from_owner``'s changes that were never fixed up.

        Each row passes with a conditional update, so of two members only
        one gets it.

        :param mine: whether this member owns a host now; only those
            hosts' changes are taken

        :returns: the (host, state, event id) now this member's to fix up
        """
        taken = []
        with self.engine.begin() as conn:
            rows = conn.execute(sa.select(
                _TABLE.c.host, _TABLE.c.state, _TABLE.c.event_id).where(
                _TABLE.c.owner == from_owner, _TABLE.c.fixed_at.is_(None),
                _TABLE.c.updated_at > self._clock() - self.horizon)).all()
            for row in rows:
                if not mine(row.host):
                    continue
                changed = conn.execute(_TABLE.update().where(
                    _TABLE.c.host == row.host,
                    _TABLE.c.event_id == row.event_id,
                    _TABLE.c.owner == from_owner,
                    _TABLE.c.fixed_at.is_(None)).values(
                        owner=self.owner)).rowcount
                if changed == 1:
                    taken.append((row.host, row.state, row.event_id))
        return taken

    def states(self) -> dict[str, tuple[str, str, str, float]]:
        """host -> (state, event id, owner, updated at): for ``status``."""
        with self.engine.connect() as conn:
            return {row.host: (row.state, row.event_id, row.owner,
                               row.updated_at)
                    for row in conn.execute(sa.select(_TABLE))}
