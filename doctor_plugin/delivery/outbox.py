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

"""Make recorded deliveries, in order per key, retrying until a deadline.

A plugin that can be recorded (:class:`~doctor_plugin.delivery.recordable.
Recordable`) splits its work in two: ``encode`` turns what it is asked
to deliver into payloads, each with an ordering key and an idempotency
key (the event's message_id), and ``send`` sends one. The outbox records
the payloads (one transaction per batch, :meth:`Outbox.accept`), then
the caller sends them at once (:meth:`Outbox.run`), in its thread: the
first attempt costs what it did without the outbox, plus a commit.
:class:`~doctor_plugin.delivery.deliverer.Deliverer` is how the pipeline
and the alarm evaluator do both; nothing else calls them.

Deliveries that share a key form a lane. While one of them is being sent
or waits for its retry, the next ones wait behind it, so a consumer sees
an alarm's transitions in the order they happened even across outages.
A failed delivery is retried by the outbox's threads after
``retry_initial_interval``, doubling up to ``retry_max_interval``, less a
random part of up to half; at ``deadline`` it is dead-lettered and the
lane goes on. Delivered rows are deleted in batches, off the
notification path; a process killed before that resends them after its
restart, which receivers drop by the idempotency key.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import hashlib
import heapq
import os
import sys
import threading
import time
import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import plugins
from doctor_plugin.common import retry
from doctor_plugin.common import urls
from doctor_plugin.delivery import recordable
from doctor_plugin.delivery import store as store_mod
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)

#: Seconds between deletions of delivered rows.
FLUSH_INTERVAL = 0.1


def owner_name(conf: cfg.ConfigOpts) -> str:
    """``[delivery] owner`` and the program: ``host1:doctor-plugin-inspector``.

    The inspector and the listener of one host share the default
    database; each resumes only its own deliveries.
    """
    prog = conf.prog or os.path.basename(sys.argv[0] or '') or 'doctor'
    return f'{conf.delivery.owner}:{prog}'


def lane_key(target: str, key: str) -> str:
    """The lane of ``key`` at ``target``: the key and a digest of the URL.

    A digest, not the URL: a URL can be longer than an index allows and
    may hold credentials.
    """
    return f'{key[:700]}@{_target_digest(target)}'


@functools.lru_cache(maxsize=4096)
def _target_digest(target: str) -> str:
    # Once per target, not per delivery: a rack's thousands of alarms go
    # to a few URLs.
    return hashlib.sha1(target.encode()).hexdigest()[:16]


class Outbox:
    """Record, make and retry the deliveries of one process.

    :param conf: service configuration (``[delivery]`` options; passed to
        the notifiers it loads for resumed deliveries)
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 store: store_mod.DeliveryStore | None = None) -> None:
        opts = conf.delivery
        self.conf = conf
        self.owner = owner_name(conf)
        # A maximum below the initial wait (the options allow it) caps
        # every wait, the first too.
        self.backoff = retry.Backoff(
            min(opts.retry_initial_interval, opts.retry_max_interval),
            opts.retry_max_interval)
        self.deadline = opts.deadline
        self.poll_interval = opts.poll_interval
        self.store = store or store_mod.DeliveryStore(opts.connection)
        self._new_id = store_mod.IdClock()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        #: key -> the deliveries waiting behind the one being made; a key
        #: is here while a delivery of it is being made or awaits a retry.
        self._lanes: dict[str, collections.deque[store_mod.Delivery]] = {}
        #: Ids this process holds in memory (recorded or resumed).
        self._known: set[int] = set()
        #: (when, tie, key) of the lanes whose head awaits a retry.
        self._retries: list[tuple[float, int, str]] = []
        self._tie = 0
        self._delivered: list[int] = []
        self._notifiers: dict[str, typing.Any] = {}
        self._stopping = False
        self.stats: collections.Counter[str] = collections.Counter()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=opts.retry_workers,
            thread_name_prefix='doctor-delivery-retry')
        self._poll()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='doctor-delivery')
        self._thread.start()

    # The notification path.

    def accept(self, batch: typing.Iterable[
            tuple[typing.Any, recordable.Prepared]]
               ) -> list[store_mod.Delivery]:
        """Record payloads of notifiers, in one transaction.

        :returns: the deliveries the caller must make now with
            :meth:`run` (the first of each free lane); the others wait in
            their lanes
        :raises DeliveryError: if they could not be recorded (nothing is
            then kept)
        """
        now = time.time()
        deadline = now + self.deadline
        made = []
        for notifier, prepared in batch:
            self._notifiers.setdefault(notifier.url, notifier)
            made.append(store_mod.Delivery(
                id=self._new_id(), key=lane_key(notifier.url, prepared.key),
                target=notifier.url, event_id=prepared.event_id,
                label=prepared.label, payload=prepared.payload,
                deadline=deadline, created=now, next_attempt=now,
                owner=self.owner, decoded=prepared.decoded))
        if not made:
            return []
        with self._lock:
            self._known.update(d.id for d in made)
        try:
            self.store.add(self.owner, made)
        except exceptions.DeliveryError:
            with self._lock:
                self._known.difference_update(d.id for d in made)
            raise
        self.stats['recorded'] += len(made)
        return self._enqueue(made)

    def _enqueue(self, deliveries: typing.Iterable[store_mod.Delivery]
                 ) -> list[store_mod.Delivery]:
        """Queue deliveries behind their lanes; the heads of free lanes."""
        heads = []
        with self._lock:
            for d in deliveries:
                lane = self._lanes.get(d.key)
                if lane is None:
                    self._lanes[d.key] = collections.deque()
                    heads.append(d)
                else:
                    lane.append(d)
        return heads

    def run(self, head: store_mod.Delivery,
            budget: int | None = None) -> None:
        """Make ``head``, then the deliveries queued behind it.

        Returns when the lane is empty, or when a delivery failed and
        awaits its retry (which the outbox's threads make).

        :param budget: make at most this many in this thread, and leave
            the rest of the lane to the outbox's threads: an API request
            or a bus message whose caller waits must not make the
            deliveries that others queued behind it
        """
        current: store_mod.Delivery | None = head
        done = 0
        while current is not None:
            if not self._attempt(current):
                return
            done += 1
            if budget is not None and done >= budget:
                self._hand_off(current.key)
                return
            current = self._next(current.key)

    def _hand_off(self, key: str) -> None:
        """Leave what waits in ``key``'s lane to the outbox's threads."""
        with self._lock:
            if not self._lanes.get(key):
                self._lanes.pop(key, None)
                return
        try:
            self._executor.submit(self._retry, key)
        except RuntimeError:
            # Closing: what waits is in the database for the next start.
            pass

    def _next(self, key: str) -> store_mod.Delivery | None:
        with self._lock:
            lane = self._lanes.get(key)
            if lane:
                return lane.popleft()
            self._lanes.pop(key, None)
            return None

    def _attempt(self, d: store_mod.Delivery) -> bool:
        """Send ``d``; whether its lane can go on (sent or given up)."""
        try:
            self._notifier(d.target).send(d)
        except Exception as exc:
            error: Exception | None = exc
        else:
            error = None
        if error is not None:
            # Outside the handler: oslo.log would append the exception
            # to every line the retry logs.
            return self._failed(d, error)
        with self._lock:
            # Still known until its row is gone: the poller would take a
            # delivered row that is still pending in the database for one
            # to resume, and send it twice.
            self._delivered.append(d.id)
        self.stats['delivered'] += 1
        if d.attempts:
            LOG.info('Delivered %s (event %s) to %s after %d failed '
                     'attempt(s)', d.label, d.event_id,
                     urls.redact(d.target), d.attempts)
        return True

    def _failed(self, d: store_mod.Delivery, exc: Exception) -> bool:
        d.attempts += 1
        # A retry sends what was recorded.
        d.decoded = None
        d.last_error = (str(exc) if isinstance(exc, exceptions.
                                               DoctorPluginError)
                        else f'{type(exc).__name__}: {exc}')
        now = time.time()
        target = urls.redact(d.target)
        if now >= d.deadline:
            d.status = store_mod.DEAD
            self._save(d)
            with self._lock:
                self._known.discard(d.id)
            self.stats['dead'] += 1
            LOG.error('Giving up %s (event %s) to %s after %d attempts in '
                      '%.0f s; it is dead-lettered: see "doctor-plugin '
                      'deliveries list --status dead", and "doctor-plugin '
                      'deliveries retry %d" to try again. Last error: %s',
                      d.label, d.event_id, target, d.attempts,
                      now - d.created, d.id, d.last_error)
            return True
        delay = self.backoff.delay(d.attempts)
        d.next_attempt = min(now + delay, d.deadline)
        self._save(d)
        self.stats['retried'] += 1
        log = LOG.warning if d.attempts == 1 else LOG.info
        log('Delivery of %s (event %s) to %s failed (attempt %d), '
            'retrying in %.1f s: %s', d.label, d.event_id, target,
            d.attempts, d.next_attempt - now, d.last_error)
        with self._lock:
            lane = self._lanes.setdefault(d.key, collections.deque())
            lane.appendleft(d)
            self._tie += 1
            heapq.heappush(self._retries, (d.next_attempt, self._tie, d.key))
            self._wake.notify()
        return False

    def _save(self, d: store_mod.Delivery) -> None:
        try:
            self.store.update(d)
        except exceptions.DeliveryError as exc:
            # Kept in memory; a restart would retry it from its last
            # recorded state.
            LOG.error('%s', exc)

    def notifier(self, url: str) -> typing.Any:
        """The plugin that sends the deliveries to ``url``."""
        return self._notifier(url)

    def _notifier(self, url: str) -> typing.Any:
        notifier = self._notifiers.get(url)
        if notifier is None:
            # A resumed delivery to a target nothing loaded (yet).
            notifier = self._notifiers.setdefault(
                url, plugins.load_notifier(self.conf, url))
        return notifier

    # The outbox's thread: retries, deletions of delivered rows, polls.

    def _run(self) -> None:
        next_flush = next_poll = time.monotonic()
        next_poll += self.poll_interval
        while True:
            due: list[str] = []
            with self._lock:
                if self._stopping:
                    return
                now = time.time()
                while self._retries and self._retries[0][0] <= now:
                    due.append(heapq.heappop(self._retries)[2])
                if not due:
                    wait = min(next_flush, next_poll) - time.monotonic()
                    if self._retries:
                        wait = min(wait, self._retries[0][0] - now)
                    if wait > 0:
                        self._wake.wait(wait)
            for key in due:
                self._executor.submit(self._retry, key)
            mono = time.monotonic()
            if mono >= next_flush:
                next_flush = mono + FLUSH_INTERVAL
                self._flush()
            if mono >= next_poll:
                next_poll = mono + self.poll_interval
                try:
                    self._poll()
                except Exception:
                    LOG.exception('Could not look for pending deliveries')

    def _retry(self, key: str) -> None:
        head = self._next(key)
        if head is not None:
            try:
                self.run(head)
            except Exception:
                LOG.exception('Retrying deliveries of %s failed', key)

    def _flush(self) -> None:
        with self._lock:
            done, self._delivered = self._delivered, []
        if not done:
            return
        try:
            self.store.delete(done)
        except exceptions.DeliveryError as exc:
            LOG.error('%s; they may be sent again after a restart', exc)
        with self._lock:
            self._known.difference_update(done)

    def resume(self) -> None:
        """Take up at once the rows just handed to this owner.

        :raises DeliveryError: if the database could not be read
        """
        self._poll()

    def _poll(self) -> None:
        """Take up pending rows of this owner this process does not hold.

        At start, what an earlier run left; later, what ``doctor-plugin
        deliveries retry`` made pending again.
        """
        ids = self.store.pending_ids(self.owner)
        with self._lock:
            unknown = [i for i in ids if i not in self._known]
            self._known.update(unknown)
        if not unknown:
            return
        found = self.store.load(unknown)
        LOG.info('Resuming %d pending deliveries', len(found))
        self.stats['resumed'] += len(found)
        now = time.time()
        with self._lock:
            for d in found:
                lane = self._lanes.get(d.key)
                if lane is not None:
                    lane.append(d)
                    continue
                # The head waits for its retry time, like any retry.
                self._lanes[d.key] = collections.deque([d])
                self._tie += 1
                heapq.heappush(self._retries,
                               (max(d.next_attempt, now), self._tie, d.key))
            self._wake.notify()

    def reject(self, source: str, message_id: str | None,
               event_type: str | None, reason: str, body: str) -> None:
        """Keep a message that was refused as malformed, once.

        :raises DeliveryError: if it could not be kept
        """
        self.store.reject(self.owner, self._new_id(), source, message_id,
                          event_type, reason, body)

    def pending(self) -> int:
        """Deliveries this process holds that are not made yet."""
        with self._lock:
            return len(self._known) - len(self._delivered)

    def wait_empty(self, timeout: float) -> bool:
        """Wait until every delivery held is made or given up."""
        end = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify()
        self._thread.join(5)
        self._executor.shutdown(wait=True)
        self._flush()
        self.store.close()
