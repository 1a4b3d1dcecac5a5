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

"""A Doctor chain in one process tree: inspector, bus, alarms, consumer.

:class:`Chain` assembles what a deployment spreads over machines: the
inspector (its pipeline, HTTP API and, with Nova, its controller), the
message bus, the tenants' alarms (evaluated by the inspector's
``alarms://`` sink or by an alarm listener), one webhook receiver
(:mod:`doctor_plugin.testing.consumer`) standing for every tenant's VNF
manager and, optionally, a Nova stand-in (:mod:`doctor_plugin.testing.nova`)
holding the hosts and instances. :class:`ChainSettings` says what it is
made of; each part can run in a process of its own, as deployed.

``doctor-plugin demo``, the benchmark's host-failure scenarios and the
functional tests all run on it; a plugin author can too, to see an event
go from a fault report to a tenant's webhook. The helpers around it
(:func:`make_conf`, :func:`use_shared_secret`, :func:`use_private_state`,
:func:`placement`) give a test a configuration and a cloud of its own.

``python -m doctor_plugin.testing.chain listener ...`` is the alarm
listener process of :class:`ListenerProcess`; the chain runs it through
:mod:`doctor_plugin.cmd.child`, which chooses the threading backend.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import typing
import uuid

from oslo_config import cfg
import yaml

from doctor_plugin.alarms import definitions
from doctor_plugin.alarms import evaluator as evaluator_mod
from doctor_plugin.common import context as context_mod
from doctor_plugin.common import messaging
from doctor_plugin.common import profiler
from doctor_plugin.controller import fixup
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin.listener import service as alarm_listener
from doctor_plugin import opts
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin import service
from doctor_plugin.testing import broker
from doctor_plugin.testing import childproc
from doctor_plugin.testing import consumer as consumer_mod
from doctor_plugin.testing import nova as nova_standin
from doctor_plugin.topology import hosts as topology_mod

DEMO_HOST = 'compute-0'


@dataclasses.dataclass
class ChainSettings:
    """What a :class:`Chain` is made of (the demo's, by default)."""

    transport_url: str = messaging.FAKE_TRANSPORT_URL
    #: Instances on each host.
    vms: int = 20
    tenants: int = 4
    #: The host's name; with several hosts, their common prefix.
    host: str = DEMO_HOST
    hosts: int = 1
    #: How many tenants share one host (default: all of them); tenants of
    #: neighbouring hosts overlap, so a tenant spans several hosts.
    tenants_per_host: int | None = None
    repeat_actions: bool = False
    #: Bus topic of the Ceilometer-format events. Each chain has its own,
    #: deleted when it stops, so that runs sharing a broker never see each
    #: other's events.
    event_topic: str = dataclasses.field(
        default_factory=lambda: f'alarm.doctor-demo-{uuid.uuid4().hex[:12]}')
    #: Topic of Nova's versioned notifications; None: the inspector does
    #: not listen on the bus.
    nova_topic: str | None = None
    #: Run the tenants' consumer in a process of its own, as a VNF manager
    #: would be (the benchmark does); otherwise a thread of this process.
    consumer_process: bool = False
    #: Let repeated failure reports of one host through (the benchmark
    #: reports a fresh failure of the same host in every trial, which the
    #: inspector's host correlation would rightly drop as a repeat).
    report_repeats: bool = False
    #: Run a Nova stand-in holding the chain's hosts and instances: the
    #: inspector loads its topology from it (and, with ``nova_topic``,
    #: follows its instance notifications) and, once the tenants are
    #: told, forces the failed host down and its instances to error there.
    nova: bool = False
    #: Run the Nova stand-in in a process of its own, as Nova would be
    #: (the benchmark does); it then sends no notifications.
    nova_process: bool = False
    #: Where the tenants' alarms are evaluated: ``inspector``, by an
    #: ``alarms://`` sink of the inspector's pipeline (the events still go
    #: onto the bus for Aodh), or ``listener``, by an alarm listener that
    #: takes them off the bus (doctor-plugin-listener's way).
    alarms_in: str = 'inspector'
    #: With ``alarms_in = 'listener'``, run the listener in a process of
    #: its own, as doctor-plugin-listener is deployed: the inspector's
    #: work then does not compete with it for the GIL. T07 and T08 are
    #: then not on the timeline.
    listener_process: bool = False


def make_conf(settings: ChainSettings) -> cfg.ConfigOpts:
    """A configuration with every option registered and no files read."""
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='doctor_plugin', default_config_files=[])
    conf.set_override('transport_url', settings.transport_url)
    use_private_state(conf)
    conf.set_override('event_topics', [settings.event_topic],
                      group='listener')
    conf.set_override('port', 0, group='inspector')
    # The chain's own inspector: a secret of this run's, that only its
    # monitors (sharing this configuration) hold.
    use_shared_secret(conf)
    if settings.report_repeats:
        conf.set_override('host_report_window', 0.0, group='inspector')
    conf.set_override('enable_notification_listener',
                      settings.nova_topic is not None, group='inspector')
    if settings.nova_topic:
        conf.set_override('notification_topics', [settings.nova_topic],
                          group='inspector')
        conf.set_override('notification_pool',
                          f'{settings.nova_topic}.doctor-inspector',
                          group='inspector')
        conf.set_override('topology_notification_pool',
                          f'{settings.nova_topic}.doctor-topology',
                          group='inspector')
    if settings.nova:
        conf.set_override('topology_source', 'nova', group='inspector')
        conf.set_override('controller', 'nova', group='inspector')
        conf.set_override('auth_type', 'none', group='nova')
    return conf


