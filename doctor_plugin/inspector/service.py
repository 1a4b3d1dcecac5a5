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

"""Assemble the inspector: API, bus listeners, engine, pipeline, Nova."""

from __future__ import annotations

import socket
import typing

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import context as context_mod
from doctor_plugin.common import messaging
from doctor_plugin.common import plugins
from doctor_plugin.common import profiler
from doctor_plugin.controller import fixup
from doctor_plugin.coordination import claims as claims_mod
from doctor_plugin.coordination import cluster as cluster_mod
from doctor_plugin.coordination import forward
from doctor_plugin.coordination import membership as membership_mod
from doctor_plugin import delivery
from doctor_plugin.delivery import outbox as outbox_mod
from doctor_plugin.delivery import store as store_mod
from doctor_plugin.inspector import api
from doctor_plugin.inspector import engine
from doctor_plugin.inspector import listener
from doctor_plugin.nova import client as nova
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin.topology import hosts as topology_mod
from doctor_plugin.topology import nova as nova_topology

LOG = logging.getLogger(__name__)

GROUP = 'inspector'

OPTS = [
    cfg.ListOpt('transformers',
                default=['nova_service'],
                help='Transformer plugins (doctor_plugin.transformers) fed '
                     'from the message bus.'),
    cfg.BoolOpt('enable_notification_listener',
                default=True,
                help='Listen on the bus for the notifications the bus '
                     'transformers accept and, with topology_source nova, '
                     "for Nova's instance notifications. Off, the topology "
                     'from Nova is only refreshed by its periodic resync.'),
    cfg.StrOpt('topology_source',
               default='file',
               choices=[('file', 'the static [inspector] topology_file (or '
                                 'none: no per-tenant fan-out)'),
                        ('nova', "loaded from Nova's API with the [nova] "
                                 "options and kept current from its "
                                 "versioned instance notifications")],
               help='Where the inspector learns which instances, of which '
                    'tenants, run on which host.'),
    cfg.FloatOpt('broker_check_interval',
                 default=5.0, min=0.0,
                 help='With topology_source nova: seconds between checks '
                      'that the message broker is reachable. When it comes '
                      'back after an outage the topology is reloaded from '
                      'Nova at once, since the instance notifications sent '
                      'meanwhile are lost. 0 turns the check off (the '
                      'periodic resync still runs).'),
    cfg.StrOpt('controller',
               default='none',
               choices=[('none', 'only notify'),
                        ('nova', "after notifying, force the failed host's "
                                 "compute service down and reset its "
                                 "instances to error in Nova ([nova] "
                                 "options); un-force it on recovery")],
               help="Whether the inspector also makes Nova's view of a "
                    "failed host true. Consumers are always notified "
                    "first; the fix-up runs in the background and its "
                    "outcome is published as a doctor.controller.result "
                    "event."),
]


#: The API's paths besides Doctor's PUT /events: (path, method,
#: transformer plugin).
API_ROUTES = (
    ('/events/ceilometer', 'PUT', 'ceilometer'),
    ('/events/alertmanager', 'POST', 'alertmanager'),
    ('/events/collectd', 'POST', 'collectd'),
    ('/events/libvirt', 'POST', 'libvirt'),
)


