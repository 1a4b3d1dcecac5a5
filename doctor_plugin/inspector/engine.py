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

"""The inspector's core: correlate a host fault and fan it out.

A host-level event (``compute.host.down``/``up``/``disabled``) becomes, in
one batch and so in one bus message, the host event itself and one event
per affected tenant carrying that tenant's instances (so each tenant's
alarm fires once, with everything it needs). For a failure, a second batch
follows: one ``compute.instance.update`` event per instance in state
``error``, the event Nova would send and Doctor's per-VM Aodh alarms
expect. Only then is Nova fixed up, in the background: consumers are told
first.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import threading
import typing
import uuid

from oslo_config import cfg
from oslo_log import log as logging

from doctor_plugin.common import activity as activity_mod
from doctor_plugin.common import context as context_mod
from doctor_plugin.common import profiler
from doctor_plugin.common import urls
from doctor_plugin.coordination import claims as claims_mod
from doctor_plugin.coordination import cluster as cluster_mod
from doctor_plugin.coordination import membership
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import correlation
from doctor_plugin.inspector import detection
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin.topology import hosts as topology_mod

LOG = logging.getLogger(__name__)

GROUP = 'inspector'

OPTS = [
    cfg.StrOpt('topology_file',
               help='A static host → instances map (YAML) used to find the '
                    'instances and tenants affected by a host fault. Empty: '
                    'host events are published without per-tenant fan-out.'),
    cfg.BoolOpt('instance_events',
                default=True,
                help='On a host failure, also publish one '
                     'compute.instance.update event (state error) per '
                     'affected instance, for per-VM alarms such as Doctor\'s '
                     'Aodh set-up. They travel in the same bus message as '
                     'the host and tenant events.'),
    cfg.IntOpt('dedup_cache_size',
               default=10000, min=0,
               help='How many recent event ids to remember so that a '
                    'repeated report of the same detection is published '
                    'once. 0 disables de-duplication.'),
]

HOST_EVENT_TYPES = frozenset({'compute.host.down', 'compute.host.up',
                              'compute.host.disabled'})
#: Host event types whose state the correlation tracks.
_HOST_STATES = {'compute.host.down': correlation.DOWN,
                'compute.host.up': correlation.UP}
#: The host event of each state, for a change known only by its state.
_EVENT_OF_STATE = {state: event_type
                   for event_type, state in _HOST_STATES.items()}


class Controller(typing.Protocol):
    """What the inspector needs of a controller (Nova fix-up)."""

    def handle(self, host_event: event_model.Event,
               instances: typing.Sequence[topology_mod.Instance],
               verify: bool = False) -> typing.Any:
        """Start fixing the controller's view up; must not block.

        :param verify: check the controller's state first, and change
            only what is not so already
        """


#: How many host events one log line of a batch names (the rest are
#: counted).
MAX_LOGGED_HOSTS = 10

#: The longest the per-instance events of a failure wait for the alarm
#: actions (webhooks) of this process to finish, in seconds.
INSTANCE_EVENTS_MAX_WAIT = 0.1

_FANOUT_NAMESPACE = uuid.UUID('5d0c6a4e-9a8e-4f4e-b1c9-2b3c4d5e6f70')
_FANOUT_NAMESPACE_BYTES = _FANOUT_NAMESPACE.bytes


class RecentIds:
    """A bounded set of recently seen ids (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: collections.OrderedDict[str, None] = (
            collections.OrderedDict())
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._ids

    def add(self, key: str) -> None:
        if not self._size:
            return
        with self._lock:
            self._ids[key] = None
            self._ids.move_to_end(key)
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)


