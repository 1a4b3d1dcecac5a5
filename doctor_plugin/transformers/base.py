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

"""The transformer contract: a raw payload in, zero or more Events out."""

from __future__ import annotations

import abc
import typing

from oslo_config import cfg

from doctor_plugin import event as event_model


class TransformerBase(metaclass=abc.ABCMeta):
    """Turn one raw notification or API payload into Events.

    A transformer is loaded by name from the ``doctor_plugin.transformers``
    namespace and constructed with the service's configuration. Transformers
    that understand notifications arriving on the message bus list the
    notification ``event_types`` they accept (``fnmatch`` patterns); the bus
    listener only hands them those. Transformers fed by the inspector's HTTP
    API leave it empty.
    """

    #: Bus notification event types (fnmatch patterns) this plugin accepts.
    event_types: typing.ClassVar[tuple[str, ...]] = ()

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def transform(self, payload: typing.Any,
                  metadata: typing.Mapping[str, typing.Any] | None = None
                  ) -> list[event_model.Event]:
        """Transform ``payload`` into events.

        :param payload: the decoded body: a notification's payload, or the
            JSON document of an API request
        :param metadata: for bus notifications, ``event_type``,
            ``publisher_id``, ``message_id``, ``timestamp`` and
            ``priority``; ``None`` for API requests
        :returns: the events; an empty list if the payload carries nothing
            of interest (for example a service update that is not a fault)
        :raises doctor_plugin.exceptions.InvalidPayload: naming the field
            that is malformed
        """
