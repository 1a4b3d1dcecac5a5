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

"""Every option of doctor_plugin, for oslo-config-generator and services.

The options are declared in the modules that use them; this module only
collects them. ``list_opts`` is the ``oslo.config.opts`` entry point.
"""

from __future__ import annotations

import itertools

from oslo_config import cfg
from oslo_messaging import opts as messaging_opts

import doctor_plugin.alarms.evaluator
import doctor_plugin.coordination
import doctor_plugin.delivery
import doctor_plugin.event
import doctor_plugin.fencers
import doctor_plugin.inspector.api
import doctor_plugin.inspector.auth
import doctor_plugin.inspector.correlation
import doctor_plugin.inspector.detection
import doctor_plugin.inspector.engine
import doctor_plugin.inspector.listener
import doctor_plugin.inspector.service
import doctor_plugin.integrations.aodh
import doctor_plugin.listener.service
import doctor_plugin.monitors
import doctor_plugin.monitors.heartbeat
import doctor_plugin.monitors.reporter
import doctor_plugin.monitors.tcp
import doctor_plugin.notifiers.log
import doctor_plugin.notifiers.messaging
import doctor_plugin.notifiers.webhook
import doctor_plugin.nova.client
import doctor_plugin.pipeline
import doctor_plugin.topology.nova
import doctor_plugin.transformers.alertmanager
import doctor_plugin.transformers.nova_service


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Our options by group, as oslo-config-generator expects them."""
    return [
        ('DEFAULT', list(itertools.chain(
            doctor_plugin.delivery.STATE_OPTS,
            doctor_plugin.pipeline.OPTS))),
        (doctor_plugin.inspector.service.GROUP, list(itertools.chain(
            doctor_plugin.inspector.api.OPTS,
            doctor_plugin.inspector.auth.OPTS,
            doctor_plugin.event.LIMIT_OPTS,
            doctor_plugin.inspector.correlation.OPTS,
            doctor_plugin.inspector.engine.OPTS,
            doctor_plugin.inspector.listener.OPTS,
            doctor_plugin.topology.nova.OPTS,
            doctor_plugin.inspector.service.OPTS,
            doctor_plugin.transformers.alertmanager.OPTS,
            doctor_plugin.transformers.nova_service.OPTS))),
        (doctor_plugin.inspector.detection.GROUP,
         doctor_plugin.inspector.detection.OPTS),
        (doctor_plugin.nova.client.GROUP,
         doctor_plugin.nova.client.list_opts()),
        (doctor_plugin.fencers.GROUP, doctor_plugin.fencers.OPTS),
        (doctor_plugin.notifiers.webhook.GROUP, list(itertools.chain(
            doctor_plugin.notifiers.log.OPTS,
            doctor_plugin.notifiers.messaging.OPTS,
            doctor_plugin.notifiers.webhook.OPTS))),
        (doctor_plugin.alarms.evaluator.GROUP,
         doctor_plugin.alarms.evaluator.OPTS),
        (doctor_plugin.delivery.GROUP, doctor_plugin.delivery.OPTS),
        (doctor_plugin.coordination.GROUP, doctor_plugin.coordination.OPTS),
        (doctor_plugin.listener.service.GROUP,
         doctor_plugin.listener.service.OPTS),
        (doctor_plugin.monitors.heartbeat.GROUP,
         doctor_plugin.monitors.heartbeat.OPTS),
        (doctor_plugin.monitors.reporter.AUTH_GROUP,
         doctor_plugin.monitors.reporter.list_auth_opts()),
        (doctor_plugin.monitors.GROUP, list(itertools.chain(
            doctor_plugin.monitors.OPTS,
            doctor_plugin.monitors.reporter.OPTS,
            doctor_plugin.monitors.tcp.OPTS))),
    ]


def list_aodh_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """The options of the doctor:// notifier, in Aodh's configuration.

    Not registered by :func:`register_all`: the notifier runs inside
    aodh-notifier, and registers them on Aodh's configuration itself.
    """
    return [(doctor_plugin.integrations.aodh.GROUP,
             doctor_plugin.integrations.aodh.OPTS)]


def register_all(conf: cfg.ConfigOpts) -> None:
    """Register our options and oslo.messaging's on ``conf``.

    The one place our options are registered: :func:`doctor_plugin.service.
    prepare_service` calls it for every command, and tests get a
    configuration made by it from :class:`doctor_plugin.testing.config.
    ConfFixture`. Library code only reads options; the plugins that run
    inside Aodh and Ceilometer (:mod:`doctor_plugin.integrations`) are the
    exception, as they never see our commands.

    In ``[nova]`` and ``[monitor_auth]`` the options of the keystoneauth1
    auth plugin itself are left out: keystoneauth1 registers those of the
    plugin ``auth_type`` names when it loads it (registering ``password``'s
    up front would make its ``auth_url`` required even with
    ``auth_type = none``). oslo.messaging registers its own options
    lazily, when the first transport is made; registering them up front
    lets configuration files and overrides name them before that.
    """
    runtime = {
        doctor_plugin.nova.client.GROUP:
            doctor_plugin.nova.client.runtime_opts(),
        doctor_plugin.monitors.reporter.AUTH_GROUP:
            doctor_plugin.monitors.reporter.auth_opts(),
    }
    for group, options in itertools.chain(list_opts(),
                                          messaging_opts.list_opts()):
        conf.register_opts(runtime.get(group, options),
                           group=None if group == 'DEFAULT' else group)
