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

"""Event alarm definitions, with Aodh's event-alarm semantics.

A definitions file holds a list of alarms shaped like Aodh's API body::

    alarms:
      - name: tenant-a-host-down
        project_id: 0a1b2c...
        severity: critical
        repeat_actions: false
        event_rule:
          event_type: compute.host.down
          query:
            - {field: traits.host, op: eq, value: compute-1, type: string}
        alarm_actions:
          - https://vnfm.tenant-a.example/alarm
        # doctor_plugin's addition: the recovery that moves it to "ok".
        ok_rule:
          event_type: compute.host.up
          query:
            - {field: traits.host, op: eq, value: compute-1, type: string}
        ok_actions:
          - https://vnfm.tenant-a.example/recovered

The file is the one ``[alarms] definitions_file`` names; it is read again
when it changes and on SIGHUP (:mod:`doctor_plugin.alarms.evaluator`).
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import functools
import json
import operator
import typing
import uuid

from doctor_plugin.common import yamlfile
from doctor_plugin import event as event_model
from doctor_plugin import exceptions

SEVERITIES = ('low', 'moderate', 'critical')
STATES = ('insufficient data', 'ok', 'alarm')

OPERATORS: dict[str, typing.Callable[[typing.Any, typing.Any], bool]] = {
    'eq': operator.eq, 'ne': operator.ne,
    'lt': operator.lt, 'le': operator.le,
    'gt': operator.gt, 'ge': operator.ge,
}

_QUERY_TYPES: dict[str, typing.Callable[[typing.Any], typing.Any]] = {
    'string': str,
    'integer': int,
    'float': float,
    'datetime': event_model.parse_datetime,
}

#: The notifier scheme that evaluates events against these alarms.
EVALUATOR_SCHEME = 'alarms'

_ALARM_NAMESPACE = uuid.UUID('0f4a8d5e-7c1b-4d2e-9f3a-6b5c4d3e2f10')


@dataclasses.dataclass(frozen=True, slots=True)
class QueryTerm:
    """One ``{field, op, value, type}`` term of an event rule's query.

    As in Aodh, ``value`` has been converted to the term's ``type`` and is
    compared, as it is, with the event's trait (already of its own trait
    type): a string ``"2"`` does not equal an integer trait 2, and a term on
    a trait the event lacks holds only for ``ne``.
    """

    field: str
    op: str
    value: typing.Any
    type: str = 'string'

    def actual(self, ev: event_model.Event) -> typing.Any:
        """The event's value of :attr:`field` (None when it has none)."""
        if self.field.startswith('traits.'):
            return ev.trait(self.field[len('traits.'):])
        name, _, rest = self.field.partition('.')
        value = getattr(ev, name, None) if name in _EVENT_FIELDS else None
        for part in rest.split('.') if rest else ():
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def matches(self, ev: event_model.Event) -> bool:
        try:
            return OPERATORS[self.op](self.actual(ev), self.value)
        except TypeError:
            # Aodh's evaluator raises here and so never fires the alarm:
            # an ordering between a missing value, or values of different
            # types.
            return False

    def as_query(self) -> dict:
        """The term as Aodh's API shows it (the value as a string)."""
        value = self.value
        if isinstance(value, datetime.datetime):
            value = value.isoformat()
        return {'field': self.field, 'op': self.op, 'type': self.type,
                'value': str(value)}


#: The event attributes a query term can name without ``traits.``.
_EVENT_FIELDS = frozenset({'message_id', 'event_type', 'generated', 'raw'})


