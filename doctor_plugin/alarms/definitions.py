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
"""

from __future__ import annotations

import dataclasses
import datetime
import operator
import typing
import uuid

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin import yamlfile

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

_ALARM_NAMESPACE = uuid.UUID('0f4a8d5e-7c1b-4d2e-9f3a-6b5c4d3e2f10')


@dataclasses.dataclass(frozen=True, slots=True)
class QueryTerm:
    """One ``{field, op, value, type}`` term of an event rule's query."""

    field: str
    op: str
    value: typing.Any

    def matches(self, ev: event_model.Event) -> bool:
        if self.field.startswith('traits.'):
            actual = ev.trait(self.field[len('traits.'):])
        else:
            actual = getattr(ev, self.field, None)
        if actual is None:
            return False
        expected = self.value
        try:
            if isinstance(actual, datetime.datetime):
                expected = event_model.parse_datetime(expected)
            elif isinstance(actual, (int, float)) and isinstance(expected,
                                                                 str):
                expected = type(actual)(expected)
            elif isinstance(actual, str) and not isinstance(expected, str):
                expected = str(expected)
            return OPERATORS[self.op](actual, expected)
        except (TypeError, ValueError):
            return False


@dataclasses.dataclass(slots=True)
class AlarmDefinition:
    """An event alarm. ``project_id`` None: it sees every project."""

    alarm_id: str
    name: str
    event_type: str
    query: tuple[QueryTerm, ...] = ()
    project_id: str | None = None
    severity: str = 'critical'
    repeat_actions: bool = False
    enabled: bool = True
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    description: str = ''


def load_file(path: str) -> list[AlarmDefinition]:
    """Read and validate an alarm definitions file.

    :raises ConfigurationError: naming the file, the alarm and the problem.
    """
    data = yamlfile.load(path, 'the alarm definitions',
                         '[listener] alarm_definitions_file')
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
    rule = raw.get('event_rule')
    if not isinstance(rule, dict):
        fail('"event_rule" must be a mapping with "event_type" and an '
             'optional "query" list')
    event_type = rule.get('event_type', '*')
    if not isinstance(event_type, str) or not event_type:
        fail('"event_rule.event_type" must be a non-empty string')
    query = rule.get('query') or []
    if not isinstance(query, list):
        fail('"event_rule.query" must be a list of {field, op, value, type}')
    terms = tuple(_parse_term(q, fail, n) for n, q in enumerate(query))
    actions = {}
    for kind in ('alarm_actions', 'ok_actions', 'insufficient_data_actions'):
        urls = raw.get(kind) or []
        if not isinstance(urls, list) or not all(
                isinstance(u, str) and '://' in u for u in urls):
            fail(f'"{kind}" must be a list of notifier URLs (scheme://...)')
        actions[kind] = tuple(urls)
    alarm_id = raw.get('alarm_id') or str(
        uuid.uuid5(_ALARM_NAMESPACE, f'{project_id or ""}/{name}'))
    return AlarmDefinition(
        alarm_id=str(alarm_id), name=name, event_type=event_type,
        query=terms, project_id=project_id, severity=severity,
        repeat_actions=raw.get('repeat_actions', False),
        enabled=raw.get('enabled', True),
        description=str(raw.get('description') or ''), **actions)


def _parse_term(raw: typing.Any, fail: typing.Callable, n: int) -> QueryTerm:
    where = f'event_rule.query[{n}]'
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
    type_name = raw.get('type', 'string')
    if type_name not in _QUERY_TYPES:
        fail(f'{where}.type must be one of {", ".join(_QUERY_TYPES)}, '
             f'got {type_name!r}')
    try:
        value = _QUERY_TYPES[type_name](raw['value'])
    except (TypeError, ValueError):
        fail(f'{where}.value {raw["value"]!r} is not a valid {type_name}')
    return QueryTerm(field, op, value)
