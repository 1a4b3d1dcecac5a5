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

"""Host faults from existing monitoring: Prometheus Alertmanager, collectd.

``POST /events/alertmanager`` takes Alertmanager's webhook (payload
version 4)::

    {"version": "4", "status": "firing", "receiver": "doctor",
     "alerts": [{"status": "firing",
                 "labels": {"alertname": "InstanceDown",
                            "instance": "compute-1:9100"},
                 "annotations": {"summary": "compute-1 is down"},
                 "startsAt": "2026-11-25T10:00:00.123456789Z",
                 "endsAt": "0001-01-01T00:00:00Z",
                 "fingerprint": "3f1c9a0b2d4e5f60"}]}

``POST /events/collectd`` takes the notifications collectd's write_http
plugin sends in JSON format, which have the shape of Alertmanager's alerts
(``labels`` with ``alertname``, ``instance`` and ``severity``,
``annotations``, ``startsAt``).

Only alerts whose ``alertname`` matches the configured patterns report a
host (``[inspector] alertmanager_alertnames``, ``collectd_alertnames``);
the others are not host faults and are left out. A firing alert (collectd:
severity ``FAILURE``) reports the host down, a resolved one (``OKAY``)
reports it up. The host is the first of the configured labels the alert
carries, without a ``:port``. Repeated notifications of the same alert
keep its ``monitor_event_id``, so the inspector publishes it once.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.transformers import base
from doctor_plugin.transformers import host_events
from doctor_plugin.transformers import payload as checks

LOG = logging.getLogger(__name__)

GROUP = 'inspector'

OPTS = [
    cfg.ListOpt('alertmanager_alertnames',
                default=['InstanceDown', 'HostDown', 'NodeDown'],
                help='Alertmanager alerts (alertname, fnmatch patterns) '
                     'that mean "this host is down"; others are ignored.'),
    cfg.ListOpt('alertmanager_host_labels',
                default=['nodename', 'host', 'hostname', 'instance'],
                help='Labels of an Alertmanager alert that name the compute '
                     'host, in order of preference; a ":port" suffix (as '
                     'in instance="compute-1:9100") is dropped.'),
    cfg.ListOpt('collectd_alertnames',
                default=['collectd_connectivity_*', 'collectd_ovs_events_*'],
                help='collectd notifications (their alertname, '
                     '"collectd_<plugin>_<type>", fnmatch patterns) that '
                     'mean the host lost its link; others are ignored.'),
]

#: Alertmanager's webhook payload version this transformer reads.
PAYLOAD_VERSION = '4'

#: collectd's severities and the host status each reports (WARNING: none).
COLLECTD_STATUS = {'FAILURE': 'down', 'OKAY': 'up'}

#: Most alerts one request may hold.
MAX_ALERTS = checks.MAX_EVENTS


def strip_port(value: str) -> str:
    """``compute-1:9100`` → ``compute-1``; ``[fe80::1]:9100`` → ``fe80::1``."""
    if value.startswith('['):
        return value[1:].partition(']')[0]
    host, sep, port = value.rpartition(':')
    if sep and port.isdigit() and ':' not in host:
        return host
    return value


def _text_map(value: typing.Any, path: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in value.items()):
        raise exceptions.InvalidPayload(
            path, f'must be an object of strings, got '
                  f'{checks.json_type(value)}')
    return value


def _time(alert: dict, key: str, path: str) -> datetime.datetime:
    text = checks.check_text(alert.get(key), f'{path}.{key}')
    try:
        return event_model.parse_datetime(text)
    except (ValueError, OverflowError):
        raise exceptions.InvalidPayload(
            f'{path}.{key}', f'must be an RFC 3339 time such as '
                             f"'2026-11-25T10:00:00Z', got {text!r}"
        ) from None


class _AlertTransformer(base.TransformerBase):
    """What Alertmanager's and collectd's alerts share."""

    #: The monitor name the events carry.
    monitor: typing.ClassVar[str]

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)

    def _alerts(self, alerts: typing.Any, path: str) -> list:
        if not isinstance(alerts, list):
            raise exceptions.InvalidPayload(
                path, f'must be an array of alerts, got '
                      f'{checks.json_type(alerts)}')
        if len(alerts) > MAX_ALERTS:
            raise exceptions.InvalidPayload(
                path, f'holds {len(alerts)} alerts; at most {MAX_ALERTS} '
                      f'are accepted in one request')
        return alerts

    def _event(self, alert: typing.Any, path: str, patterns: list[str],
               host_labels: list[str], status: str | None,
               generated: datetime.datetime) -> event_model.Event | None:
        """The host event of one alert; None for an alert of no host."""
        if not isinstance(alert, dict):
            raise exceptions.InvalidPayload(
                path, f'each alert must be an object, got '
                      f'{checks.json_type(alert)}')
        labels = _text_map(alert.get('labels'), f'{path}.labels')
        if 'annotations' in alert:
            _text_map(alert['annotations'], f'{path}.annotations')
        name = labels.get('alertname')
        if not name:
            raise exceptions.InvalidPayload(f'{path}.labels.alertname',
                                            'is required')
        started = _time(alert, 'startsAt', path)
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            LOG.debug('Ignoring alert %s: not a host fault', name)
            return None
        if status is None:
            return None
        host = next((labels[k] for k in host_labels if labels.get(k)), None)
        if host is None:
            raise exceptions.InvalidPayload(
                f'{path}.labels', f'alert {name!r} names no host: none of '
                                  f'the labels {", ".join(host_labels)} is '
                                  f'set')
        host = checks.check_text(strip_port(host), f'{path}.labels')
        detected = started
        if status == 'up' and alert.get('endsAt'):
            detected = _time(alert, 'endsAt', path)
        # One id per occurrence of the alert: its fingerprint (or labels)
        # and when it started, which its repeats share.
        key = alert.get('fingerprint') or hashlib.sha1(json.dumps(
            labels, sort_keys=True).encode()).hexdigest()[:16]
        extra = {'cause': name}
        for label in ('severity', 'interface'):
            value = labels.get(label)
            if value and len(value) <= event_model.MAX_STRING_LENGTH:
                extra[label] = value
        return host_events.host_event(
            host, status, self.monitor, f'{key}@{started.isoformat()}',
            detected, generated, extra, alert)


class AlertmanagerTransformer(_AlertTransformer):
    """Alertmanager's webhook (v4) → host down/up events."""

    monitor = 'alertmanager'

    def transform(self, payload: typing.Any,
                  metadata: typing.Mapping[str, typing.Any] | None = None
                  ) -> list[event_model.Event]:
        if not isinstance(payload, dict):
            raise exceptions.InvalidPayload(
                '', f"the body must be Alertmanager's webhook object "
                    f"(version 4), got {checks.json_type(payload)}")
        checks.check_document(payload)
        version = payload.get('version', PAYLOAD_VERSION)
        if version != PAYLOAD_VERSION:
            raise exceptions.InvalidPayload(
                'version', f'payload version {checks.shown(version)} is not '
                           f'supported;'
                           f' Alertmanager sends version '
                           f'{PAYLOAD_VERSION!r}')
        opts = self.conf.inspector
        generated = event_model.utcnow()
        events = []
        for index, alert in enumerate(self._alerts(payload.get('alerts'),
                                                   'alerts')):
            path = f'alerts.{index}'
            state = (alert.get('status') if isinstance(alert, dict)
                     else None) or payload.get('status')
            if state not in ('firing', 'resolved'):
                raise exceptions.InvalidPayload(
                    f'{path}.status', f"must be 'firing' or 'resolved', "
                                      f"got {checks.shown(state)}")
            ev = self._event(alert, path, opts.alertmanager_alertnames,
                             opts.alertmanager_host_labels,
                             'down' if state == 'firing' else 'up',
                             generated)
            if ev is not None:
                events.append(ev)
        return events


class CollectdTransformer(_AlertTransformer):
    """collectd's write_http JSON notifications → host down/up events."""

    monitor = 'collectd'

    def transform(self, payload: typing.Any,
                  metadata: typing.Mapping[str, typing.Any] | None = None
                  ) -> list[event_model.Event]:
        if isinstance(payload, dict):
            payload = [payload]
        checks.check_document(payload)
        generated = event_model.utcnow()
        events = []
        for index, alert in enumerate(self._alerts(payload, '')):
            path = str(index)
            severity: str | None = None
            if isinstance(alert, dict) and isinstance(alert.get('labels'),
                                                      dict):
                severity = alert['labels'].get('severity')
                if severity not in ('FAILURE', 'WARNING', 'OKAY'):
                    raise exceptions.InvalidPayload(
                        f'{path}.labels.severity',
                        f"must be collectd's FAILURE, WARNING or OKAY, "
                        f"got {checks.shown(severity)}")
            ev = self._event(alert, path,
                             self.conf.inspector.collectd_alertnames,
                             ['instance'],
                             COLLECTD_STATUS.get(severity or ''),
                             generated)
            if ev is not None:
                events.append(ev)
        return events
