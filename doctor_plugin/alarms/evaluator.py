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

"""Evaluate events against event alarms and run the alarms' actions.

The semantics are Aodh's event alarms: an alarm matches an event when the
event's type matches the rule's ``event_type`` (``*`` wildcards), every
query term holds, and the event belongs to the alarm's project (its
``project_id`` or ``tenant_id`` trait; an alarm without a project sees the
events without one, as Aodh's lookup of the project's alarms does). On a
match an alarm goes to ``alarm``; its ``alarm_actions`` run on that
transition, or on every match when ``repeat_actions`` is set. An alarm
with an ``ok_rule`` goes to ``ok`` on an event that satisfies it, and runs
its ``ok_actions``.

Each action URL names a plugin of ``doctor_plugin.alarm_actions`` by its
scheme (``http``, ``https``, ``log``, ``messaging``), an
:class:`~doctor_plugin.notifiers.base.AlarmAction` that is called with
one :class:`~doctor_plugin.notifiers.base.AlarmNotification` per
transition, as Aodh's notifiers are. The actions go through a
:class:`~doctor_plugin.delivery.deliverer.Deliverer`, as the pipeline's
notifiers do: recorded first when the plugin is recordable, made in the
``action_workers`` threads.

Two differences from Aodh 23, on purpose: rules are indexed
(:mod:`doctor_plugin.alarms.index`) instead of all tried, and a changed
definitions file takes effect at once instead of after Aodh's 60 s cache.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.alarms import definitions
from doctor_plugin.alarms import index as index_mod
from doctor_plugin.common import activity as activity_mod
from doctor_plugin.common import context as context_mod
from doctor_plugin.common import plugins
from doctor_plugin.common import profiler
from doctor_plugin.common import urls
from doctor_plugin.delivery import deliverer as deliverer_mod
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import base as notifier_base

LOG = logging.getLogger(__name__)

GROUP = 'alarms'

OPTS = [
    cfg.StrOpt('definitions_file',
               default='alarms.yaml',
               help='Event alarm definitions (YAML). A relative path is '
                    'looked up in the configuration directories. Read '
                    'again when it changes (see reload_interval) and on '
                    'SIGHUP.'),
    cfg.FloatOpt('reload_interval',
                 default=2.0, min=0.0,
                 help='Seconds between checks of the definitions file for '
                      'changes; a change applies to the next event. 0 '
                      'turns the check off (SIGHUP still reloads).'),
    cfg.IntOpt('action_workers',
               default=16, min=1,
               help='Threads that run alarm actions (webhooks, ...) in '
                    'parallel, so that every tenant is told at once.'),
]

ALARM, OK, INSUFFICIENT_DATA = 'alarm', 'ok', 'insufficient data'

#: How many alarm transitions one log line names (the rest are counted).
MAX_LOGGED_TRANSITIONS = 10

#: Durable actions recorded per transaction: the first webhooks of a
#: failed rack's thousands go out while the rest are being recorded.
RECORD_BATCH = 256
#: The first transaction of a batch is smaller, so that the first
#: tenants' webhooks do not wait for a hundred others to be encoded and
#: recorded.
FIRST_RECORD_BATCH = 16


def event_project(ev: event_model.Event) -> str | None:
    """The project an event belongs to, as Aodh reads it."""
    return ev.trait('project_id') or ev.trait('tenant_id')


def find_definitions(conf: cfg.ConfigOpts, path: str | None = None) -> str:
    """The definitions file: ``path`` or ``[alarms] definitions_file``.

    :raises ConfigurationError: if it is not found.
    """
    name = path or conf.alarms.definitions_file
    found = name if os.path.isabs(name) else conf.find_file(name)
    if found is None or not os.path.exists(found):
        raise exceptions.ConfigurationError(
            name, None,
            'alarm definitions file not found in the configuration '
            'directories; set [alarms] definitions_file to its path (a '
            'sample is etc/doctor_plugin/alarms.yaml)')
    return found


class _Alarms:
    """One generation of alarm definitions, indexed (immutable)."""

    def __init__(self, alarms: typing.Iterable[definitions.AlarmDefinition]
                 ) -> None:
        self.alarms = [a for a in alarms if a.enabled]
        self.rules = index_mod.RuleIndex(
            (a.rule, a.project_id, a) for a in self.alarms)
        self.ok_rules = index_mod.RuleIndex(
            (a.ok_rule, a.project_id, a) for a in self.alarms
            if a.ok_rule is not None)


class EventAlarmEvaluator:
    """Match events to alarms, track alarm state, run actions.

    :param conf: service configuration (passed to the action plugins)
    :param alarms: the alarm definitions
    :param timeline: profiler marks (defaults to the context's)
    :param activity: counts each action while it runs (defaults to the
        context's notification work, which the Nova fix-up yields to)
    :param context: the service's context, which owns the
        ``action_workers`` pool; a private one by default
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 alarms: typing.Iterable[definitions.AlarmDefinition],
                 timeline: profiler.Timeline | None = None,
                 activity: activity_mod.Activity | None = None,
                 context: context_mod.ServiceContext | None = None) -> None:
        self.conf = conf
        self._own_context = context is None
        self.context = (context_mod.ServiceContext('alarm-evaluator')
                        if context is None else context)
        self.timeline = timeline or self.context.timeline
        self.activity = activity or self.context.activity
        self._lock = threading.Lock()
        #: The alarm actions by URL, loaded once for every alarm naming
        #: them.
        self._actions: dict[str, notifier_base.AlarmAction] = {}
        self._current = self._prepare(alarms)
        self.states: dict[str, str] = {
            a.alarm_id: INSUFFICIENT_DATA for a in self._current.alarms}
        self._executor = self.context.executor(
            'doctor-alarm-action', conf.alarms.action_workers)
        self._watcher: DefinitionsWatcher | None = None
        #: Records and retries the recordable actions (webhooks, the
        #: bus) when ``[delivery] durable`` is on; makes the others.
        self.deliverer = deliverer_mod.Deliverer.open(conf)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, path: str | None = None,
                  timeline: profiler.Timeline | None = None,
                  context: context_mod.ServiceContext | None = None
                  ) -> EventAlarmEvaluator:
        """The evaluator of a definitions file, reloaded when it changes.

        :param path: the file; ``[alarms] definitions_file`` by default
        :raises ConfigurationError: if the file is missing or invalid
        """
        path = find_definitions(conf, path)
        evaluator = cls(conf, definitions.load_file(path), timeline,
                        context=context)
        evaluator._watcher = DefinitionsWatcher(
            path, evaluator.replace, conf.alarms.reload_interval)
        return evaluator

    @property
    def alarms(self) -> list[definitions.AlarmDefinition]:
        """The enabled alarms, in definition order."""
        return self._current.alarms

    def _prepare(self, alarms: typing.Iterable[definitions.AlarmDefinition]
                 ) -> _Alarms:
        """Index ``alarms`` and load the plugins of their actions.

        :raises PluginLoadError: if an action's scheme has no plugin in
            ``doctor_plugin.alarm_actions``
        """
        current = _Alarms(alarms)
        for alarm in current.alarms:
            for url in alarm.action_urls():
                if url not in self._actions:
                    self._actions[url] = plugins.load_alarm_action(
                        self.conf, url, context=self.context)
        return current

    def replace(self, alarms: typing.Iterable[definitions.AlarmDefinition]
                ) -> None:
        """Evaluate the next events against ``alarms`` instead.

        An alarm that is kept (same ``alarm_id``) keeps its state; a new
        one starts in ``insufficient data``.

        :raises PluginLoadError: if an action's scheme has no plugin;
            the alarms in use are then kept
        """
        current = self._prepare(alarms)
        with self._lock:
            self.states = {a.alarm_id: self.states.get(a.alarm_id,
                                                       INSUFFICIENT_DATA)
                           for a in current.alarms}
            self._current = current
        LOG.info('Evaluating %d event alarm(s)', len(current.alarms))

    def reload(self) -> bool:
        """Read the definitions file again now (SIGHUP).

        :returns: whether new definitions are in use
        """
        if self._watcher is None:
            return False
        return self._watcher.check(force=True)

    def watches(self, event_type: str) -> bool:
        """Whether any alarm can match (or clear on) ``event_type``."""
        current = self._current
        return (current.rules.watches(event_type)
                or current.ok_rules.watches(event_type))

    def candidates(self, ev: event_model.Event
                   ) -> list[definitions.AlarmDefinition]:
        """The alarms ``ev`` may fire, before their queries are checked."""
        return self._current.rules.lookup(ev, event_project(ev))

    def matching(self, ev: event_model.Event
                 ) -> list[definitions.AlarmDefinition]:
        """The alarms that ``ev`` triggers."""
        return self._match(ev)[0]

    def clearing(self, ev: event_model.Event
                 ) -> list[definitions.AlarmDefinition]:
        """The alarms whose ``ok_rule`` ``ev`` satisfies."""
        return self._match(ev)[1]

    def _match(self, ev: event_model.Event
               ) -> tuple[list[definitions.AlarmDefinition],
                          list[definitions.AlarmDefinition]]:
        """(fired, cleared) of ``ev``, from one generation of alarms."""
        current, project = self._current, event_project(ev)
        # The index matched the event type already.
        return ([a for a in current.rules.lookup(ev, project)
                 if a.rule.holds(ev)],
                [a for a in current.ok_rules.lookup(ev, project)
                 if a.ok_rule.holds(ev)])

    def evaluate(self, events: typing.Iterable[event_model.Event]
                 ) -> list[concurrent.futures.Future]:
        """Evaluate ``events`` in order; start the actions of fired alarms.

        :returns: one future per action started (for callers that wait)
        """
        futures: list[concurrent.futures.Future] = []
        transitions: list[str] = []
        count = 0
        #: (action, notification) pairs to hand to the deliverer.
        pending: list[tuple[notifier_base.AlarmAction,
                            notifier_base.AlarmNotification]] = []
        record_batch = FIRST_RECORD_BATCH
        for ev in events:
            fault_id = ev.trait('monitor_event_id')
            fired, cleared = self._match(ev)
            self.timeline.mark(fault_id, 'T07')
            serialized = None
            for alarm, new in ([(a, ALARM) for a in fired]
                               + [(a, OK) for a in cleared]):
                previous = self._transition(alarm, new)
                if previous is None:
                    continue
                if serialized is None:
                    # Once per event, whatever number of alarms it fires.
                    serialized = ev.serialize()
                notification = self._notification(alarm, ev, serialized,
                                                  previous, new)
                if len(transitions) < MAX_LOGGED_TRANSITIONS:
                    transitions.append(f'{alarm.name} ({previous} -> {new}, '
                                       f'event {ev.message_id})')
                count += 1
                for url in (alarm.alarm_actions if new == ALARM
                            else alarm.ok_actions):
                    self.timeline.mark(fault_id, 'T08')
                    pending.append((self._actions[url], notification))
                    if len(pending) >= record_batch:
                        self._start(pending, futures)
                        pending = []
                        record_batch = RECORD_BATCH
        if pending:
            self._start(pending, futures)
        if count:
            # One line per batch: a failed host fires one alarm per
            # tenant (or per VM), and a log record per alarm cost more
            # than its evaluation.
            more = count - len(transitions)
            LOG.info('%d alarm transition(s): %s%s', count,
                     '; '.join(transitions),
                     f'; and {more} more' if more > 0 else '')
        return futures

    def _transition(self, alarm: definitions.AlarmDefinition,
                    new: str) -> str | None:
        """Move ``alarm`` to ``new``; its previous state if actions run."""
        with self._lock:
            previous = self.states.get(alarm.alarm_id)
            if previous is None:
                # Removed by a reload since it was looked up.
                return None
            if previous == new and not (new == ALARM
                                        and alarm.repeat_actions):
                return None
            self.states[alarm.alarm_id] = new
        return previous

    @staticmethod
    def _notification(alarm: definitions.AlarmDefinition,
                      ev: event_model.Event, serialized: dict,
                      previous: str, current: str
                      ) -> notifier_base.AlarmNotification:
        rule = alarm.rule if current == ALARM else alarm.ok_rule
        # Only an alarm with an ok_rule ever moves to ok.
        assert rule is not None
        return notifier_base.AlarmNotification(
            alarm_id=alarm.alarm_id,
            alarm_name=alarm.name,
            severity=alarm.severity,
            previous=previous,
            current=current,
            reason=(f'Event <id={ev.message_id},event_type='
                    f'{ev.event_type}> hits the query '
                    f'<query={rule.reason_query()}>.'),
            reason_data={'type': 'event', 'event': serialized})

    def _start(self, actions: list[tuple[
            notifier_base.AlarmAction, notifier_base.AlarmNotification]],
            futures: list[concurrent.futures.Future]) -> None:
        """Record what can be recorded, then start making the actions.

        If the database cannot record them they are made once, without
        retries, as without an outbox: the alarms have moved already.
        """
        # Not budgeted: nobody waits on an action thread, which drains
        # the lanes it opened.
        for work in self.deliverer.start(actions, budget=False):
            self.activity.begin()
            futures.append(self._executor.submit(self._run, work))

    def _run(self, work: deliverer_mod.Work) -> None:
        try:
            work()
        except Exception as exc:
            LOG.error('Action %s of alarm %s failed: %s',
                      urls.redact(work.plugin.url),
                      getattr(work.item, 'alarm_id', None), exc)
            raise
        finally:
            self.activity.end()

    @property
    def outbox(self) -> typing.Any:
        """The outbox of the actions, or None (``[delivery] durable``)."""
        return self.deliverer.outbox

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        # Drain the actions before their deliverer and plugins close.
        self._executor.shutdown(wait=True)
        self.deliverer.close()
        for action in self._actions.values():
            action.close()
        if self._own_context:
            self.context.close()