class Inspector:
    """Correlate, fan out and publish events; then start the fix-up.

    :param conf: service configuration
    :param pipeline: where the resulting events go
    :param topology: host → instances; ``None`` loads ``[inspector]
        topology_file`` (or uses an empty one when unset)
    :param timeline: profiler marks (defaults to the context's)
    :param controller: fixes Nova up after the consumers were told; None
        for none
    :param activity: where the notification work is counted (defaults to
        the context's, which the alarm actions count in too)
    :param context: the service's context; the pipeline's by default
    :param cluster: this process's part in a cluster of inspectors: it
        handles only the hosts it owns, hands the others' reports to
        their owners and claims each change in the shared database. By
        default it works alone.
    :param power_state: reads a host's power state from its BMC (``'on'``,
        ``'off'`` or ``'unknown'``), for the ``power_state`` confirming
        signal of a suspect host; None when no fencer is configured
    """

    def __init__(self, conf: cfg.ConfigOpts,
                 pipeline: pipeline_mod.Pipeline,
                 topology: topology_mod.HostTopology | None = None,
                 timeline: profiler.Timeline | None = None,
                 controller: Controller | None = None,
                 activity: activity_mod.Activity | None = None,
                 context: context_mod.ServiceContext | None = None,
                 cluster: cluster_mod.Cluster | None = None,
                 power_state: typing.Callable[[str], str] | None = None
                 ) -> None:
        self.conf = conf
        self.pipeline = pipeline
        #: Shared with the pipeline and the notifiers it loaded (the
        #: alarms:// evaluator counts its actions in the same activity).
        self.context = pipeline.context if context is None else context
        if topology is None:
            path = conf.inspector.topology_file
            topology = (topology_mod.HostTopology.from_file(path) if path
                        else topology_mod.HostTopology())
        self.topology = topology
        self.timeline = timeline or self.context.timeline
        self.controller = controller
        self.hosts = correlation.HostStateTracker(conf, self._release_held)
        self._recent = RecentIds(conf.inspector.dedup_cache_size)
        #: Held while events are correlated, fanned out and published (and,
        #: by the alarm evaluator, while alarm actions run).
        self.activity = activity or self.context.activity
        self.cluster = cluster or cluster_mod.Cluster(
            membership.Standalone('inspector'))
        self.detection = detection.Corroboration(
            conf, power_state=power_state is not None)
        self._power_state = power_state
        self._stopping = threading.Event()
        self._expiry: threading.Thread | None = None
        if self.detection.corroborating and self.detection.suspect_timeout:
            self._expiry = threading.Thread(
                target=self._expire_suspicions, daemon=True,
                name='doctor-suspect-expiry')
            self._expiry.start()

    def process(self, events: typing.Sequence[event_model.Event],
                handed_over: bool = False) -> list[event_model.Event]:
        """Correlate ``events``, fan them out and publish the result.

        In a cluster, the host events of hosts another member owns are
        handed to it, and this returns once it published them.

        :param handed_over: the events come from another member, which
            found this one their owner: handle them here
        :returns: the events this process published (after
            de-duplication and fan-out)
        :raises DeliveryError: if a notifier of the pipeline failed, or
            the owner of a host could not take its events; the events are
            then not remembered, so a retried report goes out
        """
        if not self.cluster.enabled:
            with self.activity:
                return self._process(events, correlate=True)
        if handed_over:
            self.cluster.require_lease()
            with self.activity:
                return self._process(events, correlate=True,
                                     handed_over=True)
        published: list[event_model.Event] = []

        def handle(batch: list[event_model.Event]) -> None:
            with self.activity:
                published.extend(self._process(batch, correlate=True))
        self.cluster.dispatch(events, handle)
        # Every member counts a monitor's reports, so every member must
        # know that it is isolated.
        self.cluster.broadcast([ev for ev in events if ev.event_type
                                == detection.ISOLATED_EVENT_TYPE])
        return published

    def owned_hosts_changed(self) -> None:
        """Forget what is known of hosts this member no longer owns.

        Their new owner handles them meanwhile; if they come back, the
        shared database, not a stale memory, says what state they are in.
        """
        self.hosts.retain(self.cluster.membership.owns)
        self.detection.forget(self.cluster.membership.owns)

    def _process(self, events: typing.Sequence[event_model.Event],
                 correlate: bool, handed_over: bool = False
                 ) -> list[event_model.Event]:
        """:meth:`process`, holding :attr:`activity` (once).

        :param handed_over: the events come from another member; one it
            broadcast (an isolated monitor) was published there
        """
        fresh: list[event_model.Event] = []
        seen: set[str] = set()
        claimed: list[tuple[str, str, claims_mod.Previous | None]] = []
        #: Bus-only events of the corroboration (suspicion changes).
        side: list[event_model.Event] = []
        for ev in events:
            if ev.message_id in seen or ev.message_id in self._recent:
                LOG.info('Ignoring repeated event %s', ev.message_id)
                continue
            seen.add(ev.message_id)
            fault_id = ev.trait('monitor_event_id')
            self.timeline.mark(fault_id, 'T06')
            if correlate:
                verdict = self.detection.observe(ev)
                side.extend(verdict.publish)
                if verdict.query_power:
                    self._query_power(verdict.query_power)
                if verdict.forward is None:
                    continue
                ev = verdict.forward
                if (handed_over and ev.event_type
                        == detection.ISOLATED_EVENT_TYPE):
                    continue
            state = _HOST_STATES.get(ev.event_type)
            host = ev.trait('host') if state else None
            if (correlate and host and state
                    and not self.hosts.admit(host, state, ev,
                                             _observed(ev))):
                continue
            if host and state and self.cluster.claims is not None:
                try:
                    outcome, previous = self.cluster.claim(
                        host, state, ev.message_id)
                except exceptions.DeliveryError:
                    self.hosts.discard(host)
                    self._release_claims(claimed)
                    raise
                if outcome != claims_mod.WON:
                    LOG.info('Host %s: %s %s already handled in the '
                             'cluster (%s)', host, ev.event_type,
                             ev.message_id, outcome)
                    continue
                claimed.append((host, ev.message_id, previous))
            fresh.append(ev)
        fresh = [self._with_project(ev) for ev in fresh]
        out: list[event_model.Event] = list(side)
        affected: dict[str, tuple[topology_mod.Instance, ...]] = {}
        failed_hosts: list[tuple[event_model.Event,
                                 tuple[topology_mod.Instance, ...]]] = []
        fanned: list[tuple[event_model.Event, int, int]] = []
        for ev in fresh:
            out.append(ev)
            if ev.event_type in HOST_EVENT_TYPES:
                host = ev.trait('host')
                instances = self.topology.instances_on(host) if host else ()
                affected[ev.message_id] = instances
                tenant_events = self.tenant_events(ev, instances, log=False)
                fanned.append((ev, len(instances), len(tenant_events)))
                out.extend(tenant_events)
                if instances and self._has_instance_events(ev):
                    failed_hosts.append((ev, instances))
                self.timeline.mark(ev.trait('monitor_event_id'), 'T02')
        if fanned:
            _log_fan_out(fanned)
        if not out:
            return []
        try:
            self._publish(out, fresh)
        except exceptions.DeliveryError:
            self._release_claims(claimed)
            raise
        # The tenants are told. The per-instance events follow in a batch
        # of their own: built, serialised and decoded by every listener,
        # one per VM, they would otherwise hold the tenants' alarms back.
        # They also wait (a little) for the tenants' webhooks that this
        # process's alarms:// evaluation started: they would share the
        # interpreter with them.
        instance_events = [e for ev, instances in failed_hosts
                           for e in self._instance_events(ev, instances)]
        if instance_events:
            self.activity.end()
            try:
                self.activity.wait_idle(INSTANCE_EVENTS_MAX_WAIT)
            finally:
                self.activity.begin()
            self._publish(instance_events, fresh)
            out.extend(instance_events)
        for ev in fresh:
            self._recent.add(ev.message_id)
            self.timeline.mark(ev.trait('monitor_event_id'), 'T05')
        if self.controller is not None:
            for ev in fresh:
                if ev.event_type in _HOST_STATES:
                    self._fix_up(ev, affected.get(ev.message_id, ()))
        return out

    def _fix_up(self, ev: event_model.Event,
                instances: typing.Sequence[topology_mod.Instance],
                verify: bool = False) -> None:
        """Have the controller fix Nova up; record it in the claims."""
        assert self.controller is not None
        future = self.controller.handle(ev, instances, verify=verify)
        if self.cluster.claims is None:
            return
        host = str(ev.trait('host'))

        def done(f: typing.Any) -> None:
            # None: the controller closed before it ran (this member is
            # stopping), so the survivor that takes the host makes it.
            if not f.cancelled() and f.exception() is None \
                    and f.result() is not None:
                self.cluster.fixed(host, ev.message_id)

        future.add_done_callback(done)

    def fix_up_taken_over(self, host: str, state: str,
                          event_id: str) -> None:
        """Make the Nova fix-up a departed member claimed and never made.

        The tenants were told by that member (its deliveries, durable, are
        taken over with the rest); Nova was not.
        """
        event_type = _EVENT_OF_STATE.get(state)
        if self.controller is None or event_type is None:
            self.cluster.fixed(host, event_id)
            return
        ev = event_model.Event.create(
            event_type, {'host': host, 'monitor_event_id': event_id},
            message_id=event_id)
        LOG.warning('Host %s: making the Nova fix-up (%s) that its former '
                    'owner claimed for %s and never made', host, state,
                    event_id)
        # Verified: the member may have made it and died before it could
        # record so.
        self._fix_up(ev, self.topology.instances_on(host)
                     if state == 'down' else (), verify=True)

    def _release_claims(self, claimed: typing.Iterable[
            tuple[str, str, claims_mod.Previous | None]]) -> None:
        """Undo the claims of changes whose events did not go out."""
        for host, event_id, previous in claimed:
            self.cluster.release(host, event_id, previous)

    def _with_project(self, ev: event_model.Event) -> event_model.Event:
        """An instance event from a monitor (libvirt), with its project.

        Per-VM alarms (Aodh's and ours) are scoped by project; a monitor
        on the compute host knows the instance but not its tenant, which
        the topology does.
        """
        if (ev.event_type != 'compute.instance.update'
                or ev.trait('project_id') or ev.trait('tenant_id')):
            return ev
        instance = self.topology.get(ev.trait('instance_id') or '')
        if instance is None:
            return ev
        text = event_model.TraitType.TEXT
        return dataclasses.replace(ev, traits=ev.traits + [
            event_model.Trait('project_id', text, instance.project_id),
            event_model.Trait('tenant_id', text, instance.project_id)])

    def _publish(self, events: typing.Sequence[event_model.Event],
                 reports: typing.Sequence[event_model.Event]) -> None:
        """Publish ``events``, derived from ``reports``.

        :raises DeliveryError: if a notifier failed; the hosts of
            ``reports`` are then forgotten, so that the report's retry is
            not dropped as a repeat
        """
        failures = self.pipeline.publish(events)
        if not failures:
            return
        for ev in reports:
            if ev.event_type in _HOST_STATES and ev.trait('host'):
                self.hosts.discard(ev.trait('host'))
        raise exceptions.DeliveryError(
            'could not publish to ' + ', '.join(
                f'{urls.redact(url)} ({exc})'
                for url, exc in failures.items()))

    def _release_held(self, ev: event_model.Event) -> None:
        """Publish a recovery the correlation held back while flapping."""
        try:
            with self.activity:
                self._process([ev], correlate=False)
        except exceptions.DeliveryError as exc:
            LOG.error('Could not publish the held recovery of host %s: %s',
                      ev.trait('host'), exc)

    def fan_out(self, host_event: event_model.Event,
                instances: typing.Sequence[topology_mod.Instance] | None
                = None) -> list[event_model.Event]:
        """The per-tenant (and, for a failure, per-instance) events."""
        if instances is None:
            host = host_event.trait('host')
            instances = self.topology.instances_on(host) if host else ()
        events = self.tenant_events(host_event, instances)
        if self._has_instance_events(host_event):
            events.extend(self._instance_events(host_event, instances))
        return events

    def _has_instance_events(self, host_event: event_model.Event) -> bool:
        """Whether ``host_event`` gets one error event per instance."""
        return (host_event.event_type == 'compute.host.down'
                and self.conf.inspector.instance_events)

    def tenant_events(self, host_event: event_model.Event,
                      instances: typing.Sequence[topology_mod.Instance],
                      log: bool = True) -> list[event_model.Event]:
        """One event per affected tenant, listing its instances.

        :param log: log what was affected; False when the caller logs a
            batch's hosts in one line (:meth:`_process`)
        """
        host = host_event.trait('host')
        grouped: dict[str, list[topology_mod.Instance]] = {}
        for inst in instances:
            grouped.setdefault(inst.project_id, []).append(inst)
        if not grouped:
            if host and log:
                LOG.info('%s for host %s: no instances known on it',
                         host_event.event_type, host)
            return []
        base = [t for t in host_event.traits
                if t.name not in ('project_id', 'instance_ids',
                                  'instance_count')]
        text, integer = event_model.TraitType.TEXT, event_model.TraitType.INT
        events = [event_model.Event(
            message_id=_derived_id(host_event, project_id),
            event_type=host_event.event_type,
            generated=host_event.generated,
            traits=base + [
                event_model.Trait('project_id', text, project_id),
                event_model.Trait('instance_ids', text,
                                  ','.join(i.id for i in members)),
                event_model.Trait('instance_count', integer,
                                  len(members))],
            raw={}) for project_id, members in grouped.items()]
        if log:
            LOG.info('%s for host %s: %d instance(s) of %d tenant(s) '
                     'affected', host_event.event_type, host,
                     len(instances), len(grouped))
        return events

    @staticmethod
    def _instance_events(host_event: event_model.Event,
                         instances: typing.Sequence[topology_mod.Instance]
                         ) -> list[event_model.Event]:
        text = event_model.TraitType.TEXT
        shared = [event_model.Trait('state', text, 'error'),
                  event_model.Trait('host', text, host_event.trait('host'))]
        for name in ('monitor_event_id', 'monitor', 'severity'):
            value = host_event.trait(name)
            if value is not None:
                shared.append(event_model.Trait(name, text, value))
        return [event_model.Event(
            message_id=_derived_id(host_event, inst.id),
            event_type='compute.instance.update',
            generated=host_event.generated,
            traits=shared + [
                event_model.Trait('instance_id', text, inst.id),
                event_model.Trait('tenant_id', text, inst.project_id),
                event_model.Trait('project_id', text, inst.project_id)],
            raw={}) for inst in instances]

    def _query_power(self, host: str) -> None:
        """Read ``host``'s power state; off confirms its suspicion."""
        reader = self._power_state
        if reader is None:
            return

        def query() -> None:
            state = reader(host)
            LOG.info('Suspect host %s: its BMC says power %s', host, state)
            if state != 'off':
                return
            verdict = self.detection.confirm(host, detection.POWER_STATE)
            if verdict.forward is not None:
                self._handle_confirmed(verdict.forward)

        threading.Thread(target=query, daemon=True,
                         name=f'doctor-power-{host}').start()

    def _handle_confirmed(self, ev: event_model.Event) -> None:
        """Act on a failure a signal confirmed after its report."""
        try:
            with self.activity:
                self._process([ev], correlate=True)
        except exceptions.DeliveryError as exc:
            LOG.error('Could not publish the confirmed failure of host %s: '
                      '%s', ev.trait('host'), exc)

    def _expire_suspicions(self) -> None:
        """Clear suspicions no standing report keeps, until closed."""
        step = min(1.0, self.detection.suspect_timeout / 10)
        while not self._stopping.wait(step):
            cleared = self.detection.expire()
            if not cleared:
                continue
            try:
                with self.activity:
                    self._publish(cleared, ())
            except exceptions.DeliveryError as exc:
                LOG.error('Could not publish %d cleared suspicion(s): %s',
                          len(cleared), exc)

    def close(self) -> None:
        self._stopping.set()
        self.hosts.close()


