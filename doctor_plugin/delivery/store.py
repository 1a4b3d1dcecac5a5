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

"""Where deliveries wait until they are made: a table in SQL.

SQLAlchemy Core over any database it speaks: a SQLite file by default (in
WAL mode, so a commit is a write to the log, not a sync of the database),
or a server such as PostgreSQL or MariaDB that several inspectors share.
Rows are kept only while a delivery is pending or after it was given up
(dead-lettered): a delivered row is deleted.

Besides deliveries, the store keeps the bus messages that were rejected as
malformed (poison messages), once each, for an operator to look at.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import threading
import time
import typing

from oslo_log import log as logging
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from doctor_plugin.common import retry
from doctor_plugin.common import urls
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

PENDING, DEAD = 'pending', 'dead'
STATUSES = (PENDING, DEAD)

#: The longest text kept of an error or a rejected message.
MAX_TEXT = 4000

_METADATA = sa.MetaData()

DELIVERIES = sa.Table(
    'doctor_deliveries', _METADATA,
    # Made by the writer (see Outbox): ordered by time of recording.
    sa.Column('id', sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column('owner', sa.String(255), nullable=False),
    sa.Column('ordering_key', sa.String(767), nullable=False),
    sa.Column('target', sa.Text, nullable=False),
    sa.Column('event_id', sa.String(255), nullable=False),
    sa.Column('label', sa.String(255), nullable=False),
    sa.Column('payload', sa.LargeBinary, nullable=False),
    sa.Column('status', sa.String(16), nullable=False),
    sa.Column('attempts', sa.Integer, nullable=False),
    sa.Column('created_at', sa.Float, nullable=False),
    sa.Column('next_attempt_at', sa.Float, nullable=False),
    sa.Column('deadline_at', sa.Float, nullable=False),
    sa.Column('last_error', sa.Text),
    sa.Index('doctor_deliveries_owner_status', 'owner', 'status'),
)

REJECTED = sa.Table(
    'doctor_rejected_messages', _METADATA,
    sa.Column('id', sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column('owner', sa.String(255), nullable=False),
    sa.Column('source', sa.String(255), nullable=False),
    sa.Column('message_id', sa.String(255)),
    sa.Column('event_type', sa.String(255)),
    sa.Column('reason', sa.Text, nullable=False),
    sa.Column('body', sa.Text, nullable=False),
    sa.Column('created_at', sa.Float, nullable=False),
)


#: The state of each host as the members of a cluster last agreed it:
#: ``[coordination]``'s exactly-once record of who handled which fault
#: (see :mod:`doctor_plugin.coordination.claims`). Here so that one
#: creation under one lock makes every table of the shared database.
HOST_STATES = sa.Table(
    'doctor_host_states', _METADATA,
    sa.Column('host', sa.String(255), primary_key=True),
    sa.Column('state', sa.String(16), nullable=False),
    sa.Column('event_id', sa.String(255), nullable=False),
    sa.Column('owner', sa.String(255), nullable=False),
    sa.Column('updated_at', sa.Float, nullable=False),
    # When the owner finished the Nova fix-up of this change; NULL while
    # it has not, so that a survivor makes it if the owner died.
    sa.Column('fixed_at', sa.Float, nullable=True),
)


@dataclasses.dataclass(slots=True)
class Delivery:
    """One payload for one target, as recorded.

    :param key: deliveries of one key are made in order (an alarm at one
        URL, a topic of the bus)
    :param target: the notifier URL
    :param event_id: the idempotency key receivers see
    :param label: what to call it in logs (an alarm's name)
    :param payload: what the notifier sends, in its own encoding
    """

    id: int
    key: str
    target: str
    event_id: str
    label: str
    payload: bytes
    deadline: float
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str | None = None
    status: str = PENDING
    created: float = 0.0
    owner: str = ''
    #: :attr:`~doctor_plugin.delivery.recordable.Prepared.decoded`, not
    #: recorded; None once an attempt failed, so that retries send the
    #: recorded copy.
    decoded: typing.Any = dataclasses.field(default=None, repr=False,
                                            compare=False)


class IdClock:
    """Ids that grow: nanoseconds since the epoch, never repeated.

    Made by the writer rather than the database so that a delivery is
    known to its process before its row can be read back by the poller.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


def _sqlite_pragmas(dbapi_conn: typing.Any, record: typing.Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL: readers do not block the writer, and a commit appends to the
    # log. NORMAL: the log is synced at checkpoints, so a process that is
    # killed loses nothing committed; a power cut may lose the last
    # transactions (use a database server where that matters).
    # First the wait, so that a service that finds the file locked by
    # another (which is switching it to WAL, or making the tables) waits
    # for it instead of failing.
    cursor.execute('PRAGMA busy_timeout=10000')
    # Switching a new file to WAL takes its exclusive lock. When another
    # connection holds the file's write lock meanwhile (making the tables)
    # SQLite may refuse at once, without the busy handler, to break what
    # would be a deadlock: try again for as long as the busy handler
    # would have waited.
    retry.call(lambda: cursor.execute('PRAGMA journal_mode=WAL'),
               backoff=_WAL_BACKOFF, retry_if=_locked, deadline=10.0)
    cursor.execute('PRAGMA synchronous=NORMAL')
    cursor.close()


_WAL_BACKOFF = retry.Backoff(0.005, 0.1)


def _locked(exc: BaseException) -> bool:
    return (isinstance(exc, sqlite3.OperationalError)
            and 'locked' in str(exc))


#: How long a service waits for another that is making the tables.
SCHEMA_LOCK_TIMEOUT = 60

#: The PostgreSQL advisory lock (one bigint) and the MySQL named lock
#: held while the tables are made; other programs sharing the database
#: must not use them.
SCHEMA_LOCK_KEY = 0x646F63746F720001  # 'doctor', then 1
SCHEMA_LOCK_NAME = 'doctor_plugin.delivery.schema'


def missing_schema(conn: sa.Connection) -> list[str]:
    """The tables and indexes of the store that ``conn``'s database lacks."""
    inspector = sa.inspect(conn)
    missing = []
    for table in _METADATA.sorted_tables:
        if not inspector.has_table(table.name):
            missing.append(table.name)
            continue
        have = {index['name'] for index in inspector.get_indexes(table.name)}
        missing.extend(str(index.name) for index in table.indexes
                       if index.name not in have)
    return missing


def make_schema(engine: sa.Engine) -> None:
    """Make the store's missing tables and indexes, once among many.

    Services that start together on one database (an inspector and a
    listener at boot, on one host's ``state_path``) all find the tables
    missing; checking and then creating would let all but one fail on
    "already exists". So the check and the creation are done by one
    process at a time, under a lock of the database itself:

    - SQLite: a write transaction (``BEGIN IMMEDIATE``), in which its DDL
      is transactional; the others wait in their busy handler;
    - PostgreSQL: a transaction-scoped advisory lock
      (``pg_advisory_xact_lock``), released by the commit that makes the
      tables visible, read committed so that the next holder sees them;
    - MySQL and MariaDB, whose DDL commits by itself: a named lock
      (``GET_LOCK``) around the check and the creation.

    Another database is checked again after a failed creation: if
    someone else made the tables meanwhile, that is success.

    :raises ConfigurationError: if the database cannot be opened, or the
        tables cannot be made, saying which
    """
    url = urls.redact(engine.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            if not missing_schema(conn):
                return
    except sa_exc.SQLAlchemyError as exc:
        raise exceptions.ConfigurationError(
            '[delivery] connection', url,
            f'cannot be opened: {_reason(exc)}; check that the database '
            f'(or its directory) exists and that this service may connect '
            f'to it and write to it') from None
    name = engine.dialect.name

    def create() -> None:
        try:
            _create_schema(engine, name)
        except sa_exc.SQLAlchemyError:
            # Made by another service meanwhile?
            try:
                with engine.connect() as conn:
                    if not missing_schema(conn):
                        return
            except sa_exc.SQLAlchemyError:
                pass
            raise

    # The databases with a lock of their own are made under it, once;
    # another is tried again, a little later, in case a concurrent
    # creation got in the way.
    locked = name in ('sqlite', 'postgresql', 'mysql', 'mariadb')
    try:
        retry.call(create, backoff=_SCHEMA_BACKOFF,
                   retry_if=lambda e: isinstance(e, sa_exc.SQLAlchemyError),
                   attempts=1 if locked else 3,
                   before_sleep=lambda attempt, exc, wait: LOG.debug(
                       'Making the delivery tables failed (%s); again in '
                       '%.2f s', _reason(exc), wait))
        return
    except sa_exc.SQLAlchemyError as exc:
        error = exc
    raise exceptions.ConfigurationError(
        '[delivery] connection', url,
        f'is open, but its tables cannot be made: {_reason(error)}; '
        f'check that no other program keeps it locked and that this '
        f'service may create tables in it (or start it once as a user '
        f'who may)'
    ) from None


_SCHEMA_BACKOFF = retry.Backoff(0.05, 0.2)


def _create_schema(engine: sa.Engine, name: str) -> None:
    """Make the missing tables under the lock of database ``name``."""
    if name == 'sqlite':
        with engine.connect() as conn:
            # pysqlite would run the DDL outside a transaction.
            conn.exec_driver_sql('BEGIN IMMEDIATE')
            _create_missing(conn)
            conn.commit()
    elif name == 'postgresql':
        with engine.connect().execution_options(
                isolation_level='READ COMMITTED') as conn:
            conn.exec_driver_sql(
                f"SET LOCAL lock_timeout = '{SCHEMA_LOCK_TIMEOUT}s'")
            conn.execute(sa.select(
                sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
            _create_missing(conn)
            conn.commit()
    elif name in ('mysql', 'mariadb'):
        with engine.connect() as conn:
            _mysql_locked(conn, lambda: _create_missing(conn))
    else:
        with engine.begin() as conn:
            _create_missing(conn)


def _create_missing(conn: sa.Connection) -> None:
    # create_all makes the indexes of the tables it makes, not those
    # missing from a table that is there.
    _METADATA.create_all(conn)
    for table in _METADATA.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def _mysql_locked(conn: sa.Connection,
                  run: typing.Callable[[], typing.Any]) -> None:
    got = conn.execute(sa.select(sa.func.get_lock(
        SCHEMA_LOCK_NAME, SCHEMA_LOCK_TIMEOUT))).scalar()
    if got != 1:
        raise sa_exc.OperationalError(
            'SELECT GET_LOCK(...)', {}, RuntimeError(
                f'another service held the lock {SCHEMA_LOCK_NAME} for '
                f'more than {SCHEMA_LOCK_TIMEOUT} s'))
    try:
        run()
        conn.commit()
    finally:
        conn.execute(sa.select(sa.func.release_lock(SCHEMA_LOCK_NAME)))
        conn.commit()


class DeliveryStore:
    """The deliveries and rejected messages tables of one database.

    :param url: a SQLAlchemy database URL
    :raises ConfigurationError: if the database cannot be opened or its
        tables made
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa_exc.ArgumentError as exc:
            raise exceptions.ConfigurationError(
                '[delivery] connection', urls.redact(url),
                f'is not a database URL ({exc}); write e.g. '
                f'sqlite:////var/lib/doctor_plugin/deliveries.sqlite or '
                f'postgresql+psycopg2://user:password@host/doctor') from None
        kwargs: dict[str, typing.Any] = {}
        if parsed.get_backend_name() == 'sqlite':
            path = parsed.database
            if path and path != ':memory:':
                directory = os.path.dirname(os.path.abspath(path))
                try:
                    os.makedirs(directory, exist_ok=True)
                except OSError as exc:
                    raise exceptions.ConfigurationError(
                        '[delivery] connection', urls.redact(url),
                        f'cannot create the directory of the database: '
                        f'{exc}; set [DEFAULT] state_path to a writable '
                        f'directory or [delivery] connection to another '
                        f'database') from None
            else:
                # One connection, or every thread would see its own empty
                # in-memory database.
                kwargs['poolclass'] = sa.pool.StaticPool
                kwargs['connect_args'] = {'check_same_thread': False}
        else:
            kwargs['pool_pre_ping'] = True
        try:
            self.engine = sa.create_engine(url, **kwargs)
        except (sa_exc.ArgumentError, ImportError) as exc:
            raise exceptions.ConfigurationError(
                '[delivery] connection', urls.redact(url),
                f'cannot be used: {exc}; install the database driver it '
                f'names (e.g. psycopg2 for postgresql://, PyMySQL for '
                f'mysql+pymysql://)') from None
        #: Writers of a SQLite file take turns here: SQLite lets one
        #: write at a time, and a writer that finds the file locked sleeps
        #: in its busy handler (1 ms, 2 ms, 5 ms, ...), which the webhooks
        #: of a fault waited for when the bus and the alarms recorded
        #: their deliveries at once. A database server needs no turns.
        self._turns: threading.Lock | None = None
        if parsed.get_backend_name() == 'sqlite':
            sa.event.listen(self.engine, 'connect', _sqlite_pragmas)
            self._turns = threading.Lock()
        try:
            make_schema(self.engine)
        except exceptions.ConfigurationError:
            self.engine.dispose()
            raise

    # Writes on the notification path raise DeliveryError: the caller
    # must not acknowledge what it could not record.

    def add(self, owner: str, deliveries: typing.Sequence[Delivery]) -> None:
        """Record new pending deliveries (one transaction)."""
        rows = [{'id': d.id, 'owner': owner, 'ordering_key': d.key,
                 'target': d.target, 'event_id': d.event_id,
                 'label': d.label[:255], 'payload': d.payload,
                 'status': PENDING, 'attempts': d.attempts,
                 'created_at': d.created, 'next_attempt_at': d.next_attempt,
                 'deadline_at': d.deadline, 'last_error': None}
                for d in deliveries]
        self._write('record %d deliveries' % len(rows),
                    lambda conn: conn.execute(DELIVERIES.insert(), rows))

    def delete(self, ids: typing.Sequence[int]) -> None:
        """Forget delivered rows."""
        def run(conn):
            for start in range(0, len(ids), 500):
                conn.execute(DELIVERIES.delete().where(
                    DELIVERIES.c.id.in_(ids[start:start + 500])))
        self._write(f'forget {len(ids)} delivered rows', run)

    def update(self, delivery: Delivery) -> None:
        """Save a delivery's attempts, next attempt, error and status."""
        self._write('update a delivery', lambda conn: conn.execute(
            DELIVERIES.update().where(DELIVERIES.c.id == delivery.id).values(
                attempts=delivery.attempts,
                next_attempt_at=delivery.next_attempt,
                last_error=(delivery.last_error or '')[:MAX_TEXT],
                status=delivery.status)))

    def reject(self, owner: str, row_id: int, source: str,
               message_id: str | None, event_type: str | None,
               reason: str, body: str) -> None:
        """Keep a rejected (poison) message."""
        self._write('keep a rejected message', lambda conn: conn.execute(
            REJECTED.insert(), [{
                'id': row_id, 'owner': owner, 'source': source[:255],
                'message_id': (message_id or '')[:255] or None,
                'event_type': (event_type or '')[:255] or None,
                'reason': reason[:MAX_TEXT], 'body': body[:MAX_TEXT],
                'created_at': time.time()}]))

    def _write(self, what: str,
               run: typing.Callable[[sa.Connection], typing.Any]) -> None:
        try:
            if self._turns is None:
                with self.engine.begin() as conn:
                    run(conn)
            else:
                with self._turns, self.engine.begin() as conn:
                    run(conn)
        except sa_exc.SQLAlchemyError as exc:
            raise exceptions.DeliveryError(
                f'could not {what} in the delivery database '
                f'{urls.redact(self.url)}: {_reason(exc)}. Check that the '
                f'database is reachable and has space.') from exc

    # Reads and operator actions.

    def pending_ids(self, owner: str) -> list[int]:
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(
                sa.select(DELIVERIES.c.id).where(
                    DELIVERIES.c.owner == owner,
                    DELIVERIES.c.status == PENDING).order_by(
                        DELIVERIES.c.id))]

    def load(self, ids: typing.Sequence[int]) -> list[Delivery]:
        """The deliveries of ``ids`` (those still there), by id."""
        found: list[Delivery] = []
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                found.extend(_delivery(row) for row in conn.execute(
                    sa.select(DELIVERIES).where(
                        DELIVERIES.c.id.in_(ids[start:start + 500]))))
        found.sort(key=lambda d: d.id)
        return found

    def find(self, status: str | None = None, owner: str | None = None,
             limit: int = 100) -> list[Delivery]:
        """Deliveries, oldest first."""
        query = sa.select(DELIVERIES).order_by(DELIVERIES.c.id).limit(limit)
        if status:
            query = query.where(DELIVERIES.c.status == status)
        if owner:
            query = query.where(DELIVERIES.c.owner == owner)
        with self.engine.connect() as conn:
            return [_delivery(row) for row in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """Rows by status, and the rejected messages."""
        with self.engine.connect() as conn:
            counts = {status: count for status, count in conn.execute(
                sa.select(DELIVERIES.c.status, sa.func.count()).group_by(
                    DELIVERIES.c.status))}
            counts['rejected'] = conn.execute(
                sa.select(sa.func.count()).select_from(REJECTED)).scalar()
        return counts

    def pending_by_owner(self) -> dict[str, int]:
        """Pending deliveries per owner."""
        with self.engine.connect() as conn:
            return {owner: count for owner, count in conn.execute(
                sa.select(DELIVERIES.c.owner, sa.func.count()).where(
                    DELIVERIES.c.status == PENDING).group_by(
                        DELIVERIES.c.owner))}

    def adopt(self, from_owner: str, to_owner: str) -> int:
        """Hand the pending deliveries of ``from_owner`` to ``to_owner``.

        One conditional update: of two members adopting at once, one gets
        the rows and the other none. Attempts, deadlines and order are
        kept; dead-lettered rows stay with their owner.

        :returns: how many rows changed hands
        :raises DeliveryError: if the database could not be written
        """
        moved = [0]

        def run(conn: sa.Connection) -> None:
            moved[0] = conn.execute(DELIVERIES.update().where(
                DELIVERIES.c.owner == from_owner,
                DELIVERIES.c.status == PENDING).values(
                    owner=to_owner)).rowcount
        self._write(f'take over the deliveries of {from_owner}', run)
        return moved[0]

    def retry(self, ids: typing.Sequence[int] | None, deadline: float,
              owner: str | None = None, from_owner: str | None = None,
              status: str = DEAD) -> int:
        """Make deliveries pending again, to be made before ``deadline``.

        :param ids: which; None for every row of ``status``
        :param owner: hand them to this owner (an inspector's
            ``[delivery] owner``) instead of their own
        :param from_owner: only rows of this owner
        :returns: how many rows changed
        """
        query = DELIVERIES.update()
        if ids is not None:
            query = query.where(DELIVERIES.c.id.in_(list(ids)))
        else:
            query = query.where(DELIVERIES.c.status == status)
        if from_owner:
            query = query.where(DELIVERIES.c.owner == from_owner)
        values: dict[str, typing.Any] = {
            'status': PENDING, 'attempts': 0, 'next_attempt_at': 0.0,
            'deadline_at': deadline}
        if owner:
            values['owner'] = owner
        with self.engine.begin() as conn:
            return conn.execute(query.values(**values)).rowcount

    def rejected(self, limit: int = 100) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(
                sa.select(REJECTED).order_by(REJECTED.c.id).limit(limit))]

    def close(self) -> None:
        self.engine.dispose()


def _delivery(row: typing.Any) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m['id'], key=m['ordering_key'], target=m['target'],
        event_id=m['event_id'], label=m['label'], payload=m['payload'],
        deadline=m['deadline_at'], attempts=m['attempts'],
        next_attempt=m['next_attempt_at'], last_error=m['last_error'],
        status=m['status'], created=m['created_at'], owner=m['owner'])


def _reason(exc: BaseException) -> str:
    """The driver's message, without the statement and its parameters."""
    orig = getattr(exc, 'orig', None)
    return f'{type(orig or exc).__name__}: {orig or exc}'.strip()
