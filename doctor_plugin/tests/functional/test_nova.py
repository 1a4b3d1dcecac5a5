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

"""The Doctor chain with the Nova controller and live topology, over RabbitMQ.

The inspector loads its topology from an in-process Nova stand-in, follows
the stand-in's versioned notifications on the real broker, tells every
tenant over the bus and then fixes Nova up: the failed host's compute
service forced down, its servers set to error.
"""

import concurrent.futures
import threading
import time

from doctor_plugin.common import profiler
from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin.testing import broker
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.tests.functional import base

#: Seconds for every tenant's alarm (Doctor's target is one second).
ALARM_TIMEOUT = 10.0
#: Seconds for a fix-up of a Nova that answers.
FIXUP_TIMEOUT = 15.0


class WatchedTimeline(profiler.Timeline):
    """A timeline that also says which faults the inspector took in.

    The inspector marks T06 for every event it transforms, before it
    correlates it, including those of Nova's own ``service.update``
    notifications, whose fault ids the test cannot know in advance.
    """

    def __init__(self) -> None:
        super().__init__()
        self._transformed: list[str] = []
        self._cond = threading.Condition()

    def mark(self, fault_id: str | None, checkpoint: str,
             when: float | None = None) -> None:
        super().mark(fault_id, checkpoint, when)
        if checkpoint == 'T06' and fault_id:
            with self._cond:
                self._transformed.append(fault_id)
                self._cond.notify_all()

    def wait_for_other(self, known: set, timeout: float) -> str | None:
        """The first fault not in ``known`` taken in within ``timeout``."""
        def other():
            return next((f for f in self._transformed if f not in known),
                        None)
        with self._cond:
            self._cond.wait_for(other, timeout)
            return other()


