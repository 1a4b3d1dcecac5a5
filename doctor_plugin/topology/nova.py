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

"""Keep the host → instances map current from Nova.

:class:`NovaTopologySync` loads every server from Nova's API at start and
again every ``[inspector] topology_resync_interval`` seconds, and applies
Nova's versioned ``instance.*`` notifications in between, so that when a
host fails the inspector already knows whom to tell.

Two sources, one order. Every record carries Nova's ``updated_at`` of the
state it shows; an update older than what the map holds is dropped, so a
notification that arrives late, or a resync page fetched before a
notification arrived, never undoes a newer state. Removals leave a
tombstone for ``[inspector] topology_tombstone_lifetime`` seconds: a
deleted instance stays deleted whatever arrives after its deletion.

If Nova cannot be reached at start the inspector still comes up, with an
empty map (host events then go out without per-tenant fan-out), logs an
error and retries in the background with backoff until a load succeeds.
"""

from __future__ import annotations

import calendar
import collections
import dataclasses
import datetime
import socket
import threading
import time
import typing

from oslo_config import cfg
from oslo_log import log as logging
import oslo_messaging

from doctor_plugin.common import messaging
from doctor_plugin.common import retry
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.topology import hosts as topology_mod

LOG = logging.getLogger(__name__)

GROUP = 'inspector'

OPTS = [
    cfg.IntOpt('topology_resync_interval',
               default=600, min=0,
               help='Seconds between full reloads of the host → instances '
                    'map from Nova\'s API (GET /servers/detail), which '
                    'repair anything the instance notifications missed. '
                    '0 disables the periodic reload (the map is still '
                    'loaded at start).'),
    cfg.IntOpt('topology_tombstone_lifetime',
               default=3600, min=1,
               help='Seconds to remember that an instance was deleted or '
                    'left its host, so that an older notification or '
                    'resync page arriving later does not bring it back. '
                    'Keep it above the longest delay of a notification and '
                    'above the time a resync takes.'),
    cfg.StrOpt('topology_notification_pool',
               help='Listener pool for the instance notifications that '
                    'keep the map current. Every inspector needs all of '
                    'them, so each must have a pool of its own; unset, it '
                    'is "doctor-inspector-topology-<host name>".'),
]

#: Nova's vm_state of an instance that is gone for good.
DELETED = 'deleted'
#: vm_states of an instance that is not running on its host any more,
#: though it may come back (restore, unshelve).
GONE_STATES = frozenset({'soft-delete', 'shelved_offloaded'})
#: The vm_state matching a server status of Nova's API, where they differ.
_STATUS_STATES = {'DELETED': DELETED, 'SOFT_DELETED': 'soft-delete',
                  'SHELVED_OFFLOADED': 'shelved_offloaded'}

HOST_KEY = 'OS-EXT-SRV-ATTR:host'
PAGE_SIZE = 1000

#: Backoff between failed loads: first and longest wait, in seconds.
RETRY_MIN = 1.0
RETRY_MAX = 60.0


class ServerSource(typing.Protocol):
    """Where servers come from: ``nova.client.NovaClient`` in use."""

    def list_servers(self, host: str | None = None,
                     page_size: int = PAGE_SIZE
                     ) -> typing.Iterator[dict[str, typing.Any]]:
        """Every server (of all tenants), as Nova's API gives it."""


@dataclasses.dataclass(slots=True)
class _Tombstone:
    updated: float
    final: bool
    expires: float


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceState:
    """One instance's state, as a notification or Nova's API tells it."""

    id: str
    project_id: str
    host: str | None
    name: str
    state: str
    updated: float

    @property
    def on_host(self) -> bool:
        """Whether the instance runs (or may run) on its host."""
        return bool(self.host) and not (
            self.state == DELETED or self.state in GONE_STATES)


def to_timestamp(value: typing.Any, field: str) -> float:
    """An ISO 8601 time as seconds since the epoch.

    :raises InvalidPayload: if ``value`` is not such a time
    """
    if not isinstance(value, str):
        raise exceptions.InvalidPayload(
            field, f'must be an ISO 8601 time, got {type(value).__name__}')
    try:
        # Nova's own format first, fast: 100,000 of them per resync.
        text = value[:-1] + '+00:00' if value.endswith('Z') else value
        parsed = datetime.datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(datetime.timezone.utc).replace(
                tzinfo=None)
    except ValueError:
        try:
            parsed = event_model.parse_datetime(value)
        except (ValueError, OverflowError):
            raise exceptions.InvalidPayload(
                field, f'must be an ISO 8601 time, got {value[:64]!r}'
            ) from None
    return calendar.timegm(parsed.timetuple()) + parsed.microsecond / 1e6