def _log_fan_out(fanned: typing.Sequence[
        tuple[event_model.Event, int, int]]) -> None:
    """Log a batch's host events in one line: (event, instances, tenants).

    One line per batch, naming the first :data:`MAX_LOGGED_HOSTS` hosts:
    a line per host event cost a fifth of the inspector's CPU under a
    sustained stream of reports (B5), more than transforming them.
    """
    shown = [f'{ev.event_type} for host {ev.trait("host")}: '
             f'{instances} instance(s) of {tenants} tenant(s) affected'
             for ev, instances, tenants in fanned[:MAX_LOGGED_HOSTS]]
    more = len(fanned) - len(shown)
    LOG.info('%s%s', '; '.join(shown),
             f'; and {more} more host event(s)' if more > 0 else '')


def _observed(ev: event_model.Event) -> datetime.datetime | None:
    """When the source of ``ev`` saw the state it reports (``time``)."""
    when = ev.trait('time')
    return when if isinstance(when, datetime.datetime) else None


def _derived_id(host_event: event_model.Event, key: str) -> str:
    """A stable id for an event derived from ``host_event``.

    ``str(uuid.uuid5(_FANOUT_NAMESPACE, f'{message_id}/{key}'))``, without
    building a UUID object: a failed host derives one id per instance, and
    the object cost four fifths of the 7 µs each took.
    """
    digest = bytearray(hashlib.sha1(
        _FANOUT_NAMESPACE_BYTES
        + f'{host_event.message_id}/{key}'.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0f) | 0x50
    digest[8] = (digest[8] & 0x3f) | 0x80
    h = digest.hex()
    return f'{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}'
