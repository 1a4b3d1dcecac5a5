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

"""The event pipeline: sources select event types, sinks name notifiers.

The file has the shape of Ceilometer's ``event_pipeline.yaml``::

    sources:
      - name: host_faults
        events:
          - "compute.host.*"
          - "!compute.host.disabled"
        sinks:
          - to_bus
    sinks:
      - name: to_bus
        notifiers:
          - messaging://?topic=alarm.all
          - log://

An event goes to a sink when one of the source's patterns matches its
event_type and none of its ``!`` patterns does. Notifier URLs are resolved
to ``doctor_plugin.notifiers`` plugins by scheme when the file is loaded, so
a misspelt scheme fails at startup, not at the first fault. Each is an
:class:`~doctor_plugin.notifiers.base.EventNotifier`: ``notify(events)``
with the batch the sink selected; a
:class:`~doctor_plugin.delivery.deliverer.Deliverer` records it first when
the notifier is recordable.
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import context as context_mod
from doctor_plugin.common import plugins
from doctor_plugin.common import urls
from doctor_plugin.common import yamlfile
from doctor_plugin.delivery import deliverer as deliverer_mod
from doctor_plugin import event as event_model
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('pipeline_cfg_file',
               default='pipeline.yaml',
               help='The event pipeline: which event types go to which '
                    'notifiers. A relative path is looked up in the '
                    'configuration directories (/etc/doctor_plugin, ...).'),
    cfg.IntOpt('pipeline_workers',
               default=8, min=1,
               help='Threads that deliver one batch to the pipeline\'s '
                    'notifiers in parallel, so that a slow target does '
                    'not delay the others.'),
]


@dataclasses.dataclass(frozen=True, slots=True)
class EventSelector:
    """Event-type patterns with ``!`` exclusions, Ceilometer-style."""

    include: tuple[str, ...]
    exclude: tuple[str, ...]

    @classmethod
    def parse(cls, patterns: typing.Iterable[str]) -> EventSelector:
        include, exclude = [], []
        for pattern in patterns:
            if pattern.startswith('!'):
                exclude.append(pattern[1:])
            else:
                include.append(pattern)
        if exclude and not include:
            # Only exclusions, as in ["!foo.*"]: everything else matches.
            include = ['*']
        return cls(tuple(include), tuple(exclude))

    def matches(self, event_type: str) -> bool:
        if any(fnmatch.fnmatchcase(event_type, p) for p in self.exclude):
            return False
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.include)


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    name: str
    selector: EventSelector
    sinks: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Sink:
    name: str
    notifiers: tuple[str, ...]


class PipelineDefinition:
    """A parsed, validated pipeline file (no plugins loaded)."""

    def __init__(self, sources: list[Source], sinks: dict[str, Sink],
                 origin: str = '<memory>') -> None:
        self.sources = sources
        self.sinks = sinks
        self.origin = origin

    @classmethod
    def from_file(cls, path: str) -> PipelineDefinition:
        """Read and validate a pipeline file.

        :raises ConfigurationError: naming the file, the entry and the
            problem.
        """
        data = yamlfile.load(path, 'the pipeline file',
                             '[DEFAULT] pipeline_cfg_file')
        return cls.from_dict(data, origin=path)

    @classmethod
    def from_dict(cls, data: typing.Any,
                  origin: str = '<memory>') -> PipelineDefinition:
        """Validate an already-parsed pipeline document."""
        def fail(entry, problem):
            raise exceptions.ConfigurationError(origin, entry, problem)

        if not isinstance(data, dict):
            fail(None, 'must be a mapping with "sources" and "sinks" lists')
        unknown = set(data) - {'sources', 'sinks'}
        if unknown:
            fail(None, f'unknown top-level keys: {", ".join(sorted(unknown))}'
                       f'; only "sources" and "sinks" are allowed')
        sinks: dict[str, Sink] = {}
        raw_sinks = data.get('sinks')
        if not isinstance(raw_sinks, list) or not raw_sinks:
            fail('sinks', 'must be a non-empty list')
        for i, raw in enumerate(raw_sinks):
            entry = f'sinks[{i}]'
            if not isinstance(raw, dict):
                fail(entry, 'must be a mapping with "name" and "notifiers"')
            name = raw.get('name')
            if not isinstance(name, str) or not name:
                fail(entry, '"name" must be a non-empty string')
            entry = f'sinks[{i}] ({name})'
            if name in sinks:
                fail(entry, 'duplicate sink name')
            urls = raw.get('notifiers')
            if (not isinstance(urls, list) or not urls
                    or not all(isinstance(u, str) and u for u in urls)):
                fail(entry, '"notifiers" must be a non-empty list of '
                            'notifier URLs such as messaging:// or log://')
            extra = set(raw) - {'name', 'notifiers'}
            if extra:
                fail(entry, f'unknown keys: {", ".join(sorted(extra))}')
            for url in urls:
                if '://' not in url:
                    fail(entry, f'notifier {url!r} is not a URL; write '
                                f'scheme://..., e.g. {url}://')
            sinks[name] = Sink(name, tuple(urls))

        sources: list[Source] = []
        raw_sources = data.get('sources')
        if not isinstance(raw_sources, list) or not raw_sources:
            fail('sources', 'must be a non-empty list')
        seen = set()
        for i, raw in enumerate(raw_sources):
            entry = f'sources[{i}]'
            if not isinstance(raw, dict):
                fail(entry, 'must be a mapping with "name", "events" and '
                            '"sinks"')
            name = raw.get('name')
            if not isinstance(name, str) or not name:
                fail(entry, '"name" must be a non-empty string')
            entry = f'sources[{i}] ({name})'
            if name in seen:
                fail(entry, 'duplicate source name')
            seen.add(name)
            events = raw.get('events')
            if (not isinstance(events, list) or not events
                    or not all(isinstance(e, str) and e for e in events)):
                fail(entry, '"events" must be a non-empty list of event '
                            'type patterns, e.g. ["compute.host.*"]')
            sink_names = raw.get('sinks')
            if (not isinstance(sink_names, list) or not sink_names
                    or not all(isinstance(s, str) for s in sink_names)):
                fail(entry, '"sinks" must be a non-empty list of sink names')
            for sink_name in sink_names:
                if sink_name not in sinks:
                    fail(entry, f'sink {sink_name!r} is not defined; '
                                f'defined sinks: {", ".join(sinks)}')
            extra = set(raw) - {'name', 'events', 'sinks'}
            if extra:
                fail(entry, f'unknown keys: {", ".join(sorted(extra))}')
            sources.append(Source(name, EventSelector.parse(events),
                                  tuple(sink_names)))
        return cls(sources, sinks, origin)


class Pipeline:
    """Route events to the notifiers of every sink that selects them.

    :param conf: the service configuration (passed to the notifiers)
    :param definition: the parsed pipeline file
    :param context: the service's context, passed to the notifiers it
        loads; it owns the ``pipeline_workers`` pool. A private one (closed
        by :meth:`close`) by default.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 definition: PipelineDefinition,
                 context: context_mod.ServiceContext | None = None) -> None:
        self.definition = definition
        self._own_context = context is None
        self.context = (context_mod.ServiceContext('pipeline')
                        if context is None else context)
        self.notifiers: dict[str, typing.Any] = {}
        for sink in definition.sinks.values():
            for url in sink.notifiers:
                if url not in self.notifiers:
                    try:
                        self.notifiers[url] = plugins.load_notifier(
                            conf, url, context=self.context)
                    except exceptions.DoctorPluginError as exc:
                        raise exceptions.ConfigurationError(
                            definition.origin, f'sink {sink.name}',
                            str(exc)) from None
        #: Records and retries the deliveries of recordable notifiers.
        try:
            self.deliverer = deliverer_mod.Deliverer.open(
                conf, self.notifiers.values())
        except exceptions.DoctorPluginError:
            self._close_notifiers()
            raise
        self._executor = self.context.executor('doctor-pipeline',
                                               conf.pipeline_workers)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts,
                  context: context_mod.ServiceContext | None = None
                  ) -> Pipeline:
        """Load the file named by ``[DEFAULT] pipeline_cfg_file``."""
        path = conf.find_file(conf.pipeline_cfg_file)
        if path is None:
            raise exceptions.ConfigurationError(
                conf.pipeline_cfg_file, None,
                'pipeline file not found in the configuration directories; '
                'set [DEFAULT] pipeline_cfg_file to its path (a sample is '
                'etc/doctor_plugin/pipeline.yaml)')
        return cls(conf, PipelineDefinition.from_file(path), context)

    def route(self, events: typing.Sequence[event_model.Event]
              ) -> dict[str, list[event_model.Event]]:
        """Group ``events`` by notifier URL, keeping their order."""
        batches: dict[str, list[event_model.Event]] = (
            collections.defaultdict(list))
        for ev in events:
            targets: dict[str, None] = {}
            for source in self.definition.sources:
                if source.selector.matches(ev.event_type):
                    for sink_name in source.sinks:
                        for url in self.definition.sinks[sink_name].notifiers:
                            targets[url] = None
            for url in targets:
                batches[url].append(ev)
        return batches

    def publish(self, events: typing.Sequence[event_model.Event]
                ) -> dict[str, Exception]:
        """Deliver ``events`` to their notifiers, in parallel.

        Durable notifiers' deliveries are recorded first; once this
        returns they are made or will be retried (a failure of theirs is
        then not reported here).

        :returns: the failures, by notifier URL (empty when all succeeded)
        """
        batches = self.route(events)
        if not batches:
            return {}
        if len(batches) == 1:
            ((url, batch),) = batches.items()
            return self._deliver(url, batch)
        futures = [self._executor.submit(self._deliver, url, batch)
                   for url, batch in batches.items()]
        failures: dict[str, Exception] = {}
        for future in futures:
            failures.update(future.result())
        return failures

    def _deliver(self, url: str, batch: list[event_model.Event]
                 ) -> dict[str, Exception]:
        try:
            # In this thread: the caller acknowledges the events once
            # their deliveries are made or recorded.
            for work in self.deliverer.start([(self.notifiers[url], batch)]):
                work()
        except Exception as exc:
            LOG.error('Notifier %s failed to deliver %d event(s): %s',
                      urls.redact(url), len(batch), exc)
            return {url: exc}
        return {}

    def reload(self) -> None:
        """Have every notifier read its definition files again."""
        for notifier in self.notifiers.values():
            notifier.reload()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.deliverer.close()
        self._close_notifiers()
        if self._own_context:
            self.context.close()

    @property
    def outbox(self) -> typing.Any:
        """The outbox of the deliveries, or None (none is recordable)."""
        return self.deliverer.outbox

    def _close_notifiers(self) -> None:
        for notifier in self.notifiers.values():
            notifier.close()