@typing.overload
def _text(data: dict, key: str, path: str,
          optional: typing.Literal[False] = False) -> str: ...


@typing.overload
def _text(data: dict, key: str, path: str,
          optional: typing.Literal[True]) -> str | None: ...


def _text(data: dict, key: str, path: str, optional: bool = False
          ) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise exceptions.InvalidPayload(
            f'{path}.{key}', f'must be a non-empty string, got '
                             f'{value!r:.64}')
    return value


def state_from_notification(payload: typing.Any,
                            metadata: typing.Mapping[str, typing.Any] | None
                            ) -> InstanceState:
    """The instance state a versioned ``instance.*`` notification carries.

    The time is the payload's ``updated_at``, else the notification's
    ``timestamp``, else now.

    :raises InvalidPayload: naming the field that is wrong
    """
    if not isinstance(payload, dict) or not isinstance(
            payload.get('nova_object.data'), dict):
        raise exceptions.InvalidPayload(
            'nova_object.data',
            'missing: not a Nova versioned notification payload (Nova\'s '
            '[notifications] notification_format must be versioned or '
            'both)')
    data = payload['nova_object.data']
    path = 'nova_object.data'
    updated_at = data.get('updated_at')
    if updated_at is not None:
        updated = to_timestamp(updated_at, f'{path}.updated_at')
    elif metadata and metadata.get('timestamp') is not None:
        updated = to_timestamp(metadata['timestamp'], 'metadata.timestamp')
    else:
        updated = time.time()
    name = data.get('display_name')
    return InstanceState(
        id=_text(data, 'uuid', path),
        project_id=_text(data, 'tenant_id', path),
        host=_text(data, 'host', path, optional=True),
        name=name if isinstance(name, str) else '',
        state=_text(data, 'state', path),
        updated=updated)


def state_from_server(server: typing.Any) -> InstanceState:
    """The instance state of a server of Nova's API (``/servers/detail``).

    :raises InvalidPayload: naming the field that is wrong
    """
    if not isinstance(server, dict):
        raise exceptions.InvalidPayload(
            '', f'a server must be an object, got {type(server).__name__}')
    updated = server.get('updated')
    status = server.get('status')
    if status is not None and not isinstance(status, str):
        raise exceptions.InvalidPayload(
            'server.status', f'must be a string, got {status!r:.64}')
    name = server.get('name')
    return InstanceState(
        id=_text(server, 'id', 'server'),
        project_id=_text(server, 'tenant_id', 'server'),
        host=_text(server, HOST_KEY, 'server', optional=True),
        name=name if isinstance(name, str) else '',
        state=(_STATUS_STATES.get(status or '') or str(status or '').lower()),
        updated=(to_timestamp(updated, 'server.updated')
                 if updated is not None else 0.0))


