"""The inspector's core: correlate a host fault and fan it out.

A host-level event (``compute.host.down``/``up``/``disabled``) becomes the
host event itself plus one event per affected tenant carrying that tenant's
instances, so that each tenant's alarm fires once, with everything it needs,
from a single bus message.
"""

from __future__ import annotations

import collections
import threading
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import topology as topology_mod
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin import plugins
from doctor_plugin import profiler

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('topology_file',
               help='A static host → instances map (YAML) used to find the '
                    'instances and tenants affected by a host fault. Empty: '
                    'host events are published without per-tenant fan-out.'),
    cfg.IntOpt('dedup_cache_size',
               default=10000, min=0,
               help='How many recent event ids to remember so that a '
                    'repeated report of the same detection is published '
                    'once. 0 disables de-duplication.'),
]

HOST_EVENT_TYPES = frozenset({'compute.host.down', 'compute.host.up',
                              'compute.host.disabled'})

_FANOUT_NAMESPACE = uuid.UUID('5d0c6a4e-9a8e-4f4e-b1c9-2b3c4d5e6f70')


class RecentIds:
    """A bounded set of recently seen ids (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: collections.OrderedDict[str, None] = (
            collections.OrderedDict())
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._ids

    def add(self, key: str) -> None:
        if not self._size:
            return
        with self._lock:
            self._ids[key] = None
            self._ids.move_to_end(key)
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)


class Inspector:
    """Correlate, fan out and publish events.

    :param conf: service configuration
    :param pipeline: where the resulting events go
    :param topology: host → instances; ``None`` loads ``[inspector]
        topology_file`` (or uses an empty one when unset)
    :param timeline: profiler marks (defaults to the process timeline)
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 pipeline: pipeline_mod.Pipeline,
                 topology: topology_mod.HostTopology | None = None,
                 timeline: profiler.Timeline | None = None) -> None:
        conf.register_opts(OPTS, group='inspector')
        self.conf = conf
        self.pipeline = pipeline
        if topology is None:
            path = conf.inspector.topology_file
            topology = (topology_mod.HostTopology.from_file(path) if path
                        else topology_mod.HostTopology())
        self.topology = topology
        self.timeline = timeline or profiler.TIMELINE
        self._recent = RecentIds(conf.inspector.dedup_cache_size)

    def process(self, events: typing.Sequence[event_model.Event]
                ) -> list[event_model.Event]:
        """Correlate ``events``, fan them out and publish the result.

        :returns: the events published (after de-duplication and fan-out)
        :raises DeliveryError: if a notifier of the pipeline failed; the
            events are then not remembered, so a retried report goes out
        """
        fresh: list[event_model.Event] = []
        seen: set[str] = set()
        for ev in events:
            if ev.message_id in seen or ev.message_id in self._recent:
                LOG.info('Ignoring repeated event %s', ev.message_id)
                continue
            seen.add(ev.message_id)
            fresh.append(ev)
        out: list[event_model.Event] = []
        for ev in fresh:
            fault_id = ev.trait('monitor_event_id')
            self.timeline.mark(fault_id, 'T06')
            out.append(ev)
            if ev.event_type in HOST_EVENT_TYPES:
                out.extend(self.fan_out(ev))
                self.timeline.mark(fault_id, 'T02')
        if not out:
            return []
        failures = self.pipeline.publish(out)
        if failures:
            raise exceptions.DeliveryError(
                'could not publish to ' + ', '.join(
                    f'{plugins.redact_url(url)} ({exc})'
                    for url, exc in failures.items()))
        for ev in fresh:
            self._recent.add(ev.message_id)
            self.timeline.mark(ev.trait('monitor_event_id'), 'T05')
        return out

    def fan_out(self, host_event: event_model.Event
                ) -> list[event_model.Event]:
        """One event per tenant with instances on the event's host."""
        host = host_event.trait('host')
        grouped = self.topology.by_project(host) if host else {}
        if host and not grouped:
            LOG.info('%s for host %s: no instances known on it',
                     host_event.event_type, host)
        base = [t for t in host_event.traits
                if t.name not in ('project_id', 'instance_ids',
                                  'instance_count')]
        events = []
        for project_id, instances in grouped.items():
            traits = base + [
                event_model.Trait(
                    'project_id', event_model.TraitType.TEXT, project_id),
                event_model.Trait(
                    'instance_ids', event_model.TraitType.TEXT,
                    ','.join(i.id for i in instances)),
                event_model.Trait(
                    'instance_count', event_model.TraitType.INT,
                    len(instances)),
            ]
            events.append(event_model.Event(
                message_id=str(uuid.uuid5(
                    _FANOUT_NAMESPACE,
                    f'{host_event.message_id}/{project_id}')),
                event_type=host_event.event_type,
                generated=host_event.generated,
                traits=traits,
                raw={}))
        if events:
            LOG.info('%s for host %s: %d instance(s) of %d tenant(s) '
                     'affected', host_event.event_type, host,
                     sum(len(v) for v in grouped.values()), len(events))
        return events