class InspectorService:
    """A running ``doctor-plugin-inspector``: start it, stop it.

    :param conf: service configuration
    :param pipeline: overrides ``[DEFAULT] pipeline_cfg_file``
    :param topology: overrides ``[inspector] topology_source``
    :param transport_url: overrides oslo.messaging's transport options
    :param timeline: profiler marks (defaults to the context's)
    :param context: what the service's parts share: its timeline, its
        notification activity and its thread pools, shut down by
        :meth:`stop`. By default the given pipeline's, or a new one.
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 pipeline: pipeline_mod.Pipeline | None = None,
                 topology: topology_mod.HostTopology | None = None,
                 transport_url: str | None = None,
                 timeline: profiler.Timeline | None = None,
                 context: context_mod.ServiceContext | None = None) -> None:
        self.conf = conf
        if context is None:
            context = (pipeline.context if pipeline is not None
                       else context_mod.ServiceContext('inspector',
                                                       timeline=timeline))
        self.context = context
        self.pipeline = pipeline or pipeline_mod.Pipeline.from_conf(
            conf, context)
        uses_nova = 'nova' in (conf.inspector.topology_source,
                               conf.inspector.controller)
        self.nova_client = nova.NovaClient(conf) if uses_nova else None
        self.topology_sync = None
        self.topology_listener = None
        self.broker_watch: messaging.BrokerWatch | None = None
        if topology is None and conf.inspector.topology_source == 'nova':
            assert self.nova_client is not None  # uses_nova
            self.topology_sync = nova_topology.NovaTopologySync(
                conf, self.nova_client)
            topology = self.topology_sync.topology
            if conf.inspector.enable_notification_listener:
                self.topology_listener = nova_topology.get_listener(
                    conf, self.topology_sync,
                    conf.inspector.notification_topics, transport_url,
                    member=(outbox_mod.owner_name(conf)
                            if conf.coordination.backend_url else None))
                self.broker_watch = messaging.BrokerWatch(
                    messaging.resolve_url(conf, transport_url),
                    self.topology_sync.request_resync,
                    conf.inspector.broker_check_interval)
        self.controller = None
        if conf.inspector.controller == 'nova':
            assert self.nova_client is not None  # uses_nova
            self.controller = fixup.NovaController(
                conf, self.nova_client, publish=self.pipeline.publish,
                timeline=timeline, context=context)
        self.cluster, self.takeover = self._make_cluster(conf)
        self.engine = engine.Inspector(conf, self.pipeline, topology,
                                       timeline, self.controller,
                                       context=context,
                                       cluster=self.cluster,
                                       power_state=self._power_reader(conf))
        if self.controller is not None:
            self.controller.yield_to(self.engine.activity.wait_idle)
        api_transformer = plugins.load_driver(
            plugins.TRANSFORMERS_NAMESPACE, conf.inspector.api_transformer,
            conf)
        self.app = api.InspectorAPI(conf, self.engine, api_transformer, {
            path: (method, plugins.load_driver(
                plugins.TRANSFORMERS_NAMESPACE, name, conf))
            for path, method, name in API_ROUTES})
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

    def _power_reader(self, conf: cfg.ConfigOpts
                      ) -> typing.Callable[[str], str] | None:
        """How a suspect host's power state is read: the controller's fencer.

        None without a controller or with the ``none`` fencer, which knows
        no power state.
        """
        if self.controller is None or conf.fencing.driver == 'none':
            return None
        fencer, timeout = self.controller.fencer, conf.fencing.timeout
        return lambda host: fencer.power_state(host, timeout)

    def _make_cluster(self, conf: cfg.ConfigOpts) -> tuple[
            cluster_mod.Cluster, cluster_mod.Takeover | None]:
        """This inspector's part in its cluster; alone without a backend."""
        member_id = outbox_mod.owner_name(conf)
        self.membership: (membership_mod.Membership
                          | membership_mod.Standalone)
        self._outbox = None
        self._store: store_mod.DeliveryStore | None = None
        if not conf.coordination.backend_url:
            self.membership = membership_mod.Standalone(member_id)
            return cluster_mod.Cluster(self.membership), None
        me = membership_mod.Member(member_id)
        forwarder = forward.Forwarder(conf, me)
        self.membership = membership_mod.Membership(
            conf, f'{conf.coordination.group}.inspector', me,
            on_change=self._group_changed)
        self._outbox = delivery.get_outbox(conf)
        self._store = (self._outbox.store if self._outbox is not None
                       else store_mod.DeliveryStore(conf.delivery.connection))
        if self._store.engine.dialect.name == 'sqlite':
            LOG.warning('[coordination] backend_url is set but [delivery] '
                        'connection is SQLite: only members on this machine '
                        'share it, so a survivor elsewhere cannot take over '
                        'the deliveries of a member that died. Point every '
                        'member at one database server.')
        claims = claims_mod.HostClaims(
            self._store, member_id, conf.inspector.host_report_window,
            fixups=self.controller is not None,
            horizon=conf.delivery.deadline)
        cluster = cluster_mod.Cluster(
            self.membership, claims, forwarder, engine.HOST_EVENT_TYPES,
            conf.coordination.forward_timeout)
        takeover = cluster_mod.Takeover(
            self.membership, self._store,
            ':' + member_id.rsplit(':', 1)[-1],
            self._outbox.resume if self._outbox is not None
            else (lambda: None),
            claims=claims,
            fix_up=lambda *change: self.engine.fix_up_taken_over(*change))
        return cluster, takeover

    def _group_changed(self, view: membership_mod.View, left: frozenset,
                       joined: frozenset) -> None:
        self.engine.owned_hosts_changed()
        if self.takeover is not None:
            self.takeover.trigger()

    def advertised_url(self) -> str:
        """Where the other members reach this inspector's API."""
        given = self.conf.coordination.advertise_url
        if given:
            return given.rstrip('/')
        url = self.server.url
        host = self.conf.inspector.host
        if host in ('0.0.0.0', '::', ''):
            port = url.rsplit(':', 1)[1]
            return f'http://{socket.getfqdn()}:{port}'
        return url

    @property
    def url(self) -> str:
        """Base URL of the running API."""
        return self.server.url

    def start(self) -> InspectorService:
        if self.topology_sync is not None:
            if self.topology_listener is not None:
                # Listen first: what changes while the map loads is kept.
                self.topology_listener.start()
            self.topology_sync.start()
            if self.broker_watch is not None:
                self.broker_watch.start()
        self.server.start()
        if isinstance(self.membership, membership_mod.Membership):
            self.membership.me = membership_mod.Member(
                self.membership.member_id, self.advertised_url())
            self.membership.start()
            if self.takeover is not None:
                self.takeover.start()
                self.takeover.trigger()
        # Take reports from the bus once reports can be handed over.
        if self.listener is not None:
            self.listener.start()
        LOG.info('Inspector API listening on %s', self.url)
        return self

    def reload(self) -> None:
        """Read the notifiers' definition files (alarms) again: SIGHUP."""
        self.pipeline.reload()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        # Leave first: the others take our hosts while we finish.
        self.membership.stop()
        if self.takeover is not None:
            self.takeover.stop()
        self.server.stop()
        if self.topology_listener is not None:
            self.topology_listener.stop()
            self.topology_listener.wait()
        if self.broker_watch is not None:
            self.broker_watch.stop()
        if self.topology_sync is not None:
            self.topology_sync.stop()
        self.engine.close()
        if self.controller is not None:
            self.controller.close()
        if self.nova_client is not None:
            self.nova_client.close()
        self.cluster.close()
        self.pipeline.close()
        delivery.release(self._outbox)
        if self._store is not None and self._outbox is None:
            self._store.close()
        self.context.close()