def use_shared_secret(conf: cfg.ConfigOpts) -> str:
    """Give the inspector and the monitors of ``conf`` a new random secret.

    :returns: the secret (for clients that do not share ``conf``)
    """
    secret = secrets.token_hex(32)
    conf.set_override('shared_secret', secret, group='inspector')
    conf.set_override('inspector_secret', secret, group='monitor')
    return secret


def use_private_state(conf: cfg.ConfigOpts) -> str:
    """Give ``conf`` a state directory of its own, removed at exit.

    A run's deliveries are its own: a database that lives as long as the
    run, not one in /var/lib that the next run would resume.
    """
    state = tempfile.mkdtemp(prefix='doctor-plugin-')
    atexit.register(shutil.rmtree, state, True)
    conf.set_override('state_path', state)
    return state


def host_names(settings: ChainSettings) -> list[str]:
    """The names of the chain's hosts."""
    if settings.hosts == 1:
        return [settings.host]
    return [f'{settings.host}-{h:03d}' for h in range(settings.hosts)]


def placement(settings: ChainSettings) -> list[topology_mod.Instance]:
    """``vms`` instances per host, round-robin over that host's tenants.

    Host ``h`` holds tenants ``h * tenants_per_host`` onwards (modulo the
    number of tenants).
    """
    per_host = min(settings.tenants_per_host or settings.tenants,
                   settings.tenants)
    instances = []
    for h, host in enumerate(host_names(settings)):
        for i in range(settings.vms):
            n = h * settings.vms + i
            tenant = (h * per_host + i % per_host) % settings.tenants
            instances.append(topology_mod.Instance(
                id=f'vm-{n:06d}', project_id=f'tenant-{tenant:03d}',
                host=host, name=f'vnf-{n}'))
    return instances


def tenant_topology(settings: ChainSettings) -> topology_mod.HostTopology:
    """The static topology of :func:`placement`."""
    return topology_mod.HostTopology(placement(settings))


def tenant_alarms(settings: ChainSettings, consumer_url: str
                  ) -> list[definitions.AlarmDefinition]:
    """One host-down event alarm per tenant, each to its own webhook path."""
    return definitions.parse(tenant_alarm_document(settings, consumer_url),
                             '<demo alarms>')


