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

"""A Ceilometer event publisher, ``doctor://``: events into our inspector.

Add it to a sink of Ceilometer's ``event_pipeline.yaml``::

    sinks:
      - name: doctor
        publishers:
          - doctor://inspector.example:12345

and ceilometer-agent-notification sends each batch of events it makes to
the inspector's ``PUT /events/ceilometer``, in Ceilometer's own
serialised form. The inspector runs them through its pipeline: host
events are correlated and fanned out per tenant, ``alarms://`` evaluates
the tenants' alarms, ``messaging://`` passes them on.

Ceilometer loads the class by the URL's scheme from its
``ceilometer.event.publisher`` entry points and calls
``publish_events(events)`` with its ``ceilometer.event.models.Event``
objects; nothing of Ceilometer is imported here.
"""

from __future__ import annotations

import datetime
import typing
from urllib import parse as urlparse

from oslo_log import log as logging

from doctor_plugin import exceptions
from doctor_plugin.integrations import _target

LOG = logging.getLogger(__name__)

#: The inspector's path for Ceilometer-format events.
EVENTS_PATH = '/events/ceilometer'


def serialize(event: typing.Any) -> dict:
    """A Ceilometer event as Ceilometer puts it on the bus.

    Works on ``ceilometer.event.models.Event`` and on our own Event, which
    share these attributes.
    """
    def value(v):
        return v.isoformat() if isinstance(v, datetime.datetime) else v

    return {
        'message_id': event.message_id,
        'event_type': event.event_type,
        'generated': value(event.generated),
        'traits': [[t.name, int(t.dtype), value(t.value)]
                   for t in event.traits],
        'raw': event.raw or {},
    }


class DoctorEventPublisher:
    """Ceilometer's publisher interface: ``(conf, parsed_url)``.

    :param conf: Ceilometer's configuration (not used: the URL says all)
    :param parsed_url: ``doctor://HOST:PORT[/path][?scheme=https&timeout=
        2&retries=3&secret_file=/etc/ceilometer/doctor-secret]``; the
        file holds the inspector's shared secret (the pipeline is the
        operator's, so the URL may name a local file)
    """

    def __init__(self, conf: typing.Any,
                 parsed_url: urlparse.SplitResult) -> None:
        self.conf = conf
        self.reporter = _target.inspector_reporter(
            urlparse.urlsplit(urlparse.urlunsplit(parsed_url)), EVENTS_PATH,
            extra_params=('secret_file',))

    def publish_events(self, events: typing.Sequence[typing.Any]) -> None:
        if not events:
            return
        try:
            self.reporter.send([serialize(e) for e in events],
                               f'{len(events)} Ceilometer event(s)')
        except exceptions.DeliveryError as exc:
            # Ceilometer logs and drops what a publisher raises; say why.
            LOG.error('doctor:// could not deliver %d event(s): %s',
                      len(events), exc)
            raise

    def publish_samples(self, samples: typing.Sequence[typing.Any]) -> None:
        raise NotImplementedError(
            'doctor:// publishes events only; use it in '
            'event_pipeline.yaml, not in pipeline.yaml')
