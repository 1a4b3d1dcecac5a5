"""Which instances, of which tenants, run on which host.

The inspector needs this on the hot path: when a host fails it must know
the affected instances and tenants without waiting for an API call. This
module holds the in-memory map and its static source (a YAML file); the
source kept current from Nova replaces the file in a deployment.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import typing

from doctor_plugin import exceptions
from doctor_plugin import yamlfile


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    """An instance as the inspector needs to know it."""

    id: str
    project_id: str
    host: str
    name: str = ''


class HostTopology:
    """A thread-safe host → instances map.

    Readers get immutable snapshots (tuples), so a fan-out never sees a
    half-applied update.
    """

    def __init__(self, instances: typing.Iterable[Instance] = ()) -> None:
        self._lock = threading.Lock()
        self._by_host: dict[str, tuple[Instance, ...]] = {}
        self.replace(instances)

    def replace(self, instances: typing.Iterable[Instance]) -> None:
        """Swap the whole map for ``instances``."""
        by_host: dict[str, list[Instance]] = collections.defaultdict(list)
        for inst in instances:
            by_host[inst.host].append(inst)
        frozen = {host: tuple(insts) for host, insts in by_host.items()}
        with self._lock:
            self._by_host = frozen

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
        return sum(len(v) for v in self._by_host.values())

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
