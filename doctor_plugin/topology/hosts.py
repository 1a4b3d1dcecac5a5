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

"""Which instances, of which tenants, run on which host.

The inspector needs this on the hot path: when a host fails it must know
the affected instances and tenants without waiting for an API call. This
module holds the in-memory map and its static source (a YAML file); in a
deployment :mod:`doctor_plugin.topology.nova` keeps it current
from Nova instead.

Memory: a large cloud (100,000 instances on 5,000 hosts) must fit in the
inspector. Each instance is one slotted record whose host and project
strings are interned (shared by every instance on the host or of the
project), referenced from one id index and one per-host tuple.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import typing

from doctor_plugin.common import yamlfile
from doctor_plugin import exceptions


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    """An instance as the inspector needs to know it.

    ``updated`` is the time (seconds since the epoch, 0 when unknown) of
    the Nova state the record shows, Nova's ``updated_at``: it orders
    updates from notifications and from resyncs, and is left out of
    comparisons.
    """

    id: str
    project_id: str
    host: str
    name: str = ''
    updated: float = dataclasses.field(default=0.0, compare=False,
                                       repr=False)

    def __post_init__(self) -> None:
        # Thousands of instances share a host, and hundreds a project:
        # one string each instead of one per instance.
        object.__setattr__(self, 'host', sys.intern(self.host))
        object.__setattr__(self, 'project_id', sys.intern(self.project_id))
        if not self.name:
            object.__setattr__(self, 'name', '')


def _without(members: tuple[Instance, ...],
             instance_id: str) -> tuple[Instance, ...]:
    return tuple(i for i in members if i.id != instance_id)


class HostTopology:
    """A thread-safe host → instances map.

    Readers never lock and get immutable snapshots (tuples): a fan-out
    never sees a half-applied update and never waits on a writer. Writers
    (:meth:`upsert`, :meth:`remove`, :meth:`replace`) serialise on a lock
    and swap in a new host map, copy-on-write, so an update that moves an
    instance between hosts is seen whole or not at all.
    """

    def __init__(self, instances: typing.Iterable[Instance] = ()) -> None:
        self._lock = threading.Lock()
        self._by_host: dict[str, tuple[Instance, ...]] = {}
        self._by_id: dict[str, Instance] = {}
        self.replace(instances)

    def replace(self, instances: typing.Iterable[Instance]) -> None:
        """Swap the whole map for ``instances`` (a full resync).

        The new map is built off to the side; readers see the old one
        until the swap. An id given twice keeps its last record.
        """
        by_id: dict[str, Instance] = {}
        for inst in instances:
            by_id[inst.id] = inst
        by_host: dict[str, list[Instance]] = {}
        for inst in by_id.values():
            members = by_host.get(inst.host)
            if members is None:
                by_host[inst.host] = [inst]
            else:
                members.append(inst)
        frozen = {host: tuple(insts) for host, insts in by_host.items()}
        del by_host
        with self._lock:
            self._by_host = frozen
            self._by_id = by_id

    def upsert(self, instance: Instance) -> bool:
        """Add ``instance``, or replace its record and move it if need be.

        :returns: whether what readers see changed: False when the record
            was already there as given (``updated`` aside)
        """
        with self._lock:
            old = self._by_id.get(instance.id)
            if old is not None and old.host == instance.host:
                changed = old != instance
                if not changed and old.updated == instance.updated:
                    return False
                # Same host: keep the instance's place in the host's order.
                by_host = dict(self._by_host)
                by_host[instance.host] = tuple(
                    instance if i.id == instance.id else i
                    for i in by_host[instance.host])
            else:
                changed = True
                by_host = dict(self._by_host)
                if old is not None:
                    self._drop(by_host, old)
                by_host[instance.host] = by_host.get(
                    instance.host, ()) + (instance,)
            self._by_host = by_host
            self._by_id[instance.id] = instance
            return changed

    def remove(self, instance_id: str) -> bool:
        """Forget an instance.

        :returns: whether it was known
        """
        with self._lock:
            old = self._by_id.get(instance_id)
            if old is None:
                return False
            by_host = dict(self._by_host)
            self._drop(by_host, old)
            self._by_host = by_host
            del self._by_id[instance_id]
            return True

    @staticmethod
    def _drop(by_host: dict[str, tuple[Instance, ...]],
              old: Instance) -> None:
        members = _without(by_host.get(old.host, ()), old.id)
        if members:
            by_host[old.host] = members
        else:
            by_host.pop(old.host, None)

    def get(self, instance_id: str) -> Instance | None:
        """The record of ``instance_id``, or None if it is on no host."""
        return self._by_id.get(instance_id)

    def instances(self) -> list[Instance]:
        """A snapshot of every record, in no particular order."""
        with self._lock:
            return list(self._by_id.values())

    def instances_on(self, host: str) -> tuple[Instance, ...]:
        """The instances on ``host`` (empty if unknown)."""
        return self._by_host.get(host, ())

    def by_project(self, host: str) -> dict[str, list[Instance]]:
        """The instances on ``host``, grouped by project, in order."""
        grouped: dict[str, list[Instance]] = {}
        for inst in self.instances_on(host):
            grouped.setdefault(inst.project_id, []).append(inst)
        return grouped

    @property
    def hosts(self) -> list[str]:
        return sorted(self._by_host)

    def __len__(self) -> int:
        return len(self._by_id)

    @classmethod
    def from_file(cls, path: str) -> HostTopology:
        """Load a static topology file.

        The file maps host names to their instances::

            hosts:
              compute-1:
                - {id: 6c4f..., project_id: 0a1b..., name: vnf-a-1}

        :raises ConfigurationError: naming the file, entry and problem.
        """
        data = yamlfile.load(path, 'the topology file',
                             '[inspector] topology_file')
        return cls(parse_topology(data, path))


def parse_topology(data: typing.Any, origin: str) -> list[Instance]:
    """Validate a topology document and return its instances."""
    def fail(entry, problem):
        raise exceptions.ConfigurationError(origin, entry, problem)

    if data is None:
        return []
    # "hosts:" with every host commented out is null: an empty topology.
    if not isinstance(data, dict) or not isinstance(data.get('hosts', {}),
                                                    (dict, type(None))):
        fail(None, 'must be a mapping with a "hosts" mapping of host name '
                   'to a list of instances')
    unknown = sorted(str(key) for key in set(data) - {'hosts'})
    if unknown:
        # A misspelt "hosts" would otherwise be an empty topology: no
        # tenant would ever be told of a fault.
        fail(None, f'unknown top-level keys: {", ".join(unknown)}; only '
                   f'"hosts" is allowed')
    instances = []
    seen: dict[str, str] = {}
    for host, entries in (data.get('hosts') or {}).items():
        if not isinstance(host, str) or not host:
            fail(f'hosts.{host}', 'host names must be non-empty strings')
        if entries is None:
            continue
        if not isinstance(entries, list):
            fail(f'hosts.{host}', 'must be a list of instances')
        for i, entry in enumerate(entries):
            where = f'hosts.{host}[{i}]'
            if not isinstance(entry, dict):
                fail(where, 'must be a mapping with "id" and "project_id"')
            for key in ('id', 'project_id'):
                if not isinstance(entry.get(key), str) or not entry[key]:
                    fail(where, f'"{key}" must be a non-empty string')
            if entry['id'] in seen:
                fail(where, f'instance {entry["id"]} is also listed on host '
                            f'{seen[entry["id"]]}; an instance runs on one '
                            f'host')
            seen[entry['id']] = host
            instances.append(Instance(entry['id'], entry['project_id'], host,
                                      str(entry.get('name') or '')))
    return instances