class DefinitionsWatcher:
    """Reload a definitions file when it changes.

    A thread compares the file's size, modification time and inode every
    ``interval`` seconds; :meth:`check` (SIGHUP) reads it at once. A file
    that no longer validates is reported and the alarms in use are kept.

    :param path: the file
    :param apply: called with the new definitions
    :param interval: seconds between checks; 0: no thread
    """

    def __init__(self, path: str,
                 apply: typing.Callable[[list[definitions.AlarmDefinition]],
                                        None],
                 interval: float) -> None:
        self.path = path
        self._apply = apply
        self._seen = self._stamp()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        if interval > 0:
            self._thread = threading.Thread(
                target=self._run, args=(interval,), daemon=True,
                name='doctor-alarm-definitions')
            self._thread.start()

    def _stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.check()

    def check(self, force: bool = False) -> bool:
        """Reload if the file changed (or ``force``); whether it did."""
        with self._lock:
            stamp = self._stamp()
            if not force and stamp == self._seen:
                return False
            self._seen = stamp
            try:
                alarms = definitions.load_file(self.path)
                self._apply(alarms)
            except exceptions.DoctorPluginError as exc:
                LOG.error('Keeping the alarms in use: %s. Fix the file; it '
                          'is read again when it changes or on SIGHUP.',
                          exc)
                return False
            LOG.info('Reloaded alarm definitions from %s', self.path)
            return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
