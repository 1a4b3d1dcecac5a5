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

"""Fix Nova up after a host fault, in the background.

Doctor's inspector tells the consumers first; then Nova must learn what the
monitor saw: the failed host is fenced (made sure to be off, through
:mod:`doctor_plugin.fencers`), then its compute service is forced down (so
evacuation may start at once) and its instances are set to ``error``. A
host that cannot be fenced is left alone in Nova (``[fencing] on_failure
= skip_fixup``), or fenced again until it works (``wait``). When
the host is back, the service is no longer forced down (its instances are
left alone: the operator or the VNF manager decides what to do with them).

:class:`NovaController` implements the inspector's ``Controller``
protocol. ``handle`` returns at once; the work runs in bounded thread
pools, keeps trying while Nova is unavailable (up to ``[nova]
fixup_deadline``), and ends in a :class:`ControllerResult`, published as a
``doctor.controller.result`` event.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import threading
import time
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import context as context_mod
from doctor_plugin.common import profiler
from doctor_plugin.common import retry
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin import fencers
from doctor_plugin.fencers import base as fencer_base
from doctor_plugin.nova import client as nova
from doctor_plugin.topology import hosts as topology

LOG = logging.getLogger(__name__)

RESULT_EVENT_TYPE = 'doctor.controller.result'

#: Host event type → what the controller does about it.
ACTIONS = {'compute.host.down': 'force_down',
           'compute.host.up': 'unforce'}

#: The longest pause between two tries while Nova is unavailable, in
#: seconds: short enough that a returning Nova is used promptly.
MAX_PATIENCE_STEP = 5.0

#: How many finished results are kept for :meth:`NovaController.wait`.
KEPT_RESULTS = 1000

#: Why a job stops before its end.
SUPERSEDED, CLOSED, AUTH_REFUSED = 'superseded', 'closed', 'auth refused'

#: The outcome of a host-down fix-up that left Nova alone: the host
#: could not be fenced.
NOT_FENCED = 'not_fenced'

#: The first pause between two fence attempts (``[fencing] on_failure =
#: wait``), in seconds; they double up to :data:`MAX_PATIENCE_STEP`.
FENCE_RETRY_BACKOFF = 0.5

_RESULT_NAMESPACE = uuid.UUID('0f5c1a7e-3d2b-4c8e-9a61-7b4e2d9c8f13')

_TEXT = event_model.TraitType.TEXT
_INT = event_model.TraitType.INT
_FLOAT = event_model.TraitType.FLOAT


@dataclasses.dataclass(slots=True)
class ControllerResult:
    """How the fix-up of one host event went.

    ``started`` and ``finished`` are wall-clock seconds (``time.time()``),
    comparable with the profiler's marks.
    """

    host: str
    monitor_event_id: str | None
    event_id: str
    action: str
    outcome: str = 'failed'
    instances_total: int = 0
    instances_reset: int = 0
    instances_missing: int = 0
    instances_failed: int = 0
    error: str = ''
    started: float = 0.0
    finished: float = 0.0
    #: How fencing went (a :mod:`doctor_plugin.fencers` outcome), '' when
    #: the action does not fence (``unforce``).
    fence_outcome: str = ''
    #: How long fencing took, all attempts, in ms.
    fence_ms: float = 0.0
    #: Why the last fence attempt failed, '' otherwise.
    fence_error: str = ''
    fence_attempts: int = 0

    @property
    def duration_ms(self) -> float:
        return (self.finished - self.started) * 1000.0

    def to_event(self) -> event_model.Event:
        """The ``doctor.controller.result`` event reporting this result."""
        return event_model.Event.create(
            RESULT_EVENT_TYPE,
            [event_model.Trait('host', _TEXT, self.host),
             event_model.Trait('monitor_event_id', _TEXT,
                               self.monitor_event_id or ''),
             event_model.Trait('action', _TEXT, self.action),
             event_model.Trait('outcome', _TEXT, self.outcome),
             event_model.Trait('instances_total', _INT,
                               self.instances_total),
             event_model.Trait('instances_reset', _INT,
                               self.instances_reset),
             event_model.Trait('instances_missing', _INT,
                               self.instances_missing),
             event_model.Trait('instances_failed', _INT,
                               self.instances_failed),
             event_model.Trait('duration_ms', _FLOAT,
                               round(self.duration_ms, 3)),
             event_model.Trait('error', _TEXT, self.error),
             event_model.Trait('fence_outcome', _TEXT, self.fence_outcome),
             event_model.Trait('fence_ms', _FLOAT, round(self.fence_ms, 3)),
             event_model.Trait('fence_error', _TEXT, self.fence_error),
             event_model.Trait('fence_attempts', _INT,
                               self.fence_attempts)],
            # Derived from the host event, so a repeated publication of the
            # same result is recognisable downstream.
            message_id=str(uuid.uuid5(_RESULT_NAMESPACE, self.event_id)))


#: The longest a Nova call waits for the notification work to pause.
MAX_YIELD = 0.5

#: The niceness of fix-up threads at ``fixup_cpu_priority = low``.
LOW_PRIORITY_NICE = 10


class _Stopped(Exception):
    """The job was superseded or the controller is closing."""


class _NotFenced(Exception):
    """A fence attempt failed; its result is kept."""

    def __init__(self, result: fencer_base.FenceResult) -> None:
        super().__init__(result.error or result.outcome)
        self.result = result


class _Job:
    """One host event being handled, and what stops it."""

    def __init__(self, host_event: event_model.Event, host: str,
                 action: str, instances: tuple[topology.Instance, ...],
                 deadline: float, verify: bool = False) -> None:
        self.event = host_event
        self.verify = verify
        self.host = host
        self.action = action
        self.instances = instances
        self.deadline = deadline
        self.key = (host_event.trait('monitor_event_id')
                    or host_event.message_id)
        self.stop = threading.Event()
        self.stop_reason = ''
        self.nova_waited = False

    def halt(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    def check(self) -> None:
        if self.stop.is_set():
            raise _Stopped(self.stop_reason)


def lower_thread_priority(priority: str) -> None:
    """Give the calling thread ``priority`` (``[nova] fixup_cpu_priority``).

    Linux schedules threads on their own: ``setpriority`` and
    ``sched_setscheduler`` on a thread id change only that thread.
    Elsewhere, or when refused, the thread keeps its priority.
    """
    tid = threading.get_native_id()
    try:
        if priority == 'low':
            os.setpriority(os.PRIO_PROCESS, tid, LOW_PRIORITY_NICE)
        elif priority == 'idle':
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:
        LOG.debug('Cannot lower the CPU priority of a Nova fix-up thread: '
                  '%s', exc)


class NovaController:
    """Force a failed host's compute service down and its VMs to error.

    A newer event for a host supersedes the fix-up still running for an
    older one (a host that came back must not be forced down by a stale
    retry); calls that change a host's service are serialised, so Nova sees
    them in the order the events came.

    :param conf: configuration (its ``[nova]`` options)
    :param client: how Nova is reached
    :param publish: receives ``[result_event]`` when a fix-up is over, e.g.
        ``Pipeline.publish``; None to publish nothing
    :param timeline: where T03 (VMs set to error) and T04 (host marked
        down) are marked (defaults to the context's)
    :param context: the service's context, which owns the ``nova-fixup``
        and ``nova-reset`` pools; a private one (closed by :meth:`close`)
        by default
    :param fencer: makes sure a failed host is off before it is forced
        down; by default the one ``[fencing] driver`` names, loaded here
        and closed by :meth:`close`
    :raises ConfigurationError: if that fencer cannot be loaded
    """

    def __init__(self, conf: cfg.ConfigOpts, client: nova.NovaClient,
                 publish: typing.Callable[[list[event_model.Event]],
                                          typing.Any] | None = None,
                 timeline: profiler.Timeline | None = None,
                 context: context_mod.ServiceContext | None = None,
                 fencer: fencer_base.FencerBase | None = None) -> None:
        self.conf = conf
        self.client = client
        self._own_fencer = fencer is None
        self.fencer = fencers.load(conf) if fencer is None else fencer
        self.publish = publish
        self._own_context = context is None
        self.context = (context_mod.ServiceContext('nova-controller')
                        if context is None else context)
        self.timeline = timeline or self.context.timeline
        width = conf.nova.max_parallel_resets
        # Separate pools: a job waits for its resets, so sharing one pool
        # could fill it with waiting jobs and leave no thread for a reset.
        priority: tuple[str] = (conf.nova.fixup_cpu_priority,)
        self._jobs = self.context.executor(
            'nova-fixup', width, initializer=lower_thread_priority,
            initargs=priority)
        self._resets = self.context.executor(
            'nova-reset', width, initializer=lower_thread_priority,
            initargs=priority)
        self._lock = threading.Condition()
        self._active: dict[str, _Job] = {}
        self._host_locks: dict[str, threading.Lock] = {}
        self._pending: set[concurrent.futures.Future] = set()
        self._results: collections.OrderedDict[str, ControllerResult] = (
            collections.OrderedDict())
        self._closed = False
        self._wait_idle: typing.Callable[[float], object] | None = None

    def yield_to(self, wait_idle: typing.Callable[[float], object]) -> None:
        """Hold each Nova call back while ``wait_idle`` says work runs.

        :param wait_idle: waits (at most the seconds it is given) until
            the notification work of the process is idle, e.g.
            :meth:`doctor_plugin.common.activity.Activity.wait_idle`; a
            call is held back :data:`MAX_YIELD` seconds at most
        """
        self._wait_idle = wait_idle

    # -- the Controller protocol -------------------------------------------

    def handle(self, host_event: event_model.Event,
               instances: typing.Sequence[topology.Instance],
               verify: bool = False) -> concurrent.futures.Future:
        """Start fixing Nova up for ``host_event``; returns at once.

        :param verify: read the service's state first and leave it alone
            if Nova has it so already: for a fix-up taken over from a
            member that may have made it before it died

        :returns: a future of the :class:`ControllerResult` (of None if the
            event needs no fix-up)
        """
        action = ACTIONS.get(host_event.event_type)
        host = host_event.trait('host')
        if action is None or not host:
            LOG.debug('No Nova fix-up for %s event %s',
                      host_event.event_type, host_event.message_id)
            return _done(None)
        job = _Job(host_event, host, action,
                   tuple(instances) if action == 'force_down' else (),
                   time.monotonic() + self.conf.nova.fixup_deadline,
                   verify=verify)
        with self._lock:
            if self._closed:
                LOG.warning('Controller closed: no Nova fix-up for %s of '
                            'host %s', host_event.event_type, host)
                return _done(None)
            older = self._active.get(host)
            if older is not None:
                older.halt(SUPERSEDED)
            self._active[host] = job
            self._host_locks.setdefault(host, threading.Lock())
            self._results.pop(job.key, None)
            future = self._jobs.submit(self._run, job)
            self._pending.add(future)
        future.add_done_callback(self._forget_future)
        return future

    # -- results ----------------------------------------------------------

    @property
    def results(self) -> list[ControllerResult]:
        """The finished results kept, oldest first."""
        with self._lock:
            return list(self._results.values())

    def wait(self, monitor_event_id: str,
             timeout: float | None = None) -> ControllerResult:
        """Wait for the result of a fault's fix-up.

        :param monitor_event_id: the fault's ``monitor_event_id`` trait
            (the host event's message id when it had none)
        :raises TimeoutError: if there is no result within ``timeout``
        """
        with self._lock:
            if not self._lock.wait_for(
                    lambda: monitor_event_id in self._results, timeout):
                raise TimeoutError(
                    f'no Nova fix-up result for fault {monitor_event_id} '
                    f'within {timeout} s')
            return self._results[monitor_event_id]

    def close(self, timeout: float = 10.0) -> None:
        """Stop the fix-ups and wait (at most ``timeout``) for them to end.

        A fix-up stopped here ends as ``failed``; Nova calls already sent
        finish (within ``[nova] request_timeout``, per try).
        """
        with self._lock:
            self._closed = True
            for job in self._active.values():
                job.halt(CLOSED)
            pending = list(self._pending)
        self._jobs.shutdown(wait=False, cancel_futures=True)
        self._resets.shutdown(wait=False, cancel_futures=True)
        _, not_done = concurrent.futures.wait(pending, timeout=timeout)
        if not_done:
            LOG.warning('%d Nova fix-up(s) still running after %.1f s; '
                        'leaving them', len(not_done), timeout)
        if self._own_context:
            self.context.close(0 if not_done else timeout)
        if self._own_fencer:
            self.fencer.close()

    def _forget_future(self, future: concurrent.futures.Future) -> None:
        with self._lock:
            self._pending.discard(future)

    # -- the work ---------------------------------------------------------

    def _run(self, job: _Job) -> ControllerResult:
        result = ControllerResult(
            host=job.host, monitor_event_id=job.event.trait(
                'monitor_event_id'),
            event_id=job.event.message_id, action=job.action,
            instances_total=len(job.instances), started=time.time())
        errors: list[str] = []
        service_ok = False
        fenced = True
        try:
            if job.action == 'force_down':
                fenced = self._fence(job, result)
            if fenced:
                service_ok = self._fix_up(job, result, errors)
        except _Stopped:
            pass  # while fencing: superseded or closing
        except Exception as exc:  # a bug here must still give a result
            LOG.exception('Nova fix-up of host %s failed unexpectedly',
                          job.host)
            errors.append(f'unexpected error: {exc}')
        result.finished = time.time()
        if not fenced and job.stop_reason != SUPERSEDED:
            result.outcome = NOT_FENCED
            errors.insert(0, (
                f'the host could not be fenced ({result.fence_outcome}: '
                f'{result.fence_error}), so it was not forced down nor '
                f'were its instances set to error; [fencing] on_failure '
                f'= {self.conf.fencing.on_failure}'))
        else:
            result.outcome = self._outcome(job, service_ok, result)
        if job.stop_reason == CLOSED:
            errors.append('the controller was closed before the fix-up '
                          'ended')
        result.error = '; '.join(errors)
        with self._lock:
            if self._active.get(job.host) is job:
                del self._active[job.host]
        self._report(job, result)
        return result

    def _fix_up(self, job: _Job, result: ControllerResult,
                errors: list[str]) -> bool:
        """Force the service down (or up), reset the instances.

        :returns: whether the service was changed
        """
        # Resets first, so that they run while the service is forced
        # down: both are needed, neither waits for the other.
        resets = [self._submit_reset(job, inst) for inst in job.instances]
        service_ok = False
        try:
            self._set_service(job, down=job.action == 'force_down')
            service_ok = True
            if job.action == 'force_down':
                self.timeline.mark(result.monitor_event_id, 'T04')
        except (exceptions.NovaError, _Stopped) as exc:
            if not isinstance(exc, _Stopped):
                errors.append(str(exc))
        self._collect_resets(job, resets, result, errors)
        return service_ok

    def _fence(self, job: _Job, result: ControllerResult) -> bool:
        """Make sure the host is off; whether Nova may be fixed up.

        A verified fix-up (a takeover) reads the power state first, and
        leaves a host that is off already alone. With ``[fencing]
        on_failure = wait`` a failed attempt is tried again, with backoff,
        until one works, the job's deadline passes or the job is stopped
        (the host came back up: :class:`_Stopped`).
        """
        fencer = self.fencer
        timeout = self.conf.fencing.timeout
        started = time.time()

        def attempt() -> fencer_base.FenceResult:
            job.check()
            result.fence_attempts += 1
            if job.verify and fencer.power_state(job.host,
                                                 timeout) == 'off':
                now = time.time()
                LOG.info('Host %s is off already: not fenced again',
                         job.host)
                return fencer_base.FenceResult(
                    job.host, fencer_base.ALREADY_OFF, started=now,
                    finished=now)
            outcome = fencer.fence(job.host, timeout)
            if not outcome.safe:
                raise _NotFenced(outcome)
            return outcome

        def before_wait(attempt: int, exc: BaseException,
                        delay: float) -> None:
            LOG.warning('Host %s not fenced (attempt %d: %s); trying again '
                        'in %.1f s, until the fix-up deadline in %.0f s',
                        job.host, attempt, exc, delay,
                        job.deadline - time.monotonic())

        def wait(delay: float) -> None:
            if job.stop.wait(delay):
                job.check()

        waiting = self.conf.fencing.on_failure == fencers.WAIT
        try:
            fence = retry.call(
                attempt,
                backoff=retry.Backoff(FENCE_RETRY_BACKOFF,
                                      MAX_PATIENCE_STEP),
                retry_if=lambda exc: waiting and isinstance(exc, _NotFenced),
                deadline=max(0.0, job.deadline - time.monotonic()),
                before_sleep=before_wait, sleep=wait)
        except _NotFenced as exc:
            fence = exc.result
        finally:
            result.fence_ms = (time.time() - started) * 1000.0
        result.fence_outcome = fence.outcome
        result.fence_error = fence.error
        if fence.outcome in (fencer_base.FENCED, fencer_base.ALREADY_OFF):
            self.timeline.mark(result.monitor_event_id, 'fenced',
                               fence.finished)
        return fence.safe

    def _submit_reset(self, job: _Job, inst: topology.Instance
                      ) -> concurrent.futures.Future:
        try:
            return self._resets.submit(self._reset, job, inst)
        except RuntimeError:  # the pool is shut down: closing
            return _done(('skipped', 0.0))

    def _collect_resets(self, job: _Job,
                        resets: list[concurrent.futures.Future],
                        result: ControllerResult, errors: list[str]) -> None:
        failures: list[str] = []
        last_done = 0.0
        for future in resets:
            try:
                outcome, when = future.result()
            except concurrent.futures.CancelledError:
                outcome, when = 'skipped', 0.0
            if outcome.startswith('failed:'):
                failures.append(outcome[len('failed:'):])
                result.instances_failed += 1
            elif outcome == 'reset':
                result.instances_reset += 1
            elif outcome == 'missing':
                result.instances_missing += 1
            elif job.stop_reason != SUPERSEDED:
                # Not attempted: stopped by an auth error or by close.
                result.instances_failed += 1
            last_done = max(last_done, when)
        if failures:
            errors.append(f'{len(failures)} instance reset(s) failed, '
                          f'first: {failures[0]}')
        if (resets and result.instances_reset + result.instances_missing
                == result.instances_total):
            self.timeline.mark(result.monitor_event_id, 'T03', last_done)

    def _reset(self, job: _Job, inst: topology.Instance
               ) -> tuple[str, float]:
        """Reset one instance; ``(what happened, when)``."""
        try:
            done = self._patiently(
                job, f'reset server {inst.id}',
                lambda: self.client.reset_state(inst.id, 'error'))
        except _Stopped:
            return 'skipped', 0.0
        except exceptions.NovaError as exc:
            return f'failed:{exc}', time.time()
        return ('reset' if done else 'missing'), time.time()

    def _set_service(self, job: _Job, down: bool) -> None:
        def change() -> None:
            # Serialised per host, and re-checked under the lock: once a
            # newer event's call went out, a stale one must not follow it.
            with self._host_locks[job.host]:
                job.check()
                if job.verify and self.client.is_forced_down(
                        job.host) == down:
                    LOG.info('Nova: nova-compute on host %s is already %s',
                             job.host, 'forced down' if down
                             else 'not forced down')
                    return
                self.client.force_down(job.host, down)
        self._patiently(job, f'force host {job.host} '
                             f'{"down" if down else "up"}', change)

    def _patiently(self, job: _Job, what: str,
                   call: typing.Callable[[], typing.Any]) -> typing.Any:
        """Run ``call``, retrying while Nova is unavailable.

        Gives up at the job's deadline, when the job is stopped (also
        during a wait), and at once on an auth error, which stops the
        whole job: its other calls would be refused the same way. Each
        try first yields to the notification work (:meth:`yield_to`).
        """
        def attempt() -> typing.Any:
            job.check()
            if self._wait_idle is not None:
                self._wait_idle(MAX_YIELD)
                job.check()
            try:
                return call()
            except exceptions.NovaAuthError:
                job.halt(AUTH_REFUSED)
                raise

        def before_wait(attempt: int, exc: BaseException,
                        delay: float) -> None:
            if not job.nova_waited:
                job.nova_waited = True
                LOG.warning('Nova is unavailable; the fix-up of host %s '
                            'keeps trying for %.0f s more', job.host,
                            job.deadline - time.monotonic())

        def wait(delay: float) -> None:
            if job.stop.wait(delay):
                job.check()
            LOG.debug('Nova fix-up of host %s: trying again to %s',
                      job.host, what)

        # Each NovaClient call already retried within [nova] retries: these
        # waits are longer, up to MAX_PATIENCE_STEP, so that an outage
        # costs few calls and a returning Nova is still used promptly.
        first = max(self.conf.nova.retry_backoff, 0.01) * 2
        return retry.call(
            attempt,
            backoff=retry.Backoff(min(first, MAX_PATIENCE_STEP),
                                  MAX_PATIENCE_STEP),
            retry_if=lambda exc: isinstance(exc, exceptions.NovaUnavailable),
            deadline=job.deadline - time.monotonic(),
            before_sleep=before_wait, sleep=wait)

    @staticmethod
    def _outcome(job: _Job, service_ok: bool,
                 result: ControllerResult) -> str:
        if job.stop_reason == SUPERSEDED:
            return 'superseded'
        done = int(service_ok) + result.instances_reset + \
            result.instances_missing
        failed = int(not service_ok) + result.instances_failed
        if not failed:
            return 'success'
        return 'partial' if done else 'failed'

    def _report(self, job: _Job, result: ControllerResult) -> None:
        log = LOG.info if result.outcome in ('success', 'superseded') \
            else LOG.error
        log('Nova fix-up (%s) of host %s for fault %s: %s in %.0f ms; '
            '%d of %d instance(s) set to error, %d gone, %d failed%s',
            result.action, result.host, job.key, result.outcome,
            result.duration_ms, result.instances_reset,
            result.instances_total, result.instances_missing,
            result.instances_failed,
            f'; {result.error}' if result.error else '')
        if self.publish is not None:
            try:
                failures = self.publish([result.to_event()])
            except Exception as exc:
                LOG.error('Could not publish the Nova fix-up result of '
                          'host %s: %s', result.host, exc)
            else:
                if failures:
                    LOG.error('Could not publish the Nova fix-up result of '
                              'host %s to %d notifier(s)', result.host,
                              len(failures))
        with self._lock:
            self._results[job.key] = result
            self._results.move_to_end(job.key)
            while len(self._results) > KEPT_RESULTS:
                self._results.popitem(last=False)
            self._lock.notify_all()


def _done(value: typing.Any) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_result(value)
    return future