def tenant_alarm_document(settings: ChainSettings, consumer_url: str
                          ) -> dict:
    """:func:`tenant_alarms` as the definitions file holds them."""
    return {'alarms': [
        {'name': f'host-down-tenant-{t:03d}',
         'project_id': f'tenant-{t:03d}',
         'severity': 'critical',
         'repeat_actions': settings.repeat_actions,
         'event_rule': {'event_type': 'compute.host.down'},
         'alarm_actions': [f'{consumer_url}/tenants/tenant-{t:03d}']}
        for t in range(settings.tenants)]}


def make_listener(settings: ChainSettings, conf: cfg.ConfigOpts,
                  consumer_url: str,
                  timeline: profiler.Timeline | None = None
                  ) -> alarm_listener.AlarmListener:
    """The chain's alarm listener: one host-down alarm per tenant."""
    evaluator = evaluator_mod.EventAlarmEvaluator(
        conf, tenant_alarms(settings, consumer_url), timeline=timeline)
    return alarm_listener.AlarmListener(conf, evaluator)


class ListenerProcess:
    """The chain's alarm listener in a process of its own."""

    def __init__(self, settings: ChainSettings, consumer_url: str) -> None:
        self._child = childproc.ChildServer(
            'doctor_plugin.testing.chain',
            ['listener', json.dumps(dataclasses.asdict(settings)),
             consumer_url],
            what='the alarm listener process')

    def start(self) -> None:
        # It announces itself once it consumes its queue.
        self._child.start()

    def stop(self) -> None:
        self._child.stop()


def listener_main(settings_json: str, consumer_url: str) -> None:
    """Run :func:`make_listener` until SIGTERM (:class:`ListenerProcess`)."""
    settings = ChainSettings(**json.loads(settings_json))
    conf = make_conf(settings)
    listener = make_listener(settings, conf, consumer_url)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    listener.start()
    service.freeze_startup_heap()
    sys.stdout.write(json.dumps({'ready': True}) + '\n')
    sys.stdout.flush()
    try:
        done.wait()
    finally:
        listener.stop()
        messaging.cleanup()