class InstanceNotificationEndpoint:
    """An oslo.messaging endpoint for Nova's ``instance.*`` notifications.

    Malformed payloads are logged and dropped; nothing raises into the
    listener.
    """

    filter_rule = oslo_messaging.NotificationFilter(event_type=r'^instance\.')

    def __init__(self, sync: NovaTopologySync) -> None:
        self.sync = sync

    def _handle(self, ctxt: typing.Any, publisher_id: str, event_type: str,
                payload: typing.Any, metadata: dict) -> None:
        try:
            state = state_from_notification(payload, metadata)
        except exceptions.InvalidPayload as exc:
            LOG.warning('Dropping malformed %s notification %s from %s: %s',
                        event_type, (metadata or {}).get('message_id'),
                        publisher_id, exc)
            return None
        try:
            self.sync.apply(state, event_type)
        except Exception:
            LOG.exception('Could not apply %s notification %s of instance '
                          '%s', event_type,
                          (metadata or {}).get('message_id'), state.id)
        return None

    def audit(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle(ctxt, publisher_id, event_type, payload,
                            metadata)

    def debug(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle(ctxt, publisher_id, event_type, payload,
                            metadata)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle(ctxt, publisher_id, event_type, payload,
                            metadata)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle(ctxt, publisher_id, event_type, payload,
                            metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle(ctxt, publisher_id, event_type, payload,
                            metadata)

    def critical(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle(ctxt, publisher_id, event_type, payload,
                            metadata)


class NovaTopologySync:
    """Keep a :class:`HostTopology` current from Nova.

    :param conf: service configuration (``[inspector]`` options)
    :param source: lists Nova's servers (``list_servers``), a
        :class:`doctor_plugin.nova.client.NovaClient` in a deployment
    :param topology: the map to keep current (a new one by default)
    :param clock: monotonic seconds, for tombstone lifetimes (tests)

    :meth:`start` loads the map and starts the periodic resync;
    :attr:`endpoint` goes on a notification listener on Nova's
    ``versioned_notifications`` topic (see :func:`get_listener`);
    :meth:`resync` reloads at once, e.g. after the bus reconnected and
    notifications may have been lost.
    """

    def __init__(self, conf: cfg.ConfigOpts, source: ServerSource,
                 topology: topology_mod.HostTopology | None = None,
                 clock: typing.Callable[[], float] = time.monotonic
                 ) -> None:
        self.conf = conf
        self.source = source
        self.topology = (topology if topology is not None
                         else topology_mod.HostTopology())
        self.endpoint = InstanceNotificationEndpoint(self)
        self._clock = clock
        self._lifetime = conf.inspector.topology_tombstone_lifetime
        # Serialises writers: notifications and the merge of a resync.
        self._lock = threading.Lock()
        self._resync_lock = threading.Lock()
        self._tombstones: collections.OrderedDict[str, _Tombstone] = (
            collections.OrderedDict())
        # Ids notifications changed while a resync was paging, or None.
        self._changed: set[str] | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set once a load from Nova has succeeded.
        self.loaded = threading.Event()

    # -- live updates ---------------------------------------------------

    def apply(self, state: InstanceState, why: str = 'update') -> bool:
        """Apply one instance's newer state.

        A state older than the one held (or than the instance's
        tombstone) is dropped; a deletion is final.

        :returns: whether the map or a tombstone changed
        """
        with self._lock:
            now = self._clock()
            self._expire(now)
            tomb = self._tombstones.get(state.id)
            if tomb is not None and (tomb.final
                                     or state.updated < tomb.updated):
                LOG.debug('Ignoring %s of instance %s: %s', why, state.id,
                          'deleted' if tomb.final else 'stale')
                return False
            if state.state != DELETED:
                current = self.topology.get(state.id)
                if current is not None and state.updated < current.updated:
                    LOG.debug('Ignoring stale %s of instance %s', why,
                              state.id)
                    return False
            if self._changed is not None:
                self._changed.add(state.id)
            if not state.on_host:
                self._tombstones[state.id] = _Tombstone(
                    state.updated, state.state == DELETED,
                    now + self._lifetime)
                self._tombstones.move_to_end(state.id)
                if self.topology.remove(state.id):
                    LOG.debug('Instance %s left host (%s)', state.id, why)
                return True
            self._tombstones.pop(state.id, None)
            assert state.host is not None  # on_host says so
            return self.topology.upsert(topology_mod.Instance(
                state.id, state.project_id, state.host, state.name,
                state.updated)) or tomb is not None

    def _expire(self, now: float) -> None:
        while self._tombstones:
            instance_id, tomb = next(iter(self._tombstones.items()))
            if tomb.expires > now:
                break
            del self._tombstones[instance_id]

    # -- full loads -----------------------------------------------------

    def resync(self) -> int:
        """Reload the whole map from Nova, now.

        The servers are paged into a new map off to the side, which is
        then swapped in; notifications applied meanwhile win over older
        server data, and tombstones keep deleted instances out.

        :returns: the number of instances in the map
        :raises: whatever the source raises (``NovaError``): the map is
            then left as it was
        """
        with self._resync_lock:
            started = time.monotonic()
            with self._lock:
                self._changed = set()
            try:
                listed = self._list()
            except BaseException:
                with self._lock:
                    self._changed = None
                raise
            with self._lock:
                changed, self._changed = self._changed, None
                self._expire(self._clock())
                merged = self._merge(listed, changed)
                del listed
                self.topology.replace(merged)
                count = len(self.topology)
            self.loaded.set()
            LOG.info('Loaded %d instances on %d hosts from Nova in %.1f s',
                     count, len(self.topology.hosts),
                     time.monotonic() - started)
            return count

    def _list(self) -> dict[str, topology_mod.Instance]:
        listed: dict[str, topology_mod.Instance] = {}
        skipped = 0
        for server in self.source.list_servers(page_size=PAGE_SIZE):
            try:
                state = state_from_server(server)
            except exceptions.InvalidPayload as exc:
                skipped += 1
                LOG.debug('Skipping a server Nova listed: %s', exc)
                continue
            if not state.on_host:
                continue
            assert state.host is not None  # on_host says so
            current = self.topology.get(state.id)
            if (current is not None and current.updated == state.updated
                    and current.host == state.host
                    and current.project_id == state.project_id
                    and current.name == state.name):
                # Unchanged: share the record, so that a resync does not
                # hold a second copy of the whole map until the swap.
                listed[current.id] = current
            else:
                listed[state.id] = topology_mod.Instance(
                    state.id, state.project_id, state.host, state.name,
                    state.updated)
        if skipped:
            LOG.warning('Skipped %d malformed servers in Nova\'s server '
                        'list', skipped)
        return listed

    def _merge(self, listed: dict[str, topology_mod.Instance],
               changed: set[str]) -> list[topology_mod.Instance]:
        merged = []
        for inst in listed.values():
            tomb = self._tombstones.get(inst.id)
            if tomb is not None:
                if tomb.final or tomb.updated >= inst.updated:
                    continue
            current = self.topology.get(inst.id)
            if current is not None and current.updated > inst.updated:
                inst = current
            merged.append(inst)
        # Created (or moved in) by a notification after its page was read.
        for instance_id in changed:
            if instance_id not in listed:
                current = self.topology.get(instance_id)
                if current is not None:
                    merged.append(current)
        return merged

    # -- life cycle -----------------------------------------------------

    def start(self) -> NovaTopologySync:
        """Load the map now, then keep reloading it in the background.

        Never fails for Nova: if the first load fails the map stays as it
        is (empty), the error is logged and the load retried with backoff.
        """
        try:
            self.resync()
        except Exception as exc:
            LOG.error('Could not load the instances from Nova: %s. The '
                      'inspector runs without per-tenant fan-out until a '
                      'load succeeds; retrying in the background.', exc)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='doctor-topology-resync')
        self._thread.start()
        return self

    def request_resync(self) -> None:
        """Reload in the background, soon (after a bus reconnect)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the periodic resync (waits for a running one to end)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        interval = self.conf.inspector.topology_resync_interval
        # Not jittered: one loader per inspector, nothing to spread.
        backoff = retry.Backoff(RETRY_MIN, RETRY_MAX, jitter=False)
        failures = 0 if self.loaded.is_set() else 1
        while not self._stopping.is_set():
            # After a failure retry soon, whatever the interval: the map
            # may be empty, or missing what a reconnect lost. The wait is
            # on an event, so request_resync and stop cut it short.
            self._wake.wait(backoff.delay(failures) if failures
                            else (interval or None))
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.resync()
            except Exception as exc:
                failures += 1
                LOG.error('Could not load the instances from Nova: %s; '
                          'retrying in %.0f s', exc, backoff.delay(failures))
            else:
                failures = 0


def default_pool(member: str | None = None) -> str:
    """The listener pool of this inspector's instance notifications.

    :param member: in a cluster, this member's id: several members may
        run on one host, and each needs every notification
    """
    return f'doctor-inspector-topology-{member or socket.gethostname()}'


def get_listener(conf: cfg.ConfigOpts, sync: NovaTopologySync,
                 topics: typing.Iterable[str] = ('versioned_notifications',),
                 transport_url: str | None = None,
                 member: str | None = None
                 ) -> oslo_messaging.MessageHandlingServer:
    """A listener feeding Nova's instance notifications to ``sync``.

    It has a pool of its own (``[inspector] topology_notification_pool``):
    inspectors share the work of host events, but each needs every
    instance notification for its own map.
    """
    transport = messaging.get_transport(conf, transport_url)
    return messaging.get_listener(
        transport, topics, [sync.endpoint],
        pool=(conf.inspector.topology_notification_pool
              or default_pool(member)))
