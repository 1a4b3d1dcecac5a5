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

"""Signatures: of webhooks, and of event messages on the bus.

Every HMAC doctor_plugin computes or checks is here, for senders and for
receivers (this module is public: a consumer imports it to check what it
receives).

**Bus messages.** An event sent on the bus carries a ``message_signature``
made the way Ceilometer's publishers make it (:func:`compute_signature`),
under the ``telemetry_secret``; :func:`message_from_event` serialises and
signs one, :func:`verify_signature` checks one.

**Datagrams.** A heartbeat or a probe between monitors, with
``[heartbeat] key`` set, ends with the HMAC-SHA256 under the key of all
that precedes it (:func:`seal`, checked by :func:`check_seal`).

**Webhooks.**
With ``[notifier] webhook_signing_key`` every webhook POST carries
``X-Doctor-Timestamp`` (Unix seconds, when it was sent) and
``X-Doctor-Signature: sha256=<hex>``, the HMAC-SHA256 under the key of
the timestamp, a dot and the body. A receiver recomputes it, compares in
constant time, refuses a timestamp older than a few minutes (a replay of
an old request) and, if it keeps the signatures it saw in that window,
an exact repeat (a replay of a recent one). A retried delivery is sent
again with a new timestamp, so it is not a replay: receivers drop those
by ``X-Doctor-Event-Id``.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import threading
import time
import typing

if typing.TYPE_CHECKING:
    from doctor_plugin import event as event_model

#: The length of a datagram's seal (HMAC-SHA256).
SEAL_LENGTH = hashlib.sha256().digest_size

TIMESTAMP_HEADER = 'X-Doctor-Timestamp'
SIGNATURE_HEADER = 'X-Doctor-Signature'
#: How old a signed request may be, in seconds, by default.
MAX_AGE = 300.0


def seal(key: bytes | None, data: bytes) -> bytes:
    """``data`` with its seal appended; as it is without a key."""
    if not key:
        return data
    return data + hmac.new(key, data, hashlib.sha256).digest()


def check_seal(key: bytes | None, data: bytes, end: int, sealed: bool,
               unsealed_error: str, bad_error: str) -> None:
    """Check the seal of ``data[:end]``, which is ``data[end:]``.

    Without a key anything passes; with one, the datagram must be sealed,
    and under it.

    :param sealed: whether the datagram says it is
    :param unsealed_error: why an unsealed datagram is dropped
    :param bad_error: why one sealed under another key is dropped
    :raises ValueError: with one of them
    """
    if not key:
        return
    if not sealed:
        raise ValueError(unsealed_error)
    if not hmac.compare_digest(
            hmac.new(key, data[:end], hashlib.sha256).digest(), data[end:]):
        raise ValueError(bad_error)


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Doctor-Signature`` of ``body`` sent at ``timestamp``."""
    mac = hmac.new(key, timestamp.encode('ascii') + b'.' + body,
                   hashlib.sha256)
    return 'sha256=' + mac.hexdigest()


def sign(key: bytes, body: bytes, headers: dict[str, str]) -> None:
    """Add the timestamp and signature headers of ``body`` to ``headers``."""
    timestamp = str(int(time.time()))
    headers[TIMESTAMP_HEADER] = timestamp
    headers[SIGNATURE_HEADER] = signature(key, timestamp, body)


class Verifier:
    """A receiver's check of signed webhooks.

    :param key: the sender's ``webhook_signing_key``
    :param max_age: seconds a request may be old (or early: clocks differ)
    """

    def __init__(self, key: bytes, max_age: float = MAX_AGE) -> None:
        self._key = key
        self._max_age = max_age
        self._seen: collections.OrderedDict[str, float] = (
            collections.OrderedDict())
        self._lock = threading.Lock()

    def check(self, headers: typing.Mapping[str, str], body: bytes,
              now: float | None = None) -> str | None:
        """Why the request must be refused, or None if it is genuine."""
        fields = {k.lower(): v for k, v in headers.items()}
        timestamp = fields.get(TIMESTAMP_HEADER.lower(), '')
        given = fields.get(SIGNATURE_HEADER.lower(), '')
        if not timestamp or not given:
            return (f'not signed: {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} '
                    f'are required')
        try:
            sent = int(timestamp)
        except ValueError:
            return f'{TIMESTAMP_HEADER} is not a number of seconds'
        if not hmac.compare_digest(
                signature(self._key, timestamp, body).encode(),
                given.encode('ascii', 'replace')):
            return 'the signature does not match the body'
        now = time.time() if now is None else now
        if abs(now - sent) > self._max_age:
            return (f'signed {now - sent:.0f} s ago, more than the '
                    f'{self._max_age:.0f} s allowed: a replay, or a clock '
                    f'off')
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < (
                    now - self._max_age):
                self._seen.popitem(last=False)
            if given in self._seen:
                return 'a replay of a request already received'
            self._seen[given] = now
        return None


def _flatten(message: dict, prefix: str = ''):
    for name, value in sorted(message.items()):
        key = f'{prefix}{name}'
        if isinstance(value, dict):
            yield from _flatten(value, key + ':')
        else:
            yield key, value


def compute_signature(message: dict, secret: str | None) -> str:
    """Sign a serialised event the way Ceilometer's publishers do.

    HMAC-SHA256 over the sorted, flattened key/value pairs, leaving out any
    existing ``message_signature``. An empty secret gives an empty signature.
    """
    if not secret:
        return ''
    digest = hmac.new(secret.encode('utf-8'), b'', hashlib.sha256)
    for name, value in _flatten(message):
        if name == 'message_signature':
            continue
        digest.update(str(name).encode('utf-8'))
        digest.update(str(value).encode('utf-8'))
    return digest.hexdigest()


def verify_signature(message: dict, secret: str | None) -> bool:
    """Check a message's ``message_signature`` in constant time."""
    expected = compute_signature(message, secret)
    # Compare bytes: compare_digest raises TypeError on non-ASCII str.
    return hmac.compare_digest(
        expected.encode('utf-8'),
        str(message.get('message_signature', '')).encode('utf-8'))


def message_from_event(event: event_model.Event,
                       secret: str | None,
                       times: event_model.Times | None = None) -> dict:
    """Serialise and sign an event for the bus, as Ceilometer does.

    :param times: see :meth:`doctor_plugin.event.Event.serialize`
    """
    message = event.serialize(times)
    message['message_signature'] = compute_signature(message, secret)
    return message
