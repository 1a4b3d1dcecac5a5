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

"""Checks every transformer makes of the payload it is given.

A transformer takes what a client or the bus sent, decoded from JSON, and
must refuse anything that is not fit to become events with an
:class:`~doctor_plugin.exceptions.InvalidPayload` naming the bad field.
These are the checks the transformers share, and the way their errors show
a rejected value.
"""

from __future__ import annotations

import json
import math
import typing

from doctor_plugin import event as event_model
from doctor_plugin import exceptions

#: Most events one request body may hold. A monitor reports what it has
#: just detected, so a longer body is a misbehaving client; refusing it
#: keeps one request from holding the inspector up.
MAX_EVENTS = 1000

#: Deepest nesting of arrays and objects accepted in a payload. Doctor's
#: events nest three levels deep and Nova's notifications about eight;
#: Python's own recursion (repr, the bus's signing of the raw payload)
#: gives out at about a thousand.
MAX_DEPTH = 32


def event_list(payload: typing.Any, expected: str) -> list:
    """``payload`` as a non-empty list: one object is a list of one.

    :raises InvalidPayload: saying ``expected``, for anything else
    """
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not payload:
        raise exceptions.InvalidPayload('', expected)
    return payload


def json_type(value: typing.Any) -> str:
    """Name the JSON type of a decoded value, for error messages."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, (int, float)):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, (list, tuple)):
        return 'array'
    if isinstance(value, dict):
        return 'object'
    return type(value).__name__


def _shown(value: str) -> str:
    """Quote a rejected string, without echoing a huge one back."""
    if len(value) > 64:
        return f'a string of {len(value)} characters'
    return repr(value)


def shown(value: typing.Any) -> str:
    """Show a rejected value of any type in an error message, briefly.

    Strings and short scalars are quoted; anything else is named by its
    JSON type, so that the message never echoes a huge or deeply nested
    value back to the client and into the log.
    """
    if isinstance(value, str):
        return _shown(value)
    if value is None or isinstance(value, (bool, float)) or (
            isinstance(value, int) and abs(value) < 10 ** 18):
        return json.dumps(value)
    kind = json_type(value)
    return f'an {kind}' if kind[0] in 'aeiou' else f'a {kind}'


def _unicode_problem(text: str) -> str | None:
    try:
        text.encode('utf-8')
    except UnicodeEncodeError as exc:
        return (f'holds a lone surrogate ({text[exc.start]!a} at character '
                f'{exc.start}), which is not Unicode text; send UTF-8')
    return None


def check_document(payload: typing.Any) -> None:
    """Check that a decoded payload is JSON every part of us can carry.

    Python's json module reads more than JSON: NaN and infinities, lone
    surrogates (``"\\ud800"``) and any depth of nesting. None of them
    belongs in a report, and each breaks something further on (the
    signature of the bus message, a UUID of the host name, a log line),
    so they are refused here, before anything else looks at the payload.

    :raises InvalidPayload: naming the first part nested more than
        :data:`MAX_DEPTH` levels deep, the first number that is not finite
        or the first string (or key) that is not valid Unicode
    """
    stack: list[tuple[typing.Any, str, int]] = [(payload, '', 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            problem = _unicode_problem(value)
            if problem:
                raise exceptions.InvalidPayload(path, problem)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise exceptions.InvalidPayload(
                    path, f'must be a finite number, got {value}')
        elif isinstance(value, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise exceptions.InvalidPayload(
                    path, f'is nested more than {MAX_DEPTH} levels deep; '
                          f'no payload the inspector takes is')
            items = (value.items() if isinstance(value, dict)
                     else enumerate(value))
            for key, member in items:
                key_text = str(key)
                if len(key_text) > 64:
                    key_text = key_text[:60] + '...'
                name = f'{path}.{key_text}' if path else key_text
                if isinstance(key, str):
                    problem = _unicode_problem(key)
                    if problem:
                        raise exceptions.InvalidPayload(
                            path, f'a key {problem}')
                stack.append((member, name, depth + 1))


def check_text(value: typing.Any, field: str) -> str:
    """Check that ``value`` is a usable string field.

    :raises InvalidPayload: unless it is a string of 1 to
        :data:`doctor_plugin.event.MAX_STRING_LENGTH` characters, not only
        white space.
    """
    expected = (f'must be a non-empty string of at most '
                f'{event_model.MAX_STRING_LENGTH} characters')
    if not isinstance(value, str):
        raise exceptions.InvalidPayload(
            field, f'{expected}, got {json_type(value)}')
    if not value.strip():
        raise exceptions.InvalidPayload(field,
                                        f'{expected}, got {_shown(value)}')
    if len(value) > event_model.MAX_STRING_LENGTH:
        raise exceptions.InvalidPayload(
            field, f'{expected}, got {_shown(value)}')
    return value