class TestNovaChainOverRabbit(base.FunctionalTestCase):

    def _chain(self, **kwargs) -> chain_mod.Chain:
        topic = f'versioned_notifications.test-{self.run_id}'
        self.settings = chain_mod.ChainSettings(
            transport_url=base.TRANSPORT_URL, nova=True, nova_topic=topic,
            event_topic=f'alarm.test-{self.run_id}', **kwargs)
        self.timeline = WatchedTimeline()
        chain = chain_mod.Chain(self.settings, self.timeline)
        # The stand-in's notifier declares the queues of the topic it
        # sends to; the chain deletes only those of its own listeners.
        # (Cleanups run last first: these go after chain.stop.)
        self.addCleanup(broker.delete_queues, base.TRANSPORT_URL,
                        broker.listener_queue_names([topic]))
        # Read by the client and the controller at each call, so they
        # apply although the controller exists already.
        chain.conf.set_override('retry_backoff', 0.05, group='nova')
        chain.conf.set_override('request_timeout', 1.0, group='nova')
        chain.conf.set_override('fixup_deadline', 60.0, group='nova')
        chain.start()
        self.addCleanup(chain.stop)
        return chain

    def _reporter(self, chain: chain_mod.Chain
                  ) -> reporter_mod.InspectorReporter:
        reporter = reporter_mod.InspectorReporter(chain.conf)
        self.addCleanup(reporter.close)
        return reporter

    def _report(self, chain: chain_mod.Chain, host: str, status: str,
                reporter: reporter_mod.InspectorReporter | None = None
                ) -> monitor_base.FaultReport:
        fault = monitor_base.FaultReport(host, status, 'functional',
                                         detected_at=time.time())
        self.timeline.mark(fault.monitor_event_id, 'T01', fault.detected_at)
        (reporter or self._reporter(chain))(fault)
        return fault

    def _servers(self, host: str | None = None) -> list[str]:
        return [i.id for i in chain_mod.placement(self.settings)
                if host is None or i.host == host]

    def _statuses(self, chain: chain_mod.Chain, server_ids) -> set[str]:
        return {chain.nova.server(s)['status'] for s in server_ids}

    def _assert_alarms(self, chain: chain_mod.Chain,
                       fault: monitor_base.FaultReport) -> list:
        tenants = self.settings.tenants
        alarms = chain.consumer.wait_for(tenants, timeout=ALARM_TIMEOUT)
        self.assertEqual(
            [f'/tenants/tenant-{t:03d}' for t in range(tenants)],
            sorted(a.path for a in alarms))
        self.assertEqual({fault.monitor_event_id},
                         {a.trait('monitor_event_id') for a in alarms})
        return alarms

    def _assert_fixed_up(self, chain: chain_mod.Chain, result, host: str,
                         total: int) -> None:
        self.assertEqual('success', result.outcome, result.error)
        self.assertEqual('force_down', result.action)
        self.assertEqual(host, result.host)
        self.assertEqual(total, result.instances_total)
        self.assertEqual(total, result.instances_reset)
        self.assertEqual(0, result.instances_failed)
        self.assertEqual('', result.error)
        self.assertTrue(chain.nova.service(host)['forced_down'])

    def test_host_fault_tenants_told_then_nova_fixed_up(self):
        chain = self._chain(vms=20, tenants=4)
        topology = chain.inspector.engine.topology
        self.assertEqual(20, len(topology.instances_on('compute-0')))
        fault = self._report(chain, 'compute-0', 'down')
        alarms = self._assert_alarms(chain, fault)
        for alarm in alarms:
            self.assertEqual(5, alarm.trait('instance_count'))
            self.assertEqual('compute-0', alarm.trait('host'))
        result = chain.controller.wait(fault.monitor_event_id,
                                       FIXUP_TIMEOUT)
        self._assert_fixed_up(chain, result, 'compute-0', 20)
        self.assertEqual({'ERROR'}, self._statuses(chain, self._servers()))
        # Tenants first: the fix-up starts once the fan-out is published.
        marks = self.timeline.marks(fault.monitor_event_id)
        self.assertLessEqual(marks['T05'], result.started)
        self.assertLessEqual(result.started, marks['T03'])
        self.assertLessEqual(result.started, marks['T04'])
        self.assertLessEqual(max(marks['T03'], marks['T04']),
                             result.finished)

    def test_recovery_unforces_host_and_leaves_servers_in_error(self):
        chain = self._chain(vms=20, tenants=4)
        reporter = self._reporter(chain)
        down = self._report(chain, 'compute-0', 'down', reporter)
        self._assert_alarms(chain, down)
        self._assert_fixed_up(
            chain, chain.controller.wait(down.monitor_event_id,
                                         FIXUP_TIMEOUT), 'compute-0', 20)
        # Nova announces the forced-down service on the bus; the inspector
        # drops it as a repeat, but only while the host is still down.
        echo = self.timeline.wait_for_other({down.monitor_event_id}, 5.0)
        self.assertIsNotNone(echo, "the inspector did not receive Nova's "
                                   "service.update of the forced-down host")
        up = self._report(chain, 'compute-0', 'up', reporter)
        result = chain.controller.wait(up.monitor_event_id, FIXUP_TIMEOUT)
        self.assertEqual('success', result.outcome, result.error)
        self.assertEqual('unforce', result.action)
        self.assertEqual(0, result.instances_total)
        self.assertFalse(chain.nova.service('compute-0')['forced_down'])
        self.assertEqual({'ERROR'}, self._statuses(chain, self._servers()))

    def test_rack_fault_every_tenant_and_every_host_fixed_up(self):
        chain = self._chain(hosts=8, vms=25, tenants=20, tenants_per_host=5,
                            repeat_actions=True)
        hosts = chain_mod.host_names(self.settings)
        reporters = [self._reporter(chain) for _ in hosts]
        detected_at = time.time()
        faults = [monitor_base.FaultReport(host, 'down', 'functional',
                                           detected_at=detected_at)
                  for host in hosts]
        for fault in faults:
            self.timeline.mark(fault.monitor_event_id, 'T01', detected_at)
        with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
            for future in [pool.submit(reporter, fault) for reporter, fault
                           in zip(reporters, faults)]:
                future.result()
        placed = chain_mod.placement(self.settings)
        expected = {(f.monitor_event_id, f'/tenants/{i.project_id}')
                    for f in faults for i in placed if i.host == f.hostname}
        self.assertEqual(8 * 5, len(expected))
        alarms = chain.consumer.wait_for(len(expected),
                                         timeout=ALARM_TIMEOUT)
        self.assertEqual(
            sorted(expected),
            sorted((a.trait('monitor_event_id'), a.path) for a in alarms))
        for fault in faults:
            result = chain.controller.wait(fault.monitor_event_id,
                                           FIXUP_TIMEOUT)
            self._assert_fixed_up(chain, result, fault.hostname, 25)
        self.assertEqual({'ERROR'}, self._statuses(chain, self._servers()))

    def test_nova_down_tenants_told_fixup_done_when_it_returns(self):
        chain = self._chain(vms=20, tenants=4)
        chain.nova.go_down('refuse')
        fault = self._report(chain, 'compute-0', 'down')
        self._assert_alarms(chain, fault)
        self.assertRaises(TimeoutError, chain.controller.wait,
                          fault.monitor_event_id, 0.5)
        self.assertFalse(chain.nova.service('compute-0')['forced_down'])
        self.assertEqual({'ACTIVE'}, self._statuses(chain, self._servers()))
        chain.nova.come_back()
        result = chain.controller.wait(fault.monitor_event_id,
                                       FIXUP_TIMEOUT)
        self._assert_fixed_up(chain, result, 'compute-0', 20)
        self.assertEqual({'ERROR'}, self._statuses(chain, self._servers()))

    def test_instance_created_on_the_bus_is_in_the_fan_out(self):
        chain = self._chain(vms=20, tenants=4)
        topology = chain.inspector.engine.topology
        chain.nova.add_server('vm-live-000', 'tenant-live', 'compute-0',
                              name='vnf-live')
        chain.nova.emit_instance_update('vm-live-000', 'instance.create.end')
        deadline = time.monotonic() + 5.0
        while (topology.get('vm-live-000') is None
               and time.monotonic() < deadline):
            time.sleep(0.02)
        live = topology.get('vm-live-000')
        self.assertIsNotNone(live, 'the instance.create.end notification '
                                   'did not reach the topology in 5 s')
        self.assertEqual(('compute-0', 'tenant-live'),
                         (live.host, live.project_id))
        fault = self._report(chain, 'compute-0', 'down')
        self._assert_alarms(chain, fault)
        result = chain.controller.wait(fault.monitor_event_id,
                                       FIXUP_TIMEOUT)
        self._assert_fixed_up(chain, result, 'compute-0', 21)
        self.assertEqual('ERROR', chain.nova.server('vm-live-000')['status'])
