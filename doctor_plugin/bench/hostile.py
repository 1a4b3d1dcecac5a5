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

"""Hostile and malformed input for the inspector, as hypothesis strategies.

Two kinds, for every payload the inspector takes (its HTTP routes and the
bus notifications its transformers read):

* arbitrary JSON values (:func:`json_values`), from ``null`` to deep
  nesting, lone surrogates, NaN and infinities;
* near-valid documents (:func:`near_valid`): a valid payload with one
  part replaced by a hostile value (a wrong type, a huge string, a deep
  nesting, NaN, unicode, null), deleted, or joined by an unknown key.
  These get past the first checks and reach the code behind them, where
  arbitrary values rarely do.

Used by the unit tests (``test_fuzz_*``) and by benchmark R4
(:mod:`doctor_plugin.bench.fuzz`, :mod:`doctor_plugin.bench.poison`). It
needs hypothesis (the ``bench`` extra), so only R4's functions import this
module, when R4 runs: nothing imports it at module level.
"""

from __future__ import annotations

import copy
import datetime
import json
import typing

from hypothesis import strategies as st

#: Strings that broke parsers, loggers and encoders before: empty, blank,
#: NUL, lone surrogates (valid in JSON, not in UTF-8), right-to-left
#: override, astral plane, times at the ends of the calendar (which
#: overflow when moved to UTC), numbers as text, format strings, and a
#: length just over and far over the inspector's limit of 255.
SPECIAL_STRINGS = (
    '', ' ', '\t\r\n', '\x00', '\ud800', '\udfff\ud800', 'a\udc80b',
    '\u202egnp.exe', '\U0001f4a9' * 3, '\ufeff', 'ǅ̈́',
    '0001-01-01T00:00:00+01:00', '9999-12-31T23:59:59-01:00',
    '0000-00-00T00:00:00Z', '2017-02-30T12:00:00Z', '2017-04-22T25:61:61',
    '2017-04-22T12:00:00.123456789123Z', '+275760-09-13T00:00:00Z',
    'NaN', 'Infinity', '-1e999', '0x10', '%s%s%(x)s{0}', '${jndi:x}',
    "'; DROP TABLE events; --", '../../etc/passwd', 'compute.host.down',
    'x' * 256, 'x' * 4000,
)

#: JSON numbers that are not ordinary: NaN and infinities (Python's json
#: reads and writes them), -0.0, the edges of doubles and big integers.
SPECIAL_NUMBERS = (
    float('nan'), float('inf'), float('-inf'), -0.0, 5e-324,
    1.7976931348623157e308, 2 ** 63, -2 ** 63 - 1, 10 ** 300, 2 ** 31,
    -1, 0, 1, 8, 9, 255, 256,
)

#: Deeper than Python's recursion limit: what json.loads, repr() and
#: str() cannot take.
DEEP = 5000


def deep_nesting(depth: int, kind: str = 'list') -> typing.Any:
    """A list (or object) nested ``depth`` levels deep (no recursion)."""
    value: typing.Any = 0
    for _ in range(depth):
        value = [value] if kind == 'list' else {'a': value}
    return value


def texts() -> st.SearchStrategy[str]:
    """Any text: arbitrary code points (surrogates too) and the specials."""
    return st.one_of(
        st.text(max_size=20),
        st.text(st.characters(codec=None, categories=None), max_size=12),
        st.sampled_from(SPECIAL_STRINGS),
    )


def scalars() -> st.SearchStrategy[typing.Any]:
    """Any JSON scalar, hostile ones included."""
    return st.one_of(
        st.none(), st.booleans(), st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(SPECIAL_NUMBERS), texts(),
    )


def json_values() -> st.SearchStrategy[typing.Any]:
    """Any JSON value, from a scalar to a nesting deeper than the stack."""
    nested = st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(texts(), inner, max_size=4)),
        max_leaves=12)
    deep = st.builds(deep_nesting, st.sampled_from([50, 900, DEEP]),
                     st.sampled_from(['list', 'dict']))
    return st.one_of(nested, deep)


# -- valid documents ---------------------------------------------------------

_NAMES = st.text('abcdefghijklmnopqrstuvwxyz0123456789-._', min_size=1,
                 max_size=24).filter(lambda s: s.strip('.-_'))
HOSTS = ('compute-1', 'compute-2', 'compute-3')
_HOSTS = st.sampled_from(HOSTS) | _NAMES
_TIMES = st.datetimes(min_value=datetime.datetime(2000, 1, 1),
                      max_value=datetime.datetime(2099, 12, 31))


def _iso(suffix: str = 'Z') -> st.SearchStrategy[str]:
    return _TIMES.map(lambda t: t.isoformat() + suffix)


_TIME_TEXT = _iso('Z') | _iso('') | _iso('+02:00')


