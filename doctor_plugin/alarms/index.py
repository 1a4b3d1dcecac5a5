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

"""Find the event rules an event can satisfy without trying them all.

Aodh checks every alarm of the event's project against every event. With
one alarm per VM (Doctor's own set-up) a failed host of 1000 VMs is then a
million rule checks. Here rules are filed by event type (exact types in a
dict, patterns apart) and, within a type, by project and by the value of
one equality term on a trait (``traits.instance_id eq vm-7``): an event
is checked only against the rules filed under its type, its project and
its own trait values. The lookup is a pre-filter; every rule it returns is
still checked in full, so it never changes what matches.
"""

from __future__ import annotations

import fnmatch
import typing

from doctor_plugin.alarms import definitions
from doctor_plugin import event as event_model

#: An indexed entry: its position (to keep definition order) and payload.
Entry = tuple[int, typing.Any]

#: How many event types to remember the matching patterns of.
_TYPE_CACHE_SIZE = 4096


class _Bucket:
    """The rules of one event type (or one event type pattern)."""

    __slots__ = ('plain', 'keyed')

    def __init__(self) -> None:
        #: project → entries whose rule has no equality term on a trait
        self.plain: dict[str | None, list[Entry]] = {}
        #: trait name → (project, value) → entries
        self.keyed: dict[str, dict[tuple[str | None, typing.Any],
                                   list[Entry]]] = {}

    def add(self, entry: Entry, rule: definitions.EventRule,
            project: str | None) -> None:
        key = _index_term(rule)
        if key is None:
            self.plain.setdefault(project, []).append(entry)
        else:
            name, value = key
            self.keyed.setdefault(name, {}).setdefault(
                (project, value), []).append(entry)

    def collect(self, ev: event_model.Event, project: str | None,
                out: list[Entry]) -> None:
        out.extend(self.plain.get(project, ()))
        for name, table in self.keyed.items():
            value = ev.trait(name)
            if value is not None:
                try:
                    out.extend(table.get((project, value), ()))
                except TypeError:
                    # An unhashable raw value cannot equal a typed one.
                    pass


def _index_term(rule: definitions.EventRule
                ) -> tuple[str, typing.Any] | None:
    """The trait and value of the rule's first equality term, if any."""
    for term in rule.query:
        if term.op == 'eq' and term.field.startswith('traits.'):
            return term.field[len('traits.'):], term.value
    return None


class RuleIndex:
    """Rules filed by event type, project and one equality trait.

    :param rules: ``(rule, project_id, payload)`` in definition order;
        :meth:`lookup` returns the payloads
    """

    def __init__(self, rules: typing.Iterable[
            tuple[definitions.EventRule, str | None, typing.Any]]) -> None:
        self._exact: dict[str, _Bucket] = {}
        self._patterns: dict[str, _Bucket] = {}
        self._size = 0
        for position, (rule, project, payload) in enumerate(rules):
            table = self._patterns if rule.is_pattern else self._exact
            bucket = table.get(rule.event_type)
            if bucket is None:
                bucket = table[rule.event_type] = _Bucket()
            bucket.add((position, payload), rule, project)
            self._size += 1
        self._types: dict[str, tuple[_Bucket, ...]] = {}

    def __len__(self) -> int:
        return self._size

    def buckets(self, event_type: str) -> tuple[_Bucket, ...]:
        """The buckets of the rules whose event type matches."""
        found = self._types.get(event_type)
        if found is None:
            exact = self._exact.get(event_type)
            found = tuple(([exact] if exact is not None else []) + [
                bucket for pattern, bucket in self._patterns.items()
                if fnmatch.fnmatchcase(event_type, pattern)])
            if len(self._types) >= _TYPE_CACHE_SIZE:
                # Event types are few; a flood of distinct ones only costs
                # the cache.
                self._types.clear()
            self._types[event_type] = found
        return found

    def watches(self, event_type: str) -> bool:
        """Whether any rule can match an event of ``event_type``."""
        return bool(self.buckets(event_type))

    def lookup(self, ev: event_model.Event, project: str | None
               ) -> list[typing.Any]:
        """The payloads of the rules ``ev`` may satisfy, in order.

        Each is still to be checked with its rule's ``holds``.
        """
        buckets = self.buckets(ev.event_type)
        if not buckets:
            return []
        entries: list[Entry] = []
        for bucket in buckets:
            bucket.collect(ev, project, entries)
        if len(entries) > 1:
            entries.sort(key=_position)
        return [payload for _, payload in entries]


def _position(entry: Entry) -> int:
    return entry[0]
