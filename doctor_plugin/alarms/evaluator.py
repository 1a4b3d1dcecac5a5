"""Evaluate events against event alarms and run the alarms' actions.

The semantics are Aodh's event alarms: an alarm matches an event when the
event's type matches the rule's ``event_type`` (``*`` wildcards), every
query term holds, and the event belongs to the alarm's project. On a match
an alarm goes to ``alarm``; its ``alarm_actions`` run on that transition, or
on every match when ``repeat_actions`` is set.

One difference from Aodh, on purpose: an alarm that belongs to a project
only ever sees events carrying that project (``project_id`` or
``tenant_id`` trait). Aodh hands an event without a project to every
tenant's alarms; for host faults that would tell each tenant about the
others' instances.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import json
import threading
import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.alarms import definitions
from doctor_plugin import event as event_model
from doctor_plugin.notifiers import base as notifier_base
from doctor_plugin import plugins
from doctor_plugin import profiler

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.IntOpt('action_workers',
               default=16, min=1,
               help='Threads that run alarm actions (webhooks, ...) in '
                    'parallel, so that every tenant is told at once.'),
]


def event_project(ev: event_model.Event) -> str | None:
    """The project an event belongs to, as Aodh reads it."""
    return ev.trait('project_id') or ev.trait('tenant_id')


class EventAlarmEvaluator:
    """Match events to alarms, track alarm state, run actions.

    :param conf: service configuration (passed to notifier plugins)
    :param alarms: the alarm definitions
    :param timeline: profiler marks (defaults to the process timeline)
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 alarms: typing.Iterable[definitions.AlarmDefinition],
                 timeline: profiler.Timeline | None = None) -> None:
        conf.register_opts(OPTS, group='listener')
        self.conf = conf
        self.alarms = [a for a in alarms if a.enabled]
        self.states: dict[str, str] = {
            a.alarm_id: 'insufficient data' for a in self.alarms}
        self.timeline = timeline or profiler.TIMELINE
        self._lock = threading.Lock()
        self._notifiers: dict[str, notifier_base.NotifierBase] = {}
        for alarm in self.alarms:
            for url in (alarm.alarm_actions + alarm.ok_actions
                        + alarm.insufficient_data_actions):
                if url not in self._notifiers:
                    self._notifiers[url] = plugins.load_notifier(conf, url)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=conf.listener.action_workers,
            thread_name_prefix='doctor-alarm-action')
        # Index by event type, so that an event is checked only against
        # the alarms that can match it: a failed host brings one event per
        # instance, and most event types have no alarm at all.
        self._by_type: dict[str, list[tuple[int, definitions.
                                            AlarmDefinition]]] = {}
        self._wildcards: list[tuple[int, definitions.AlarmDefinition]] = []
        for position, alarm in enumerate(self.alarms):
            if any(c in alarm.event_type for c in '*?['):
                self._wildcards.append((position, alarm))
            else:
                self._by_type.setdefault(alarm.event_type, []).append(
                    (position, alarm))

    def candidates(self, event_type: str
                   ) -> list[definitions.AlarmDefinition]:
        """The alarms whose event_type matches, in definition order."""
        found = list(self._by_type.get(event_type, ()))
        found.extend(entry for entry in self._wildcards
                     if fnmatch.fnmatchcase(event_type, entry[1].event_type))
        if self._wildcards:
            found.sort(key=lambda entry: entry[0])
        return [alarm for _, alarm in found]

    def matching(self, ev: event_model.Event
                 ) -> list[definitions.AlarmDefinition]:
        """The alarms that ``ev`` triggers."""
        project = event_project(ev)
        return [a for a in self.candidates(ev.event_type)
                if (a.project_id is None or a.project_id == project)
                and all(term.matches(ev) for term in a.query)]

    def evaluate(self, events: typing.Iterable[event_model.Event]
                 ) -> list[concurrent.futures.Future]:
        """Evaluate ``events`` in order; start the actions of fired alarms.

        :returns: one future per action started (for callers that wait)
        """
        futures = []
        for ev in events:
            fault_id = ev.trait('monitor_event_id')
            matched = self.matching(ev)
            self.timeline.mark(fault_id, 'T07')
            serialized = None
            for alarm in matched:
                with self._lock:
                    previous = self.states[alarm.alarm_id]
                    self.states[alarm.alarm_id] = 'alarm'
                if previous == 'alarm' and not alarm.repeat_actions:
                    continue
                if serialized is None:
                    # Once per event, whatever number of alarms it fires.
                    serialized = ev.serialize()
                notification = self._notification(alarm, ev, serialized,
                                                  previous)
                LOG.info('Alarm %s (%s) %s -> alarm on event %s',
                         alarm.name, alarm.alarm_id, previous, ev.message_id)
                for url in alarm.alarm_actions:
                    self.timeline.mark(fault_id, 'T08')
                    futures.append(self._executor.submit(
                        self._run_action, url, ev, notification))
        return futures

    @staticmethod
    def _notification(alarm: definitions.AlarmDefinition,
                      ev: event_model.Event, serialized: dict,
                      previous: str) -> notifier_base.AlarmNotification:
        query = json.dumps([{'field': t.field, 'op': t.op,
                             'value': str(t.value)} for t in alarm.query])
        return notifier_base.AlarmNotification(
            alarm_id=alarm.alarm_id,
            alarm_name=alarm.name,
            severity=alarm.severity,
            previous=previous,
            current='alarm',
            reason=(f'Event <id={ev.message_id},event_type='
                    f'{ev.event_type}> hits the query <query={query}>.'),
            reason_data={'type': 'event', 'event': serialized})

    def _run_action(self, url: str, ev: event_model.Event,
                    notification: notifier_base.AlarmNotification) -> None:
        try:
            self._notifiers[url].notify([ev], alarm=notification)
        except Exception as exc:
            LOG.error('Action %s of alarm %s failed: %s',
                      plugins.redact_url(url), notification.alarm_id, exc)
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for notifier in self._notifiers.values():
            notifier.close()
