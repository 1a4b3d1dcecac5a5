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

"""Deliver to plugins, recorded by the outbox when they allow it.

The one place that chooses between a durable and a direct delivery. The
pipeline (a sink's events to an event notifier) and the alarm evaluator
(a transition to an alarm action) hand their work to a
:class:`Deliverer` the same way::

    for work in deliverer.start([(plugin, item), ...]):
        work()            # or executor.submit(work)

:meth:`Deliverer.start` records, in one transaction, the payloads of the
plugins that are :class:`~doctor_plugin.delivery.recordable.Recordable`
(when ``[delivery] durable`` gave an outbox), and returns the work to do now:

* for a recorded plugin, the head of each lane the batch opened
  (:meth:`~doctor_plugin.delivery.outbox.Outbox.run`): it does not raise,
  a failed delivery is retried by the outbox's threads;
* for any other plugin, or when the database could not record the
  batch, one ``plugin.notify(item)``, made once, which raises on failure
  as a delivery without an outbox does.

The caller runs the work in its own thread (the pipeline: the first
attempt costs what it did without an outbox, plus a commit) or in an
executor (the evaluator: every tenant's webhook at once).
"""

from __future__ import annotations

import collections
import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import urls
from doctor_plugin import delivery
from doctor_plugin.delivery import outbox as outbox_mod
from doctor_plugin.delivery import recordable as recordable_mod
from doctor_plugin import exceptions

LOG = logging.getLogger(__name__)


class Work:
    """What a caller runs: one direct delivery, or a recorded lane's.

    :ivar plugin: the plugin delivered to
    :ivar item: what the plugin is asked to deliver, for a direct
        delivery (its caller logs its failure); None for a recorded one
        (the outbox logs and retries it)
    """

    __slots__ = ('plugin', 'item', '_fn')

    def __init__(self, plugin: typing.Any, item: typing.Any,
                 fn: typing.Callable[[], None]) -> None:
        self.plugin = plugin
        self.item = item
        self._fn = fn

    def __call__(self) -> None:
        self._fn()


class Deliverer:
    """Make the deliveries of one pipeline or evaluator.

    :param outbox: the process's outbox (:func:`doctor_plugin.delivery.
        get_outbox`), or None: every delivery is then direct
    """

    def __init__(self, outbox: typing.Any | None) -> None:
        self.outbox = outbox

    @classmethod
    def open(cls, conf: cfg.ConfigOpts,
             plugins: typing.Iterable[typing.Any] | None = None
             ) -> Deliverer:
        """A deliverer on the process's outbox for ``conf``.

        :param plugins: when given, the outbox is opened only if one of
            them is recordable (a pipeline of ``log://`` needs no
            database); None: always (alarm actions change on reload)
        :raises ConfigurationError: if the database cannot be opened
        """
        if plugins is not None and not any(
                recordable(p) for p in plugins):
            return cls(None)
        return cls(delivery.get_outbox(conf))

    def records(self, plugin: typing.Any) -> bool:
        """Whether deliveries to ``plugin`` are recorded."""
        return self.outbox is not None and recordable(plugin)

    def start(self, batch: typing.Iterable[tuple[typing.Any, typing.Any]],
              budget: bool = True) -> list[Work]:
        """Record what can be recorded; the work to do now.

        :param batch: (plugin, item) pairs: ``plugin.notify(item)`` is
            what each asks for; one transaction records them all
        :param budget: each lane's work makes only the deliveries this
            batch brought, and leaves what others queued behind them to
            the outbox's threads (a caller that waits, as a bus message
            to acknowledge or an API request, must not make others'
            deliveries); False: it drains the lane
        :raises DeliveryError: if encoding a payload failed
        """
        direct: list[Work] = []
        recorded: list[tuple[typing.Any, typing.Any]] = []
        for plugin, item in batch:
            if self.records(plugin):
                recorded.append((plugin, item))
            else:
                direct.append(_notify(plugin, item))
        if not recorded:
            return direct
        # records() said yes to some: there is an outbox.
        assert self.outbox is not None
        prepared = [(plugin, p) for plugin, item in recorded
                    for p in plugin.encode(item)]
        try:
            heads = self.outbox.accept(prepared)
        except exceptions.DeliveryError as exc:
            LOG.error('%s; making %d deliveries once, without retries, '
                      'to %s', exc, len(prepared),
                      ', '.join(sorted({urls.redact(p.url)
                                        for p, _ in recorded})))
            return direct + [_notify(plugin, item)
                             for plugin, item in recorded]
        if budget:
            brought = collections.Counter(
                outbox_mod.lane_key(plugin.url, p.key)
                for plugin, p in prepared)
            work = [_run(self.outbox, head, brought[head.key])
                    for head in heads]
        else:
            work = [_run(self.outbox, head, None) for head in heads]
        return direct + work

    def close(self) -> None:
        """Give the outbox back (the last user closes it)."""
        delivery.release(self.outbox)
        self.outbox = None


#: Whether a plugin class is recordable, once per class: a protocol check
#: costs microseconds, and the evaluator asks once per alarm action.
_RECORDABLE_TYPES: dict[type, bool] = {}


def recordable(plugin: typing.Any) -> bool:
    """Whether the outbox can record deliveries to ``plugin``."""
    cls = type(plugin)
    known = _RECORDABLE_TYPES.get(cls)
    if known is None:
        known = _RECORDABLE_TYPES[cls] = issubclass(
            cls, recordable_mod.Recordable)
    return known


def _notify(plugin: typing.Any, item: typing.Any) -> Work:
    return Work(plugin, item, lambda: plugin.notify(item))


def _run(outbox: typing.Any, head: typing.Any, budget: int | None) -> Work:
    return Work(outbox.notifier(head.target), None,
                lambda: outbox.run(head, budget=budget))
