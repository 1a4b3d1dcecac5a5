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

"""What one running service shares with the parts it assembles.

A service (the inspector, the alarm listener, a monitor) makes one
:class:`ServiceContext` and passes it down to what it builds: the
pipeline, the notifier plugins the pipeline loads, the alarm evaluator,
the engine, the Nova fix-up. The context holds the service's profiler
:class:`~doctor_plugin.common.profiler.Timeline`, its notification
:class:`~doctor_plugin.common.activity.Activity` (which the fix-up yields
to) and the thread pools the service owns, so that two services in one
process share nothing and stopping a service stops its threads. There is
no process-wide instance: a part built without a context makes a private
one of its own.

The thread table in ``doc/source/contributor/threads.rst`` lists the
pools.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import typing

from oslo_log import log as logging

from doctor_plugin.common import activity as activity_mod
from doctor_plugin.common import profiler

LOG = logging.getLogger(__name__)


class ServiceContext:
    """One service's timeline, notification activity and thread pools.

    :param name: the service, for logs and ``repr``
    :param timeline: the profiler marks; a fresh timeline by default
    :param activity: the notification work in progress; a fresh one by
        default
    """

    def __init__(self, name: str = 'doctor-plugin',
                 timeline: profiler.Timeline | None = None,
                 activity: activity_mod.Activity | None = None) -> None:
        self.name = name
        self.timeline = profiler.Timeline() if timeline is None else timeline
        self.activity = (activity_mod.Activity() if activity is None
                         else activity)
        self._lock = threading.Lock()
        self._executors: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self._threads: set[threading.Thread] = set()
        self._closed = False

    def __repr__(self) -> str:
        return (f'<ServiceContext {self.name} '
                f'pools={sorted(self._executors)}>')

    def executor(self, name: str, size: int,
                 initializer: typing.Callable[..., object] | None = None,
                 initargs: tuple = ()
                 ) -> concurrent.futures.ThreadPoolExecutor:
        """The pool called ``name``, made with ``size`` threads on first use.

        Its threads are named ``name`` followed by a number. A second
        call with the same name returns the same pool (and ignores
        ``size`` and ``initializer``, which each new thread runs with
        ``initargs`` first). The pool is shut down by :meth:`close`; a
        part may shut it down earlier to drain its own work first.

        :raises RuntimeError: once the context is closed
        """
        with self._lock:
            if self._closed:
                raise RuntimeError(f'{self.name}: the service context is '
                                   f'closed; no new thread pool {name}')
            pool = self._executors.get(name)
            if pool is None:
                pool = self._executors[name] = (
                    concurrent.futures.ThreadPoolExecutor(
                        max_workers=size, thread_name_prefix=name,
                        initializer=self._started,
                        initargs=(initializer, initargs)))
            return pool

    def _started(self, initializer: typing.Callable[..., object] | None,
                 initargs: tuple) -> None:
        # The first thing each pool thread runs: it is ours to join.
        with self._lock:
            self._threads.add(threading.current_thread())
        if initializer is not None:
            initializer(*initargs)

    @property
    def executors(self) -> dict[str, concurrent.futures.ThreadPoolExecutor]:
        """The pools made so far, by name (a copy)."""
        with self._lock:
            return dict(self._executors)

    def threads(self) -> list[threading.Thread]:
        """The live threads of this context's pools."""
        with self._lock:
            threads = set(self._threads)
            for pool in self._executors.values():
                # A thread just started may not have run _started yet;
                # CPython's pool knows it already.
                threads.update(getattr(pool, '_threads', ()))
            self._threads = {t for t in threads if t.is_alive()}
            threads = self._threads
        return [t for t in threads if t is not threading.current_thread()]

    def close(self, timeout: float | None = 30.0) -> list[str]:
        """Shut every pool down and wait for its threads to end.

        The work already submitted runs to its end (a part that would
        rather cancel its queued work shuts its pool down first, with
        ``cancel_futures``). No pool can be made afterwards.

        :param timeout: seconds to wait in all; None: as long as it takes
        :returns: the names of the threads still running at the deadline
            (they are left to end on their own)
        """
        with self._lock:
            self._closed = True
            pools = list(self._executors.values())
        for pool in pools:
            pool.shutdown(wait=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self.threads():
            thread.join(None if deadline is None
                        else max(0.0, deadline - time.monotonic()))
        left = [t.name for t in self.threads()]
        if left:
            LOG.warning('%s: %d thread(s) still running at shutdown: %s',
                        self.name, len(left), ', '.join(left))
        return left
