"""Signed webhooks: the sender's signature and the receiver's check.

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

TIMESTAMP_HEADER = 'X-Doctor-Timestamp'
SIGNATURE_HEADER = 'X-Doctor-Signature'
#: How old a signed request may be, in seconds, by default.
MAX_AGE = 300.0


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
