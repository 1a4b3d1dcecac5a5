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

"""Evaluate events against event alarms in this process: ``alarms://``.

A pipeline sink with ``alarms://`` makes the inspector evaluate its own
events (the per-tenant fan-out of a host fault) and run the alarms'
actions itself, so a tenant's webhook is called without the events first
crossing the bus to a ``doctor-plugin-listener``. The definitions are
``[alarms] definitions_file``, or the file the URL names
(``alarms:///etc/doctor_plugin/tenant-alarms.yaml``); the file is read
again when it changes and on SIGHUP.

Keep ``messaging://`` in the pipeline beside it for Aodh and other
consumers of the bus, and do not also run ``doctor-plugin-listener`` on
the same definitions: each alarm would fire twice.
"""

from __future__ import annotations

import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.alarms import evaluator as evaluator_mod
from doctor_plugin.common import context as context_mod
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import base

LOG = logging.getLogger(__name__)


class AlarmEvaluatorNotifier(base.EventNotifier):
    """Hand each batch to an in-process :class:`EventAlarmEvaluator`.

    The evaluator shares the service's context (given by the pipeline
    that loads this plugin): its timeline, its notification activity and
    its thread pools.

    Delivery returns once the alarms are evaluated and their actions
    started; an action that fails is logged by the evaluator and does not
    fail the pipeline's other notifiers.
    """

    def __init__(self, conf: cfg.ConfigOpts, url: str,
                 context: context_mod.ServiceContext | None = None) -> None:
        super().__init__(conf, url, context=context)
        if self.params or self.parsed_url.netloc:
            raise exceptions.ConfigurationError(
                'notifier URL', url,
                'alarms:// takes no host and no query parameters; write '
                'alarms:// for [alarms] definitions_file or '
                'alarms:///path/to/alarms.yaml for another file')
        self.evaluator = evaluator_mod.EventAlarmEvaluator.from_conf(
            conf, self.parsed_url.path or None, context=self.context)

    def notify(self, events: typing.Sequence[event_model.Event]) -> None:
        self.evaluator.evaluate(events)

    def reload(self) -> None:
        # The one notifier with files of its own: the definitions.
        self.evaluator.reload()

    def close(self) -> None:
        self.evaluator.close()