@dataclasses.dataclass(frozen=True, slots=True)
class EventRule:
    """An event type pattern (``*`` wildcards) and terms that must hold."""

    event_type: str = '*'
    query: tuple[QueryTerm, ...] = ()

    @property
    def is_pattern(self) -> bool:
        return any(c in self.event_type for c in '*?[')

    def matches(self, ev: event_model.Event) -> bool:
        """Whether ``ev`` satisfies the rule (its type, every term)."""
        if (fnmatch.fnmatchcase(ev.event_type, self.event_type)
                if self.is_pattern else ev.event_type == self.event_type):
            return self.holds(ev)
        return False

    def holds(self, ev: event_model.Event) -> bool:
        """Whether every term holds for ``ev`` (its type aside)."""
        return all(term.matches(ev) for term in self.query)

    def reason_query(self) -> str:
        """The query as Aodh's alarm reason shows it."""
        return _reason_query(self)


@functools.lru_cache(maxsize=65536)
def _reason_query(rule: EventRule) -> str:
    # Once per rule, not once per alarm notification.
    return json.dumps([t.as_query() for t in rule.query], sort_keys=True)


@dataclasses.dataclass(slots=True)
class AlarmDefinition:
    """An event alarm.

    ``project_id`` None: the alarm sees the events that carry no project
    (host events), as an Aodh alarm sees those of its own project only.
    ``ok_rule`` is doctor_plugin's addition to Aodh's event alarm: an
    event that satisfies it (a recovery) moves the alarm to ``ok``.
    """

    alarm_id: str
    name: str
    rule: EventRule = EventRule()
    ok_rule: EventRule | None = None
    project_id: str | None = None
    severity: str = 'critical'
    repeat_actions: bool = False
    enabled: bool = True
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    description: str = ''

    @property
    def event_type(self) -> str:
        return self.rule.event_type

    @property
    def query(self) -> tuple[QueryTerm, ...]:
        return self.rule.query

    def action_urls(self) -> tuple[str, ...]:
        """Every notifier URL the alarm's actions name."""
        return (self.alarm_actions + self.ok_actions
                + self.insufficient_data_actions)


def load_file(path: str) -> list[AlarmDefinition]:
    """Read and validate an alarm definitions file.

    :raises ConfigurationError: naming the file, the alarm and the problem.
    """
    data = yamlfile.load(path, 'the alarm definitions',
                         '[alarms] definitions_file')
    return parse(data, path)


def parse(data: typing.Any, origin: str = '<memory>'
          ) -> list[AlarmDefinition]:
    """Validate a parsed definitions document."""
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get('alarms'),
                                                    list):
        raise exceptions.ConfigurationError(
            origin, None, 'must be a mapping with an "alarms" list')
    alarms, ids = [], set()
    for i, raw in enumerate(data['alarms']):
        alarm = parse_alarm(raw, origin, f'alarms[{i}]')
        if alarm.alarm_id in ids:
            raise exceptions.ConfigurationError(
                origin, f'alarms[{i}] ({alarm.name})',
                f'duplicate alarm_id {alarm.alarm_id}')
        ids.add(alarm.alarm_id)
        alarms.append(alarm)
    return alarms


