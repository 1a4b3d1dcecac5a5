"""Every option of doctor_plugin, for oslo-config-generator and services.

The options are declared in the modules that use them; this module only
collects them. ``list_opts`` is the ``oslo.config.opts`` entry point.
"""

from __future__ import annotations

import itertools

from oslo_config import cfg
from oslo_messaging import opts as messaging_opts

import doctor_plugin.alarms.evaluator
import doctor_plugin.delivery
import doctor_plugin.event
import doctor_plugin.inspector.api
import doctor_plugin.inspector.auth
import doctor_plugin.inspector.correlation
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
        ('inspector', list(itertools.chain(
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
        ('nova', doctor_plugin.nova.client.list_opts()),
        ('notifier', list(itertools.chain(
            doctor_plugin.notifiers.log.OPTS,
            doctor_plugin.notifiers.messaging.OPTS,
            doctor_plugin.notifiers.webhook.OPTS))),
        ('alarms', doctor_plugin.alarms.evaluator.OPTS),
        ('delivery', doctor_plugin.delivery.OPTS),
        ('listener', doctor_plugin.listener.service.OPTS),
        ('heartbeat', doctor_plugin.monitors.heartbeat.OPTS),
        (doctor_plugin.monitors.reporter.AUTH_GROUP,
         doctor_plugin.monitors.reporter.list_auth_opts()),
        ('monitor', list(itertools.chain(
            doctor_plugin.monitors.OPTS,
            doctor_plugin.monitors.reporter.OPTS,
            doctor_plugin.monitors.tcp.OPTS))),
    ]


def list_aodh_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """The options of the doctor:// notifier, in Aodh's configuration."""
    return [(doctor_plugin.integrations.aodh.GROUP,
             doctor_plugin.integrations.aodh.OPTS)]


def register_all(conf: cfg.ConfigOpts) -> None:
    """Register our options and oslo.messaging's on ``conf``.

    oslo.messaging registers its own options lazily, when the first
    transport is made; registering them up front lets configuration files
    and overrides name them before that.
    """
    for group, options in list_opts():
        if group == doctor_plugin.nova.client.GROUP:
            # Without the auth plugin's options: keystoneauth1 registers
            # those of the plugin [nova] auth_type names when it loads it.
            doctor_plugin.nova.client.register_opts(conf)
            continue
        if group == doctor_plugin.monitors.reporter.AUTH_GROUP:
            # Likewise.
            conf.register_opts(doctor_plugin.monitors.reporter.auth_opts(),
                               group=group)
            continue
        conf.register_opts(options,
                           group=None if group == 'DEFAULT' else group)
    for group, options in messaging_opts.list_opts():
        conf.register_opts(options,
                           group=None if group == 'DEFAULT' else group)
