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

"""The Nova stand-in's cloud: services and servers, as Nova shows them.

:class:`NovaModel` holds the stand-in's state (compute services, servers,
the requests it answered) and renders it in Nova's wire format, for the
microversion a request negotiated. The HTTP routes
(:mod:`doctor_plugin.testing.nova.api`) and the notifications
(:mod:`doctor_plugin.testing.nova.notifications`) read and change it; the
constants and :class:`Call` are part of the stand-in's public interface.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import threading
import time
import typing
import uuid

API_PREFIX = '/v2.1'
COMPUTE_BINARY = 'nova-compute'

#: First microversion with ``forced_down`` and ``PUT /os-services/force-down``.
FORCED_DOWN_VERSION = (2, 11)
#: First microversion addressing services by UUID (``PUT /os-services/{id}``).
SERVICE_UUID_VERSION = (2, 53)

#: Nova's fault names by status; any other status is a ``computeFault``.
FAULT_NAMES = {400: 'badRequest', 401: 'unauthorized', 403: 'forbidden',
               404: 'itemNotFound', 405: 'badMethod',
               409: 'conflictingRequest', 413: 'overLimit',
               415: 'badMediaType', 429: 'overLimit', 501: 'notImplemented',
               503: 'serviceUnavailable'}

#: Server status of Nova's API -> (vm_state, power_state, task_state).
STATUSES = {
    'ACTIVE': ('active', 1, None),
    'BUILD': ('building', 0, 'scheduling'),
    'ERROR': ('error', 1, None),
    'SHUTOFF': ('stopped', 4, None),
    'PAUSED': ('paused', 3, None),
    'SUSPENDED': ('suspended', 7, None),
    'MIGRATING': ('active', 1, 'migrating'),
    'SHELVED_OFFLOADED': ('shelved_offloaded', 4, None),
    'SOFT_DELETED': ('soft-delete', 4, None),
    'DELETED': ('deleted', 0, None),
}
#: The server status of a vm_state (the reverse of :data:`STATUSES`).
VM_STATE_STATUS = {'active': 'ACTIVE', 'error': 'ERROR'}
#: Nova's power_state names, as its notifications spell them.
POWER_STATES = {0: 'pending', 1: 'running', 3: 'paused', 4: 'shutdown',
                6: 'crashed', 7: 'suspended'}

OUTAGE_MODES = ('refuse', '503', 'hang')

_VERSION_RE = re.compile(r'^([1-9]\d*)\.([1-9]\d*|0)$')


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One request the stand-in answered, as it answered it.

    ``path`` is the full path (``/v2.1/os-services``) without the query;
    ``microversion`` is the negotiated ``2.x`` (None outside ``/v2.1``);
    ``at`` is when the request arrived.
    """

    method: str
    path: str
    query: dict[str, str]
    microversion: str | None
    body: typing.Any
    status: int
    at: float = dataclasses.field(default_factory=time.time)


def version_text(version: tuple[int, int]) -> str:
    return f'{version[0]}.{version[1]}'


def parse_version(text: str) -> tuple[int, int]:
    """``'2.53'`` as ``(2, 53)``; ValueError if not ``Major.Minor``."""
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise ValueError(f'API Version String {text} is of invalid format. '
                         f'Must be of format MajorNum.MinorNum.')
    return int(match.group(1)), int(match.group(2))


def api_time(when: float) -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(when))


def service_time(when: float) -> str:
    # os-services shows Nova's DB time, with microseconds and no zone.
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(when)) + (
        '.%06d' % int(when % 1 * 1e6))


def versioned(name: str, version: str, data: dict) -> dict:
    return {'nova_object.name': name, 'nova_object.namespace': 'nova',
            'nova_object.version': version, 'nova_object.data': data}


