"""Write events to the service log: ``log://`` (``?level=warning``).

The notifier to start with, and the one to keep beside the others while
debugging a pipeline: it shows what would have been delivered.
"""

from __future__ import annotations

import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import base

LOG = logging.getLogger(__name__)

LEVELS: dict[str, int] = {
    'debug': logging.DEBUG,
    'info': logging.INFO,
    'warning': logging.WARNING,
    'error': logging.ERROR,
}

OPTS = [
    cfg.StrOpt('log_level',
               default='info',
               choices=sorted(LEVELS),
               help='Log level of the log:// notifier when its URL has no '
                    '"level" query parameter (log://?level=warning).'),
]

_PARAMS = ('level',)


class LogNotifier(base.NotifierBase):
    """Log one line per event, and one per alarm transition."""

    def __init__(self, conf: cfg.ConfigOpts, url: str) -> None:
        super().__init__(conf, url)
        conf.register_opts(OPTS, group='notifier')
        unknown = sorted(set(self.params) - set(_PARAMS))
        if unknown:
            raise exceptions.ConfigurationError(
                'notifier URL', url,
                f"unknown query parameter(s) {', '.join(unknown)}; "
                f"log:// accepts only 'level'")
        name = self.params.get('level', conf.notifier.log_level).lower()
        if name not in LEVELS:
            raise exceptions.ConfigurationError(
                'notifier URL', url,
                f"level {name!r} is not one of {', '.join(LEVELS)}; "
                f"write e.g. log://?level=warning")
        self.level = LEVELS[name]

    def notify(self, events: typing.Sequence[event_model.Event],
               alarm: base.AlarmNotification | None = None) -> None:
        if not LOG.isEnabledFor(self.level):
            return
        if alarm is not None:
            LOG.log(self.level,
                    'Alarm %(name)s <%(id)s> of %(severity)s severity went '
                    'from %(previous)s to %(current)s because %(reason)s',
                    {'name': alarm.alarm_name, 'id': alarm.alarm_id,
                     'severity': alarm.severity, 'previous': alarm.previous,
                     'current': alarm.current, 'reason': alarm.reason})
        for event in events:
            LOG.log(self.level,
                    'Event %(event_type)s <%(message_id)s> generated '
                    '%(generated)s traits %(traits)s',
                    {'event_type': event.event_type,
                     'message_id': event.message_id,
                     'generated': event.generated.isoformat(),
                     'traits': _format_traits(event)})


def _format_traits(event: event_model.Event) -> str:
    return ', '.join(f'{name}={value}' for name, _dtype, value
                     in (t.serialize() for t in event.traits)) or '(none)'