def doctor_events() -> st.SearchStrategy[list]:
    """Bodies of ``PUT /events``: Doctor's inspector event lists."""
    details = st.fixed_dictionaries(
        {'hostname': _HOSTS, 'status': st.sampled_from(['down', 'up']),
         'monitor': _NAMES, 'monitor_event_id': _NAMES},
        optional={'source': _NAMES, 'cause': _NAMES, 'severity': _NAMES,
                  'monitor_id': _NAMES,
                  'extra': st.none() | st.booleans() | st.integers() | _NAMES})
    event = st.fixed_dictionaries(
        {'time': _TIME_TEXT, 'type': st.just('compute.host.down'),
         'details': details},
        optional={'id': _NAMES})
    return st.lists(event, min_size=1, max_size=3)


def _trait() -> st.SearchStrategy[list]:
    return st.one_of(
        st.tuples(_NAMES, st.just(1), _NAMES),
        st.tuples(_NAMES, st.just(2), st.integers(-2 ** 40, 2 ** 40)),
        st.tuples(_NAMES, st.just(3),
                  st.floats(allow_nan=False, allow_infinity=False)),
        st.tuples(_NAMES, st.just(4), _TIME_TEXT),
        st.tuples(_NAMES, st.just(0), st.none()),
        st.tuples(st.sampled_from(['host', 'instance_id', 'project_id',
                                   'monitor_event_id', 'state']),
                  st.just(1), _HOSTS),
    ).map(list)


def ceilometer_events() -> st.SearchStrategy[list]:
    """Bodies of ``PUT /events/ceilometer``: serialised Ceilometer events."""
    event = st.fixed_dictionaries(
        {'message_id': st.uuids().map(str),
         'event_type': st.sampled_from(['compute.host.down',
                                        'compute.host.up',
                                        'compute.instance.update',
                                        'compute.host.disabled']) | _NAMES,
         'generated': _TIME_TEXT,
         'traits': st.lists(_trait(), max_size=5)},
        optional={'raw': st.just({}), 'message_signature': _NAMES})
    return st.lists(event, min_size=1, max_size=3)


def _alert(status: bool) -> st.SearchStrategy[dict]:
    labels = st.fixed_dictionaries(
        {'alertname': st.sampled_from(['InstanceDown', 'HostDown',
                                       'NodeDown', 'DiskFull']),
         'instance': _HOSTS.map(lambda h: h + ':9100')},
        optional={'nodename': _HOSTS, 'severity': _NAMES,
                  'interface': _NAMES})
    fields = {'labels': labels, 'startsAt': _TIME_TEXT}
    optional = {'annotations': st.fixed_dictionaries({'summary': _NAMES}),
                'endsAt': _TIME_TEXT, 'fingerprint': _NAMES}
    if status:
        optional['status'] = st.sampled_from(['firing', 'resolved'])
    return st.fixed_dictionaries(fields, optional=optional)


def alertmanager_webhooks() -> st.SearchStrategy[dict]:
    """Bodies of ``POST /events/alertmanager``: Alertmanager's webhook."""
    return st.fixed_dictionaries(
        {'version': st.just('4'),
         'status': st.sampled_from(['firing', 'resolved']),
         'alerts': st.lists(_alert(True), max_size=3)},
        optional={'receiver': _NAMES, 'groupKey': _NAMES,
                  'externalURL': st.just('http://alertmanager:9093')})


def collectd_notifications() -> st.SearchStrategy[typing.Any]:
    """Bodies of ``POST /events/collectd``: one notification or a list."""
    labels = st.fixed_dictionaries(
        {'alertname': st.sampled_from(['collectd_connectivity_gauge',
                                       'collectd_ovs_events_gauge',
                                       'collectd_cpu_percent']),
         'instance': _HOSTS,
         'severity': st.sampled_from(['FAILURE', 'WARNING', 'OKAY'])},
        optional={'interface': _NAMES})
    notification = st.fixed_dictionaries(
        {'labels': labels, 'startsAt': _TIME_TEXT},
        optional={'annotations': st.fixed_dictionaries({'summary': _NAMES}),
                  'endsAt': _TIME_TEXT})
    return notification | st.lists(notification, min_size=1, max_size=3)


def libvirt_events() -> st.SearchStrategy[typing.Any]:
    """Bodies of ``POST /events/libvirt``: one lifecycle event or a list."""
    event = st.fixed_dictionaries(
        {'host': _HOSTS,
         'domain': st.fixed_dictionaries({'uuid': st.uuids().map(str)},
                                         optional={'name': _NAMES}),
         'event': st.sampled_from(['stopped', 'crashed', 'started',
                                   'defined']) | st.integers(0, 8)},
        optional={'detail': st.sampled_from(['crashed', 'failed',
                                             'shutdown']) | st.integers(0, 6),
                  'time': _TIME_TEXT})
    return event | st.lists(event, min_size=1, max_size=3)


