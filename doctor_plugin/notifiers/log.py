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

"""Write events and alarms to the service log: ``log://?level=warning``.

The notifier to start with, and the one to keep beside the others while
debugging a pipeline or an alarm: it shows what would have been
delivered. :class:`LogNotifier` is the event notifier (a pipeline sink),
:class:`LogAction` the alarm action.
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

GROUP = 'notifier'

OPTS = [
    cfg.StrOpt('log_level',
               default='info',
               choices=sorted(LEVELS),
               help='Log level of the log:// notifier when its URL has no '
                    '"level" query parameter (log://?level=warning).'),
]

_PARAMS = ('level',)


class _LogTarget(base.Plugin):
    """A ``log://`` URL: its level."""

    def __init__(self, conf: cfg.ConfigOpts, url: str,
                 context: typing.Any = None) -> None:
        super().__init__(conf, url, context=context)
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


class LogNotifier(_LogTarget, base.EventNotifier):
    """Log one line per event (a pipeline sink)."""

    def notify(self, events: typing.Sequence[event_model.Event]) -> None:
        if not LOG.isEnabledFor(self.level):
            return
        for event in events:
            _log_event(self.level, event.event_type, event.message_id,
                       event.generated.isoformat(),
                       (t.serialize() for t in event.traits))


class LogAction(_LogTarget, base.AlarmAction):
    """Log one line per alarm transition, and one for its event."""

    def notify(self, notification: base.AlarmNotification) -> None:
        if not LOG.isEnabledFor(self.level):
            return
        LOG.log(self.level,
                'Alarm %(name)s <%(id)s> of %(severity)s severity went '
                'from %(previous)s to %(current)s because %(reason)s',
                {'name': notification.alarm_name,
                 'id': notification.alarm_id,
                 'severity': notification.severity,
                 'previous': notification.previous,
                 'current': notification.current,
                 'reason': notification.reason})
        event = (notification.reason_data or {}).get('event')
        if isinstance(event, dict):
            # The serialised event as it is: no need to rebuild it.
            _log_event(self.level, event.get('event_type'),
                       event.get('message_id'), event.get('generated'),
                       event.get('traits') or ())


def _log_event(level: int, event_type: str | None, message_id: str | None,
               generated: str | None,
               traits: typing.Iterable[typing.Sequence]) -> None:
    LOG.log(level,
            'Event %(event_type)s <%(message_id)s> generated '
            '%(generated)s traits %(traits)s',
            {'event_type': event_type, 'message_id': message_id,
             'generated': generated, 'traits': _format_traits(traits)})


def _format_traits(traits: typing.Iterable[typing.Sequence]) -> str:
    return ', '.join(f'{t[0]}={t[2]}' for t in traits) or '(none)'