def parse_alarm(raw: typing.Any, origin: str, entry: str) -> AlarmDefinition:
    """Validate one alarm mapping."""
    def fail(problem):
        raise exceptions.ConfigurationError(origin, entry, problem)

    if not isinstance(raw, dict):
        fail('must be a mapping')
    name = raw.get('name')
    if not isinstance(name, str) or not name:
        fail('"name" must be a non-empty string')
    entry = f'{entry} ({name})'
    allowed = {'alarm_id', 'name', 'description', 'type', 'project_id',
               'severity', 'repeat_actions', 'enabled', 'event_rule',
               'ok_rule',
               'alarm_actions', 'ok_actions', 'insufficient_data_actions'}
    extra = set(raw) - allowed
    if extra:
        fail(f'unknown keys: {", ".join(sorted(extra))}; allowed: '
             f'{", ".join(sorted(allowed))}')
    if raw.get('type', 'event') != 'event':
        fail(f'type {raw["type"]!r} is not supported; only "event" alarms')
    project_id = raw.get('project_id')
    if project_id is not None and (not isinstance(project_id, str)
                                   or not project_id):
        fail('"project_id" must be a non-empty string when given')
    severity = raw.get('severity', 'critical')
    if severity not in SEVERITIES:
        fail(f'"severity" must be one of {", ".join(SEVERITIES)}, '
             f'got {severity!r}')
    for flag in ('repeat_actions', 'enabled'):
        if flag in raw and not isinstance(raw[flag], bool):
            fail(f'"{flag}" must be true or false')
    rule = _parse_rule(raw.get('event_rule'), 'event_rule', fail)
    ok_rule = None
    if raw.get('ok_rule') is not None:
        ok_rule = _parse_rule(raw['ok_rule'], 'ok_rule', fail)
    actions = {}
    for kind in ('alarm_actions', 'ok_actions', 'insufficient_data_actions'):
        urls = raw.get(kind) or []
        if not isinstance(urls, list) or not all(
                isinstance(u, str) and '://' in u for u in urls):
            fail(f'"{kind}" must be a list of notifier URLs (scheme://...)')
        for url in urls:
            if url.partition('://')[0] == EVALUATOR_SCHEME:
                fail(f'"{kind}": {url} would evaluate the alarm\'s own '
                     f'notification as an event; name the alarm\'s '
                     f'receivers (http://, https://, log://, ...)')
        actions[kind] = tuple(urls)
    alarm_id = raw.get('alarm_id') or str(
        uuid.uuid5(_ALARM_NAMESPACE, f'{project_id or ""}/{name}'))
    return AlarmDefinition(
        alarm_id=str(alarm_id), name=name, rule=rule, ok_rule=ok_rule,
        project_id=project_id, severity=severity,
        repeat_actions=raw.get('repeat_actions', False),
        enabled=raw.get('enabled', True),
        description=str(raw.get('description') or ''), **actions)


def _parse_rule(rule: typing.Any, key: str,
                fail: typing.Callable) -> EventRule:
    if not isinstance(rule, dict):
        fail(f'"{key}" must be a mapping with "event_type" and an '
             f'optional "query" list')
    extra = set(rule) - {'event_type', 'query'}
    if extra:
        fail(f'"{key}" has unknown keys: {", ".join(sorted(extra))}; '
             f'allowed: event_type, query')
    event_type = rule.get('event_type', '*')
    if not isinstance(event_type, str) or not event_type:
        fail(f'"{key}.event_type" must be a non-empty string')
    query = rule.get('query') or []
    if not isinstance(query, list):
        fail(f'"{key}.query" must be a list of {{field, op, value, type}}')
    return EventRule(event_type, tuple(
        _parse_term(q, fail, f'{key}.query[{n}]')
        for n, q in enumerate(query)))


def _parse_term(raw: typing.Any, fail: typing.Callable,
                where: str) -> QueryTerm:
    if not isinstance(raw, dict):
        fail(f'{where} must be a mapping with field, op, value')
    field = raw.get('field')
    if not isinstance(field, str) or not field:
        fail(f'{where}.field must be a string such as traits.host')
    op = raw.get('op', 'eq')
    if op not in OPERATORS:
        fail(f'{where}.op must be one of {", ".join(OPERATORS)}, got {op!r}')
    if 'value' not in raw:
        fail(f'{where}.value is missing')
    extra = set(raw) - {'field', 'op', 'value', 'type'}
    if extra:
        fail(f'{where} has unknown keys: {", ".join(sorted(extra))}; '
             f'allowed: field, op, value, type')
    type_name = raw.get('type') or 'string'
    if type_name not in _QUERY_TYPES:
        fail(f'{where}.type must be one of {", ".join(_QUERY_TYPES)}, '
             f'got {type_name!r}')
    try:
        value = _QUERY_TYPES[type_name](raw['value'])
    except (TypeError, ValueError):
        fail(f'{where}.value {raw["value"]!r} is not a valid {type_name}')
    return QueryTerm(field, op, value, type_name)