def notification_metadata(event_type: str) -> st.SearchStrategy[dict]:
    """What oslo.messaging gives a listener besides the payload."""
    return st.fixed_dictionaries(
        {'event_type': st.just(event_type),
         'publisher_id': _NAMES,
         'priority': st.just('INFO')},
        optional={'message_id': st.uuids().map(str),
                  'timestamp': _TIMES.map(lambda t: str(t))})


def nova_service_updates() -> st.SearchStrategy[dict]:
    """Payloads of Nova's versioned ``service.update`` notifications."""
    data = st.fixed_dictionaries(
        {'host': _HOSTS,
         'binary': st.sampled_from(['nova-compute', 'nova-compute',
                                    'nova-scheduler']),
         'forced_down': st.booleans(), 'disabled': st.booleans(),
         'disabled_reason': st.none() | _NAMES,
         'uuid': st.uuids().map(str),
         'last_seen_up': st.none() | _TIME_TEXT},
        optional={'topic': st.just('compute'), 'version': st.integers(0, 99),
                  'report_count': st.integers(0, 10 ** 6)})
    return st.fixed_dictionaries({
        'nova_object.name': st.just('ServiceStatusPayload'),
        'nova_object.namespace': st.just('nova'),
        'nova_object.version': st.sampled_from(['1.0', '1.1']),
        'nova_object.data': data})


# -- mutations ---------------------------------------------------------------

def _paths(doc: typing.Any, prefix: tuple = ()) -> typing.Iterator[tuple]:
    """Every place in ``doc``, the document itself first."""
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _paths(value, prefix + (index,))


def _hostile() -> st.SearchStrategy[typing.Any]:
    return st.one_of(scalars(), json_values(),
                     st.sampled_from([[], {}, [None], {'': None}]))


@st.composite
def _mutate(draw: typing.Callable, valid: st.SearchStrategy) -> typing.Any:
    doc = copy.deepcopy(draw(valid))
    path = draw(st.sampled_from(list(_paths(doc))))
    if not path:
        return draw(_hostile())
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = draw(st.sampled_from(['replace', 'replace', 'delete', 'add']))
    if action == 'replace':
        parent[key] = draw(_hostile())
    elif action == 'delete':
        del parent[key]
    elif isinstance(parent[key], dict):
        parent[key][draw(texts())] = draw(_hostile())
    elif isinstance(parent[key], list):
        parent[key].append(draw(_hostile()))
    else:
        parent[key] = [parent[key], draw(_hostile())]
    return doc


def near_valid(valid: st.SearchStrategy) -> st.SearchStrategy[typing.Any]:
    """Documents of ``valid`` with one part replaced, deleted or added."""
    return _mutate(valid)


def fuzzed(valid: st.SearchStrategy) -> st.SearchStrategy[typing.Any]:
    """What the fuzz tests send: valid, near-valid and arbitrary values."""
    return st.one_of(valid, near_valid(valid), near_valid(valid),
                     json_values())


# -- request bodies ----------------------------------------------------------

def encode(value: typing.Any) -> bytes:
    """``value`` as the JSON a client sends.

    NaN, infinities and lone surrogates are written as Python's json
    writes them; unlike :func:`json.dumps`, nesting of any depth is
    written (iteratively), since a hostile client is not bound by a stack.
    """
    out: list[str] = []
    stack: list[typing.Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Token):
            out.append(item.text)
        elif isinstance(item, list):
            stack.append(_Token(']'))
            for index in range(len(item) - 1, -1, -1):
                stack.append(item[index])
                if index:
                    stack.append(_Token(','))
            out.append('[')
        elif isinstance(item, dict):
            stack.append(_Token('}'))
            pairs = list(item.items())
            for index in range(len(pairs) - 1, -1, -1):
                key, member = pairs[index]
                stack.append(member)
                stack.append(_Token(json.dumps(str(key)) + ':'))
                if index:
                    stack.append(_Token(','))
            out.append('{')
        else:
            out.append(json.dumps(item))
    return ''.join(out).encode()


class _Token(typing.NamedTuple):
    text: str


#: Bodies that are not JSON, or not UTF-8, or end too soon.
RAW_BODIES = (
    b'', b' ', b'{', b'[', b'[1,', b'{"a":}', b'nul', b'\xff\xfe\x00',
    b'\xc3\x28', b'"\xed\xa0\x80"', b'[' * 100000, b'{"a":' * 20000,
    b'1' * 5000, b'[1e99999]', b'\x00' * 64, b'[]' * 1000,
)


def bodies(valid: st.SearchStrategy) -> st.SearchStrategy[bytes]:
    """Request bodies: mostly fuzzed JSON, some raw garbage bytes."""
    return st.one_of(
        fuzzed(valid).map(encode), fuzzed(valid).map(encode),
        fuzzed(valid).map(encode), st.sampled_from(RAW_BODIES),
        st.binary(max_size=64))