class NovaModel:
    """The stand-in's services and servers (a part of ``NovaStandIn``).

    Every public method takes ``_lock``; ``NovaStandIn.__init__`` sets the
    attributes below.
    """

    _lock: threading.RLock
    _services: dict[tuple[str, str], dict]
    _service_ids: itertools.count
    _servers: dict[str, dict]
    _server_json: dict[str, bytes]
    _listings: dict[tuple, tuple[list[str], dict[str, int]]]
    calls: list[Call]
    min_version: tuple[int, int]
    max_version: tuple[int, int]

    @property
    def url(self) -> str:
        """The root URL; ``NovaStandIn`` gives it."""
        raise NotImplementedError

    @property
    def compute_url(self) -> str:
        """The compute endpoint; ``NovaStandIn`` gives it."""
        raise NotImplementedError

    # -- state -------------------------------------------------------------

    def add_service(self, host: str, binary: str = COMPUTE_BINARY) -> dict:
        """Register a service (if not there yet); its record as listed."""
        with self._lock:
            return self._service_view(self._ensure_service(host, binary),
                                      self.max_version)

    def _ensure_service(self, host: str, binary: str) -> dict:
        record = self._services.get((host, binary))
        if record is None:
            now = time.time()
            record = {
                'id': next(self._service_ids), 'uuid': str(uuid.uuid4()),
                'host': host, 'binary': binary,
                'topic': binary[len('nova-'):] if binary.startswith(
                    'nova-') else binary,
                'zone': 'nova' if binary == COMPUTE_BINARY else 'internal',
                'disabled': False, 'disabled_reason': None,
                'forced_down': False, 'report_count': 1, 'version': 66,
                'created_at': now, 'updated_at': now,
            }
            self._services[(host, binary)] = record
        return record

    def service(self, host: str, binary: str = COMPUTE_BINARY) -> dict:
        """A service as Nova's latest microversion lists it (a copy).

        Besides the API's fields: ``uuid``, ``legacy_id`` (the integer id
        before 2.53) and ``disabled``.
        """
        with self._lock:
            record = self._services.get((host, binary))
            if record is None:
                raise KeyError(f'no {binary} service on host {host!r}')
            view = self._service_view(record, self.max_version)
            view.update(uuid=record['uuid'], legacy_id=record['id'],
                        disabled=record['disabled'])
            return view

    def add_server(self, server_id: str, project_id: str, host: str,
                   name: str = '', status: str = 'ACTIVE') -> dict:
        """Add a server on ``host`` (and a nova-compute service there)."""
        if status not in STATUSES:
            raise ValueError(f'unknown server status {status!r}; use one '
                             f'of {", ".join(STATUSES)}')
        with self._lock:
            self._insert_server(server_id, project_id, host, name, status,
                                time.time())
            self._listings.clear()
            return self._server_view(self._servers[server_id])

    def add_servers(self, servers: typing.Iterable[
            tuple[str, str, str, str]]) -> None:
        """Add many ``(id, project_id, host, name)`` servers, ACTIVE."""
        now = time.time()
        with self._lock:
            for server_id, project_id, host, name in servers:
                self._insert_server(server_id, project_id, host, name,
                                    'ACTIVE', now)
            self._listings.clear()

    def _insert_server(self, server_id: str, project_id: str, host: str,
                       name: str, status: str, now: float) -> None:
        if server_id in self._servers:
            raise ValueError(f'server {server_id} exists already')
        vm_state, power_state, task_state = STATUSES[status]
        if (host, COMPUTE_BINARY) not in self._services:
            self._ensure_service(host, COMPUTE_BINARY)
        self._servers[server_id] = {
            'id': server_id, 'project_id': project_id,
            'user_id': 'fake', 'host': host, 'name': name,
            'status': status, 'vm_state': vm_state,
            'old_vm_state': vm_state, 'task_state': task_state,
            'power_state': power_state, 'created': now, 'updated': now,
        }

    def remove_server(self, server_id: str) -> None:
        """Delete a server (it disappears from every listing)."""
        with self._lock:
            self._get_server(server_id)
            del self._servers[server_id]
            self._server_json.pop(server_id, None)
            self._listings.clear()

    def move_server(self, server_id: str, host: str) -> None:
        """Move a server to ``host``, as a finished migration would."""
        with self._lock:
            record = self._get_server(server_id)
            if (host, COMPUTE_BINARY) not in self._services:
                self._ensure_service(host, COMPUTE_BINARY)
            record['host'] = host
            record['updated'] = time.time()
            self._server_json.pop(server_id, None)
            self._listings.clear()

    def server(self, server_id: str) -> dict:
        """A server as ``GET /servers/{id}`` shows it (a copy)."""
        with self._lock:
            return self._server_view(self._get_server(server_id))

    def _get_server(self, server_id: str) -> dict:
        try:
            return self._servers[server_id]
        except KeyError:
            raise KeyError(f'no server {server_id!r}') from None

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        """The recorded calls of ``method`` under ``path_prefix``.

        ``path_prefix`` matches as in :meth:`fail_next`.
        """
        with self._lock:
            return [call for call in self.calls
                    if call.method == method
                    and self._path_matches(call.path, path_prefix)]

    @staticmethod
    def _path_matches(path: str, prefix: str) -> bool:
        if path.startswith(prefix):
            return True
        return (not prefix.startswith(API_PREFIX)
                and path.startswith(API_PREFIX)
                and path[len(API_PREFIX):].startswith(prefix))

    # -- views ------------------------------------------------------------

    def _service_view(self, record: dict,
                      version: tuple[int, int]) -> dict:
        view = {
            'id': (record['uuid'] if version >= SERVICE_UUID_VERSION
                   else record['id']),
            'binary': record['binary'],
            'host': record['host'],
            'zone': record['zone'],
            'status': 'disabled' if record['disabled'] else 'enabled',
            'state': 'down' if record['forced_down'] else 'up',
            'updated_at': service_time(record['updated_at']),
            'disabled_reason': record['disabled_reason'],
        }
        if version >= FORCED_DOWN_VERSION:
            view['forced_down'] = record['forced_down']
        return view

    def _server_links(self, server_id: str) -> list[dict]:
        return [{'rel': 'self',
                 'href': f'{self.compute_url}/servers/{server_id}'},
                {'rel': 'bookmark',
                 'href': f'{self.url}/servers/{server_id}'}]

    def _server_view(self, record: dict) -> dict:
        host = record['host']
        return {
            'id': record['id'],
            'name': record['name'],
            'status': record['status'],
            'tenant_id': record['project_id'],
            'user_id': record['user_id'],
            'created': api_time(record['created']),
            'updated': api_time(record['updated']),
            'OS-EXT-SRV-ATTR:host': host,
            'OS-EXT-SRV-ATTR:hypervisor_hostname': host,
            'OS-EXT-STS:vm_state': record['vm_state'],
            'OS-EXT-STS:task_state': record['task_state'],
            'OS-EXT-STS:power_state': record['power_state'],
            'links': self._server_links(record['id']),
        }

    def _serialised(self, server_id: str) -> bytes:
        data = self._server_json.get(server_id)
        if data is None:
            data = json.dumps(
                self._server_view(self._servers[server_id])).encode()
            self._server_json[server_id] = data
        return data

    def _listing(self, host: str | None, project: str | None
                 ) -> tuple[list[str], dict[str, int]]:
        """Server ids in Nova's default order (newest first), filtered."""
        key = (host, project)
        listing = self._listings.get(key)
        if listing is None:
            ids = [server_id for server_id, record in
                   reversed(self._servers.items())
                   if (host is None or record['host'] == host)
                   and (project is None
                        or record['project_id'] == project)]
            listing = (ids, {server_id: i for i, server_id in
                             enumerate(ids)})
            self._listings[key] = listing
        return listing

    def _version_document(self, full: bool = False) -> dict:
        document: dict[str, typing.Any] = {
            'id': 'v2.1',
            'status': 'CURRENT',
            'version': version_text(self.max_version),
            'min_version': version_text(self.min_version),
            'updated': '2013-07-23T11:33:21Z',
            'links': [{'rel': 'self', 'href': self.compute_url + '/'}],
        }
        if full:
            document['links'].append(
                {'rel': 'describedby', 'type': 'text/html',
                 'href': 'http://docs.openstack.org/'})
            document['media-types'] = [
                {'base': 'application/json',
                 'type': 'application/vnd.openstack.compute+json;'
                         'version=2.1'}]
        return document