class Chain:
    """Inspector → bus → alarm listener → consumer, run together.

    The demo, the benchmark and the functional tests all run on it.
    :meth:`start` it, report faults to ``inspector.url`` (the
    ``[monitor] inspector_url`` of :attr:`conf` points there), wait for
    the tenants' alarms with ``consumer.wait_for`` and :meth:`stop` it:
    it stops what it started and deletes its queues.
    """

    def __init__(self, settings: ChainSettings,
                 timeline: profiler.Timeline) -> None:
        self.settings = settings
        self.timeline = timeline
        self.conf = make_conf(settings)
        self.nova: (nova_standin.NovaStandIn
                    | nova_standin.NovaStandInProcess | None) = None
        self.listener: (alarm_listener.AlarmListener | ListenerProcess
                        | None) = None
        self._alarms_file: typing.IO[str] | None = None
        # The consumer runs from here on: its URL goes into the alarms.
        self.consumer: (consumer_mod.ConsumerServer
                        | consumer_mod.ConsumerProcess)
        if settings.consumer_process:
            self.consumer = consumer_mod.ConsumerProcess(
                on_alarm=self._on_alarm).start()
        else:
            self.consumer = consumer_mod.ConsumerServer(
                on_alarm=self._on_alarm).start()
        try:
            self._build(settings)
        except BaseException:
            if self.nova is not None:
                self.nova.stop()
            self.consumer.stop()
            raise

    def _start_nova(self, settings: ChainSettings) -> None:
        """Start the Nova stand-in and point the ``[nova]`` options at it."""
        servers = [(i.id, i.project_id, i.host, i.name)
                   for i in placement(settings)]
        if settings.nova_process:
            # Nova runs on other machines: on this one it gets the CPU
            # the chain leaves.
            self.nova = nova_standin.NovaStandInProcess(servers,
                                                        idle=True).start()
        else:
            self.nova = nova_standin.NovaStandIn().start()
            self.nova.add_servers(servers)
            if settings.nova_topic:
                self.nova.enable_notifications(settings.transport_url,
                                               settings.nova_topic)
        self.conf.set_override('endpoint_override', self.nova.compute_url,
                               group='nova')

    def _build(self, settings: ChainSettings) -> None:
        if settings.alarms_in not in ('inspector', 'listener'):
            raise ValueError(f'alarms_in must be "inspector" or "listener",'
                             f' not {settings.alarms_in!r}')
        if settings.nova:
            self._start_nova(settings)
        sinks = ['bus']
        notifiers = {'bus': ['messaging://?topic=' + settings.event_topic
                             + '&notification_topic=']}
        if settings.alarms_in == 'inspector':
            # The definitions file the alarms:// sink reads, as an
            # operator would write it.
            self._alarms_file = tempfile.NamedTemporaryFile(
                'w', prefix='doctor-demo-alarms-', suffix='.yaml')
            yaml.safe_dump(tenant_alarm_document(settings,
                                                 self.consumer.url),
                           self._alarms_file)
            self._alarms_file.flush()
            sinks.append('alarms')
            notifiers['alarms'] = [f'alarms://{self._alarms_file.name}']
        #: The inspector's: the alarms:// evaluator marks its timeline.
        self.context = context_mod.ServiceContext('inspector',
                                                  timeline=self.timeline)
        pipeline = pipeline_mod.Pipeline(
            self.conf, pipeline_mod.PipelineDefinition.from_dict(
                {'sources': [{'name': 'host_faults',
                              'events': ['compute.host.*'],
                              'sinks': sinks}],
                 'sinks': [{'name': name, 'notifiers': notifiers[name]}
                           for name in sinks]},
                '<demo pipeline>'), self.context)
        self.inspector = inspector_service.InspectorService(
            self.conf, pipeline=pipeline,
            topology=None if settings.nova else tenant_topology(settings),
            context=self.context)
        if settings.alarms_in == 'inspector':
            return
        if settings.listener_process:
            if settings.transport_url.startswith('fake'):
                raise ValueError(
                    'listener_process needs a real broker: the fake:// bus '
                    'lives inside one process')
            self.listener = ListenerProcess(settings, self.consumer.url)
        else:
            self.listener = make_listener(settings, self.conf,
                                          self.consumer.url, self.timeline)

    def _on_alarm(self, alarm: consumer_mod.ReceivedAlarm) -> None:
        self.timeline.mark(alarm.trait('monitor_event_id'), 'T09',
                           alarm.received_at)

    def start(self) -> Chain:
        if self.listener is not None:
            self.listener.start()
        self.inspector.start()
        self.conf.set_override('inspector_url',
                               f'{self.inspector.url}/events',
                               group='monitor')
        service.freeze_startup_heap()
        return self

    @property
    def controller(self) -> fixup.NovaController | None:
        """The inspector's Nova controller (with ``nova`` set)."""
        return self.inspector.controller

    def stop(self) -> None:
        self.inspector.stop()
        if self.listener is not None:
            self.listener.stop()
        if self._alarms_file is not None:
            self._alarms_file.close()
        self.consumer.stop()
        if self.nova is not None:
            self.nova.stop()
        queues = broker.listener_queue_names([self.settings.event_topic])
        if self.settings.nova_topic:
            for pool in (self.conf.inspector.notification_pool,
                         self.conf.inspector.topology_notification_pool):
                queues += broker.listener_queue_names([], pool)
            # Those the Nova stand-in's notifier declares as it sends.
            queues += broker.listener_queue_names(
                [self.settings.nova_topic])
        messaging.cleanup()
        broker.delete_queues(self.settings.transport_url, queues)


if __name__ == '__main__':
    if sys.argv[1:2] == ['listener'] and len(sys.argv) == 4:
        listener_main(sys.argv[2], sys.argv[3])
    else:
        sys.exit('usage: python -m doctor_plugin.testing.chain listener '
                 'SETTINGS_JSON CONSUMER_URL (run by the chain)')
