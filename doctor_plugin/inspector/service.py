"""Assemble the inspector: API, bus listener, engine, pipeline."""

from __future__ import annotations

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.inspector import api
from doctor_plugin.inspector import engine
from doctor_plugin.inspector import listener
from doctor_plugin.inspector import topology as topology_mod
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin import plugins
from doctor_plugin import profiler

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.ListOpt('transformers',
                default=['nova_service'],
                help='Transformer plugins (doctor_plugin.transformers) fed '
                     'from the message bus.'),
    cfg.BoolOpt('enable_notification_listener',
                default=True,
                help='Listen on the bus for the notifications the bus '
                     'transformers accept.'),
]


class InspectorService:
    """A running ``doctor-plugin-inspector``: start it, stop it.

    :param conf: service configuration
    :param pipeline: overrides ``[DEFAULT] pipeline_cfg_file``
    :param topology: overrides ``[inspector] topology_file``
    :param transport_url: overrides oslo.messaging's transport options
    :param timeline: profiler marks (defaults to the process timeline)
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 pipeline: pipeline_mod.Pipeline | None = None,
                 topology: topology_mod.HostTopology | None = None,
                 transport_url: str | None = None,
                 timeline: profiler.Timeline | None = None) -> None:
        conf.register_opts(OPTS, group='inspector')
        conf.register_opts(api.OPTS, group='inspector')
        self.conf = conf
        self.pipeline = pipeline or pipeline_mod.Pipeline.from_conf(conf)
        self.engine = engine.Inspector(conf, self.pipeline, topology,
                                       timeline)
        api_transformer = plugins.load_driver(
            plugins.TRANSFORMERS_NAMESPACE, conf.inspector.api_transformer,
            conf)
        self.app = api.InspectorAPI(conf, self.engine, api_transformer)
        self.server = api.APIServer(self.app, conf.inspector.host,
                                    conf.inspector.port)
        self.listener = None
        if conf.inspector.enable_notification_listener:
            transformers = list(plugins.load_named(
                plugins.TRANSFORMERS_NAMESPACE, conf.inspector.transformers,
                conf).values())
            if any(t.event_types for t in transformers):
                self.listener = listener.NotificationListener(
                    conf, self.engine, transformers, transport_url)

    @property
    def url(self) -> str:
        """Base URL of the running API."""
        return self.server.url

    def start(self) -> InspectorService:
        if self.listener is not None:
            self.listener.start()
        self.server.start()
        LOG.info('Inspector API listening on %s', self.url)
        return self

    def stop(self) -> None:
        self.server.stop()
        if self.listener is not None:
            self.listener.stop()
        self.engine.close()
        self.pipeline.close()
