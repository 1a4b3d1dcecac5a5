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

"""One retry policy: exponential backoff with jitter, on tenacity.

Every place that tries again after a failure (a webhook POST, a Nova
call, a monitor's report, a topology load, a recorded delivery) takes its
waits from a :class:`Backoff`. Blocking callers use :func:`call`, which
runs the first attempt directly, so that the common case costs nothing
more than the call, and hands the retries to :mod:`tenacity`, as Aodh and
Ceilometer do. Callers that schedule their own retries (the outbox's
heap, a periodic loader) ask :meth:`Backoff.delay` for the wait.
"""

from __future__ import annotations

import dataclasses
import random
import time
import typing

import tenacity

T = typing.TypeVar('T')


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Waits that double from ``initial`` up to ``maximum`` seconds.

    With ``jitter`` a wait is drawn between half its ceiling and the
    ceiling, so that the many retries one fault starts (a reset per
    instance, a webhook per tenant) do not all hit a recovering server
    at the same moment. With ``first_at_once`` the first retry does not
    wait (a dropped kept-alive connection is worth trying again at
    once), and the doubling starts from the second.
    """

    initial: float
    maximum: float
    jitter: bool = True
    first_at_once: bool = False

    def __post_init__(self) -> None:
        # initial = 0 is allowed: a retry option with min=0 means "retry
        # at once".
        if self.initial < 0 or self.maximum < self.initial:
            raise ValueError(
                f'backoff needs 0 <= initial <= maximum, not '
                f'initial={self.initial} maximum={self.maximum}')

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt ``attempt`` (1-based)."""
        # min() first: 2 ** attempt overflows a float after ~1000 tries.
        if attempt > 64:
            return self.maximum
        return min(self.maximum, self.initial * 2 ** (attempt - 1))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        if self.first_at_once and attempt == 1:
            return 0.0
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        return random.uniform(ceiling / 2, ceiling)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        """The wait, as a tenacity ``wait`` strategy."""
        return self.delay(retry_state.attempt_number)


def call(fn: typing.Callable[[], T], *,
         backoff: Backoff,
         retry_if: typing.Callable[[BaseException], bool],
         attempts: int | None = None,
         deadline: float | None = None,
         wait_hint: typing.Callable[[BaseException], float] | None = None,
         before_sleep: typing.Callable[[int, BaseException, float], None]
         | None = None,
         sleep: typing.Callable[[float], None] = time.sleep) -> T:
    """``fn()``, tried again on the failures ``retry_if`` accepts.

    :param fn: what to try; its result is returned
    :param backoff: the waits between attempts
    :param retry_if: whether an exception is worth another attempt; any
        other is raised at once
    :param attempts: at most this many attempts in all (None: no limit)
    :param deadline: stop retrying once this many seconds have passed
        since the first attempt (None: no limit); a wait never runs past
        it
    :param wait_hint: the least wait an exception asks for (a 429's
        Retry-After), if longer than the backoff's
    :param before_sleep: called with (attempt, exception, wait) before
        each wait, to log it
    :param sleep: how to wait (tests pass a fake clock's)
    :raises: the last exception, once the attempts or the deadline are
        spent
    """
    started = time.monotonic()
    try:
        return fn()
    except Exception as exc:
        if not retry_if(exc) or attempts == 1:
            raise
        first = exc

    # The first attempt ran above, without tenacity: the common case
    # costs only the call. Tenacity counts its own attempts from 1, so
    # attempt n there is attempt n + 1 here.
    def wait_after(attempt: int, exc: BaseException | None) -> float:
        delay = backoff.delay(attempt)
        if wait_hint is not None and exc is not None:
            delay = max(delay, wait_hint(exc))
        if deadline is not None:
            delay = max(0.0, min(delay,
                                 started + deadline - time.monotonic()))
        return delay

    def spent(attempt: int) -> bool:
        if attempts is not None and attempt >= attempts:
            return True
        return (deadline is not None
                and time.monotonic() - started >= deadline)

    def outcome(state: tenacity.RetryCallState) -> BaseException | None:
        return state.outcome.exception() if state.outcome else None

    def log(attempt: int, exc: BaseException | None, delay: float) -> None:
        if before_sleep is not None and exc is not None:
            before_sleep(attempt, exc, delay)

    if spent(1):
        raise first
    delay = wait_after(1, first)
    log(1, first, delay)
    sleep(delay)
    retrying = tenacity.Retrying(
        wait=lambda s: wait_after(s.attempt_number + 1, outcome(s)),
        stop=lambda s: spent(s.attempt_number + 1),
        retry=tenacity.retry_if_exception(retry_if),
        before_sleep=lambda s: log(s.attempt_number + 1, outcome(s),
                                   s.upcoming_sleep),
        sleep=sleep,
        reraise=True)
    return retrying(fn)
