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

"""Indirect probes between heartbeat monitors: "do you hear this host?".

Before a heartbeat monitor reports a host down it asks the other monitors
watching the same hosts (``[heartbeat] peers``) whether they hear it, as
SWIM's ping-req does: a monitor whose own path to the host broke must not
report a host that is alive. This module is the wire format of those
questions, one UDP datagram each way:

``REQUEST`` (host)
    "do you hear this host?"; answered at once, from the peer's state.
``ANSWER`` (host, status, age, last sent)
    ``ALIVE`` (a heartbeat from it within the freshness bound, on any
    plane), ``SILENT`` (none: ``age`` says how long ago the last one came)
    or ``UNKNOWN`` (the peer does not watch it, has not heard it since it
    started, or is isolated itself); ``last sent`` is the agent's own send
    time of the last heartbeat the peer has, so that the asker can tell
    whether the peer heard anything it did not.
``PING`` / ``PONG``
    the light periodic check that a peer answers at all, so that a dead
    peer is not waited for when a host is due.

Every datagram is::

    magic "DHP1" | version 1 | kind | flags | status | nonce (64 bits)
    | sent (wall clock, float64) | age (float64) | last sent (float64)
    | host length (16 bits)
    | host (UTF-8) | [HMAC-SHA256 of all before it, with [heartbeat] key]

An answer repeats the nonce of its question. The asker accepts an answer
only to a question it asked and is still waiting on, once (a nonce is
random and used once), so a recorded ``ALIVE`` replayed later answers
nothing. The answerer refuses a question whose nonce it saw already, or,
with a key, one sent more than ``max_age`` away from its clock. A
datagram of the wrong size, kind or signature raises :class:`ValueError`
and is dropped, never answered.
"""

from __future__ import annotations

import collections
import math
import struct
import typing

from doctor_plugin import signing

REQUEST = 1
ANSWER = 2
PING = 3
PONG = 4
KINDS = {REQUEST: 'request', ANSWER: 'answer', PING: 'ping', PONG: 'pong'}

#: ``status`` of questions and pings.
NONE = 0
ALIVE = 1
SILENT = 2
UNKNOWN = 3
STATUSES = {ALIVE: 'ALIVE', SILENT: 'SILENT', UNKNOWN: 'UNKNOWN'}

#: ``magic, version, kind, flags, status, nonce, sent, age, last sent,
#: host length``
_HEADER = struct.Struct('!4sBBBBQdddH')
_MAGIC = b'DHP1'
_VERSION = 1
_SIGNED = 0x01
MAX_HOSTNAME = 255
#: The largest valid datagram; receive buffers are larger, so that a
#: longer one is seen whole and refused.
MAX_SIZE = _HEADER.size + MAX_HOSTNAME + signing.SEAL_LENGTH


class Message(typing.NamedTuple):
    kind: int
    nonce: int
    sent: float
    host: str = ''
    status: int = NONE
    age: float = 0.0
    last_sent: float = 0.0


def encode(message: Message, key: bytes | None = None) -> bytes:
    """The datagram of ``message``, signed with ``key`` if given."""
    name = message.host.encode('utf-8')
    data = _HEADER.pack(_MAGIC, _VERSION, message.kind,
                        _SIGNED if key else 0, message.status,
                        message.nonce, message.sent, message.age,
                        message.last_sent, len(name)) + name
    return signing.seal(key, data)


def decode(data: bytes, key: bytes | None = None) -> Message:
    """Parse and check one datagram.

    :raises ValueError: saying why it is dropped
    """
    if len(data) < _HEADER.size:
        raise ValueError('too short for a probe message')
    (magic, version, kind, flags, status, nonce, sent, age, last_sent,
     length) = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise ValueError('not a doctor_plugin probe message (version 1)')
    if kind not in KINDS:
        raise ValueError(f'unknown probe message kind {kind}')
    signed = bool(flags & _SIGNED)
    end = _HEADER.size + length
    if len(data) != end + (signing.SEAL_LENGTH if signed else 0):
        raise ValueError('malformed probe message (length)')
    signing.check_seal(
        key, data, end, signed,
        'unsigned probe message, and [heartbeat] key is set',
        'bad probe signature (is [heartbeat] key the same on every '
        'monitor?)')
    about_host = kind in (REQUEST, ANSWER)
    if about_host != (0 < length <= MAX_HOSTNAME):
        raise ValueError('malformed probe message (host name)')
    if (kind == ANSWER) != (status in STATUSES):
        raise ValueError('malformed probe message (status)')
    if not (math.isfinite(sent) and math.isfinite(age) and age >= 0
            and math.isfinite(last_sent)):
        raise ValueError('malformed probe message (times)')
    try:
        host = data[_HEADER.size:end].decode('utf-8')
    except UnicodeDecodeError:
        raise ValueError('host name is not UTF-8') from None
    return Message(kind, nonce, sent, host, status, age, last_sent)


class ReplayGuard:
    """Refuse questions seen before, or (with ``max_age``) too old.

    Remembers the nonces of the last ``max_age`` seconds (at most
    ``limit`` of them, the oldest forgotten first).

    :param max_age: seconds a question may be away from this clock; 0
        turns the time check off (nonces are still remembered, for
        ``window`` seconds)
    :param window: how long a nonce is remembered when ``max_age`` is 0
    """

    def __init__(self, max_age: float, window: float = 10.0,
                 limit: int = 65536) -> None:
        self.max_age = max_age
        self.window = max_age or window
        self.limit = limit
        self._seen: collections.OrderedDict[int, float] = (
            collections.OrderedDict())

    def check(self, message: Message, now: float) -> str | None:
        """Why ``message`` (received at wall time ``now``) is refused."""
        if self.max_age and abs(now - message.sent) > self.max_age:
            return (f'probe message sent more than {self.max_age} s from '
                    f'this clock (a replay, or clocks out of step)')
        seen = self._seen
        while seen and (len(seen) >= self.limit
                        or next(iter(seen.values())) < now - self.window):
            seen.popitem(last=False)
        if message.nonce in seen:
            return 'probe message repeats a nonce (a replay)'
        seen[message.nonce] = now
        return None
