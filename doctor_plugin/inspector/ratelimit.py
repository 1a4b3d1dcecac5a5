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

"""A token bucket per client address, for the inspector API's rate limit.

One misbehaving (or hostile) source must not starve the monitors: each
source may make ``rate`` requests a second on average, and ``burst`` at
once (a rack's worth of reports from one Alertmanager, say).
"""

from __future__ import annotations

import threading
import time
import typing


class TokenBuckets:
    """Token buckets keyed by source (the client's address).

    :param rate: tokens added per second to each bucket
    :param burst: a bucket's capacity: requests allowed at once
    :param max_sources: how many buckets are kept; beyond it the full
        (idle) ones are forgotten, and if none is, the oldest
    :param clock: monotonic seconds (``time.monotonic``)
    """

    def __init__(self, rate: float, burst: int, max_sources: int = 10000,
                 clock: typing.Callable[[], float] = time.monotonic
                 ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f'rate must be positive and burst at least 1, '
                             f'got {rate} and {burst}')
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self._clock = clock
        #: source → (tokens, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, source: str) -> float:
        """Take a token from ``source``'s bucket.

        :returns: 0.0 if there was one; otherwise the seconds until there
            is (and nothing is taken)
        """
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(source, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                if source not in self._buckets and (
                        len(self._buckets) >= self.max_sources):
                    self._forget(now)
                self._buckets[source] = (tokens - 1.0, now)
                return 0.0
            self._buckets[source] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        full = [source for source, (tokens, then) in self._buckets.items()
                if tokens + (now - then) * self.rate >= self.burst]
        for source in full:
            del self._buckets[source]
        if not full:
            # dicts keep insertion order; the first is the longest kept.
            del self._buckets[next(iter(self._buckets))]
