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

"""An Aodh alarm notifier, ``doctor://``: an Aodh alarm reports a host.

Give an alarm (threshold, composite or event) an action such as::

    doctor://inspector.example:12345?hostname=compute-1

and when aodh-notifier runs it, the alarm's transition is reported to the
inspector's ``PUT /events`` as a Doctor host event: ``alarm`` reports the
host down, ``ok`` reports it up again (``insufficient data`` reports
nothing). Without ``hostname`` the host is read from the event of an event
alarm (its ``host``, ``hostname`` or ``node`` trait).

Aodh loads the class by the action URL's scheme from its ``aodh.notifier``
entry points, constructs it with its configuration and calls ``notify``
with the alarm's fields; nothing of Aodh is imported here.

The inspector's shared secret is in Aodh's configuration (``[doctor]
inspector_secret``), never in the URL: alarm actions are written by
tenants. For the same reason it is only sent to the inspectors ``[doctor]
inspectors`` lists; a tenant's action naming any other host gets no
secret.
"""

from __future__ import annotations

import time
import typing
from urllib import parse as urlparse

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin import exceptions
from doctor_plugin.integrations import _target
from doctor_plugin.monitors import base as monitor_base

LOG = logging.getLogger(__name__)

#: Trait names an event alarm's event may name its host by.
HOST_TRAITS = ('host', 'hostname', 'node')

_STATUS = {'alarm': 'down', 'ok': 'up'}

#: Our options in Aodh's configuration.
GROUP = 'doctor'
OPTS = [
    cfg.StrOpt('inspector_secret',
               secret=True,
               help="The inspector's [inspector] shared_secret, sent with "
                    "the reports of doctor:// alarm actions to the "
                    "inspectors listed in [doctor] inspectors."),
    cfg.ListOpt('inspectors',
                default=[],
                help='HOST:PORT of each inspector that [doctor] '
                     'inspector_secret may be sent to. Alarm actions are '
                     "set by tenants: a doctor:// action naming another "
                     "host is reported without the secret."),
]


def host_of(reason_data: typing.Any) -> str | None:
    """The host named by the event in an event alarm's ``reason_data``."""
    event = (reason_data or {}).get('event') if isinstance(
        reason_data, dict) else None
    if not isinstance(event, dict):
        return None
    traits = {t[0]: t[2] for t in event.get('traits') or []
              if isinstance(t, (list, tuple)) and len(t) == 3}
    for name in HOST_TRAITS:
        if traits.get(name):
            return str(traits[name])
    return None


class DoctorAlarmNotifier:
    """Aodh's notifier interface: ``(conf)``, then ``notify(action, ...)``.

    One reporter (one kept-alive connection) per inspector URL.
    """

    def __init__(self, conf: typing.Any) -> None:
        self.conf = conf
        self._secret: str | None = None
        self._inspectors: set[str] = set()
        if conf is not None:
            # The one place outside opts.register_all that registers: we
            # run inside aodh-notifier, which never calls our
            # prepare_service; as Aodh's own notifiers do, ours registers
            # its options on Aodh's configuration (list_aodh_opts documents
            # them for Aodh's sample).
            conf.register_opts(OPTS, group=GROUP)
            self._secret = conf[GROUP].inspector_secret
            self._inspectors = {i.strip().lower()
                                for i in conf[GROUP].inspectors}
        self._reporters: dict[str, typing.Any] = {}

    def _reporter(self, action: urlparse.SplitResult):
        key = urlparse.urlunsplit(action._replace(query=''))
        reporter = self._reporters.get(key)
        if reporter is None:
            secret = None
            if action.netloc.lower() in self._inspectors:
                secret = self._secret
            elif self._secret:
                LOG.warning('doctor:// action to %s: not in [doctor] '
                            'inspectors, so reported without the '
                            'inspector secret', action.netloc)
            reporter = self._reporters[key] = _target.inspector_reporter(
                action, '/events', extra_params=('hostname',),
                secret=secret)
        return reporter

    def notify(self, action: urlparse.SplitResult, alarm_id: str,
               alarm_name: str, severity: str, previous: str, current: str,
               reason: str, reason_data: typing.Any) -> None:
        action = urlparse.urlsplit(urlparse.urlunsplit(action))
        status = _STATUS.get(current)
        if status is None:
            LOG.info('Alarm %s (%s) is now %r: nothing to report to the '
                     'inspector', alarm_name, alarm_id, current)
            return
        params = dict(urlparse.parse_qsl(action.query))
        hostname = params.get('hostname') or host_of(reason_data)
        if not hostname:
            LOG.error('Alarm %s (%s) went to %s, but its doctor:// action '
                      'names no host: add ?hostname=<compute host> to the '
                      'action URL, or alarm on events with a host trait',
                      alarm_name, alarm_id, current)
            return
        report = monitor_base.FaultReport(hostname, status,
                                          f'aodh:{alarm_name}',
                                          detected_at=time.time())
        try:
            self._reporter(action)(report)
        except exceptions.DoctorPluginError as exc:
            LOG.error('Alarm %s (%s): could not report host %s %s: %s',
                      alarm_name, alarm_id, hostname, status, exc)
            raise
