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

"""The notifier contracts: events to a pipeline sink, alarms to an action.

Two kinds of plugin deliver what doctor_plugin decides, each chosen by
the scheme of a URL as Ceilometer chooses its publishers and Aodh its
alarm notifiers:

* an **event notifier** (:class:`EventNotifier`, entry points in
  ``doctor_plugin.notifiers``: ``alarms``, ``messaging``, ``http``,
  ``https``, ``log``) is a pipeline sink's target. It has one method,
  ``notify(events)``, called with a batch of :class:`~doctor_plugin.event.
  Event`.
* an **alarm action** (:class:`AlarmAction`, entry points in
  ``doctor_plugin.alarm_actions``: ``http``, ``https``, ``log``,
  ``messaging``) is what an alarm's ``alarm_actions``/``ok_actions`` URL
  names. It has one method, ``notify(notification)``, called with one
  :class:`AlarmNotification`: the fields Aodh's notifiers get
  (``aodh.notifier.AlarmNotifier.notify``), as one record.

Both are constructed with ``(conf, url)``: the service's configuration
and the target, and optionally ``context=``, the
:class:`~doctor_plugin.common.context.ServiceContext` of the service that
loads them (its timeline, activity and thread pools; a plugin built
without one gets a private context). Options that belong to one target
travel in the URL's query string, the rest come from the ``[notifier]``
group. Both may
override two lifecycle hooks, which are not abstract because most
plugins have nothing to do in them: :meth:`Plugin.reload` (SIGHUP: read
the target's own files again; only ``alarms://`` has any) and
:meth:`Plugin.close` (release connections and threads at shutdown).

A plugin whose deliveries can be recorded and retried by the outbox
(:mod:`doctor_plugin.delivery`) also implements
:class:`~doctor_plugin.delivery.recordable.Recordable`: ``encode(item)``
turns what ``notify`` takes into
:class:`~doctor_plugin.delivery.recordable.Prepared` payloads and
``send(prepared)`` sends one of them, then or after a restart. Whether
a delivery is recorded is decided in one place,
:class:`doctor_plugin.delivery.deliverer.Deliverer`, never by the plugin
or its caller.
"""

from __future__ import annotations

import abc
import dataclasses
import typing
from urllib import parse as urlparse

from oslo_config import cfg

from doctor_plugin.common import context as context_mod
from doctor_plugin import event as event_model


@dataclasses.dataclass(frozen=True, slots=True)
class AlarmNotification:
    """An alarm state transition to report, in Aodh's terms.

    These are the fields of Aodh's webhook body. ``reason_data`` carries the
    event that triggered the alarm (``{"type": "event", "event": {...}}``).
    """

    alarm_id: str
    alarm_name: str
    severity: str
    previous: str
    current: str
    reason: str
    reason_data: dict

    def as_body(self) -> dict:
        """The JSON body Aodh's REST notifier posts.

        Shallow: ``dataclasses.asdict`` would deep-copy the event in
        ``reason_data`` on the alarm hot path for nothing.
        """
        return {field.name: getattr(self, field.name)
                for field in dataclasses.fields(self)}

    def event(self) -> event_model.Event | None:
        """The event of an event alarm's ``reason_data``, rebuilt."""
        data = (self.reason_data or {}).get('event')
        if data is None:
            return None
        return event_model.Event.deserialize(data)


class Plugin:
    """What both contracts share: a target URL and two lifecycle hooks.

    :param conf: the service's configuration
    :param url: the target; its scheme selected this plugin, its query
        string may carry per-target options
    :param context: the service's context; a private one by default
    """

    def __init__(self, conf: cfg.ConfigOpts, url: str,
                 context: context_mod.ServiceContext | None = None) -> None:
        self.conf = conf
        self._context = context
        self.url = url
        self.parsed_url = urlparse.urlsplit(url)
        # Blank values are kept: an empty parameter can mean "turn off".
        self.params = dict(urlparse.parse_qsl(self.parsed_url.query,
                                              keep_blank_values=True))

    @property
    def context(self) -> context_mod.ServiceContext:
        """The service's context, or a private one made on first use."""
        if self._context is None:
            self._context = context_mod.ServiceContext(self.url)
        return self._context

    def reload(self) -> None:
        """Read the target's own definition files again (SIGHUP).

        The default has none.
        """

    def close(self) -> None:
        """Release connections and threads; the default has none."""


class EventNotifier(Plugin, metaclass=abc.ABCMeta):
    """Deliver a pipeline sink's events to the target a URL names."""

    @abc.abstractmethod
    def notify(self, events: typing.Sequence[event_model.Event]) -> None:
        """Deliver a batch of events.

        :param events: the events, in order; never empty
        :raises doctor_plugin.exceptions.DeliveryError: if the target could
            not be reached or refused the events
        """


class AlarmAction(Plugin, metaclass=abc.ABCMeta):
    """Run one action of an alarm: report its transition to a URL."""

    @abc.abstractmethod
    def notify(self, notification: AlarmNotification) -> None:
        """Report one alarm transition.

        :param notification: the alarm, its previous and current state,
            the reason and, in ``reason_data``, the event that caused it
        :raises doctor_plugin.exceptions.DeliveryError: if the target could
            not be reached or refused it
        """
