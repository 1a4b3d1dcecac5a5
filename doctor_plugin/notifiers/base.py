"""The notifier contract: a batch of Events delivered somewhere.

Notifiers are chosen by the scheme of a URL, as Ceilometer chooses its
publishers and Aodh its alarm notifiers: ``log://``, ``messaging://``,
``http://`` and ``https://``. Options that belong to one target travel in the
URL's query string; the rest come from the ``[notifier]`` group.
"""

from __future__ import annotations

import abc
import dataclasses
import typing
from urllib import parse as urlparse

from oslo_config import cfg

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


class Prepared(typing.NamedTuple):
    """One payload of a durable notifier, before it is recorded."""

    #: Ordering key within the notifier's target (an alarm id, a topic):
    #: payloads of one key are delivered in order.
    key: str
    #: Idempotency key the receiver sees (the event's message_id).
    event_id: str
    #: What logs call it (an alarm's name).
    label: str
    payload: bytes


class NotifierBase(metaclass=abc.ABCMeta):
    """Deliver events to the target named by a URL.

    :param conf: the service's configuration
    :param url: the target; its scheme selected this plugin, its query
        string may carry per-target options
    """

    def __init__(self, conf: cfg.ConfigOpts, url: str) -> None:
        self.conf = conf
        self.url = url
        self.parsed_url = urlparse.urlsplit(url)
        # Blank values are kept: an empty parameter can mean "turn off".
        self.params = dict(urlparse.parse_qsl(self.parsed_url.query,
                                              keep_blank_values=True))

    @abc.abstractmethod
    def notify(self, events: typing.Sequence[event_model.Event],
               alarm: AlarmNotification | None = None) -> None:
        """Deliver a batch of events.

        :param events: the events, in order; never empty
        :param alarm: when an alarm fired, its transition; ``None`` when the
            events come straight from a pipeline sink
        :raises doctor_plugin.exceptions.DeliveryError: if the target could
            not be reached or refused the events
        """

    #: Whether the notifier splits its deliveries into :meth:`prepare` and
    #: :meth:`send`, so that an outbox can record and retry them
    #: (:mod:`doctor_plugin.delivery`).
    durable = False

    def prepare(self, events: typing.Sequence[event_model.Event],
                alarm: AlarmNotification | None = None
                ) -> list[Prepared]:
        """What :meth:`notify` would send, as recordable payloads.

        Durable notifiers only.

        :returns: :class:`Prepared` payloads, in the order they are to be
            sent
        """
        raise NotImplementedError

    def send(self, item: typing.Any) -> None:
        """Send one payload of :meth:`prepare` (or its recorded copy).

        Durable notifiers only. ``item`` has ``payload``, ``event_id``
        and ``label``.

        :raises doctor_plugin.exceptions.DeliveryError: if the target could
            not be reached or refused it
        """
        raise NotImplementedError

    def reload(self) -> None:
        """Read the target's own definition files again (SIGHUP).

        The default has none.
        """

    def close(self) -> None:
        """Release connections and threads; the default has none."""
