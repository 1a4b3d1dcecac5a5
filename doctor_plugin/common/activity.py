"""The notification work in progress in this process, for others to
yield to."""

from __future__ import annotations

import threading
import typing


class Activity:
    """Counts the notification work in progress, for others to yield to.

    The inspector's own background work (the Nova fix-up) waits for a lull
    before each of its calls, so that a fault arriving while an earlier
    one is being fixed up is published, and its tenants' webhooks called,
    without sharing the interpreter with hundreds of instance resets.
    """

    def __init__(self) -> None:
        self._busy = 0
        self._cond = threading.Condition()

    def begin(self) -> None:
        """One more piece of work (which :meth:`end` ends) runs."""
        with self._cond:
            self._busy += 1

    def end(self) -> None:
        with self._cond:
            self._busy -= 1
            if not self._busy:
                self._cond.notify_all()

    def __enter__(self) -> Activity:
        self.begin()
        return self

    def __exit__(self, *exc_info: typing.Any) -> None:
        self.end()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no notification work runs; False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy, timeout)


#: This process's notification work: the inspector's publishing and the
#: alarm actions (tenants' webhooks) it starts.
NOTIFYING = Activity()
