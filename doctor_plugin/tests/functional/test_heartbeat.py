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

"""A real heartbeat agent killed: the tenants hear of it over RabbitMQ."""

import os
import subprocess
import sys
import threading
import time

import fixtures

from doctor_plugin.monitors import heartbeat
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.testing import netns
from doctor_plugin.tests import base as base_test
from doctor_plugin.tests.functional import base

#: From the kill to every tenant's alarm: two intervals of silence, a
#: quarter interval of the timer wheel, then the chain; a wide margin for
#: a loaded CI machine.
ALARM_BOUND = 1.0


class TestAgentKilled(base.FunctionalTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(90, gentle=True))
        self.dir = self.useFixture(fixtures.TempDir()).path
        settings = chain_mod.ChainSettings(
            transport_url=base.TRANSPORT_URL, vms=8, tenants=2,
            host='hb-compute', event_topic=f'alarm.hb-{self.run_id}',
            alarms_in='listener')
        self.chain = chain_mod.Chain(settings, self.timeline).start()
        self.addCleanup(self.chain.stop)
        conf = self.chain.conf
        conf.set_override('listen', '127.0.0.1:0', group='heartbeat')
        conf.set_override('startup_grace', 0.0, group='heartbeat')
        reporter = reporter_mod.InspectorReporter(conf)
        self.monitor = heartbeat.HeartbeatMonitor(conf, reporter,
                                                  timeline=self.timeline)
        stop = threading.Event()
        thread = threading.Thread(target=self.monitor.run, args=(stop,),
                                  daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(stop.set)
        self.monitor.started.wait(5)

    def agent(self):
        """Start a real doctor-plugin-heartbeat process for hb-compute."""
        path = os.path.join(self.dir, 'agent.conf')
        with open(path, 'w') as f:
            f.write('[heartbeat]\nhostname = hb-compute\n'
                    'detectors = 127.0.0.1:%d\n' % self.monitor.address[1])
        proc = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable),
                          'doctor-plugin-heartbeat'), '--config-file', path],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(),
                                                         proc.wait(5)))
        return proc

    def host_state(self, expected, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            host = self.monitor.detector.hosts.get('hb-compute')
            if host is not None and host.state == expected:
                return True
            time.sleep(0.02)
        return False

    def test_killed_agent_then_restarted(self):
        proc = self.agent()
        self.assertTrue(self.host_state('up'), 'the agent never came up')
        time.sleep(0.3)
        killed_at = time.time()
        proc.kill()
        proc.wait(5)
        alarms = self.chain.consumer.wait_for(2, timeout=10)
        self.assertEqual(['/tenants/tenant-000', '/tenants/tenant-001'],
                         sorted(a.path for a in alarms))
        last = max(a.received_at for a in alarms)
        self.assertLess(last - killed_at, ALARM_BOUND)
        self.assertEqual({'heartbeat'},
                         {a.trait('monitor') for a in alarms})
        # Restarted, the host is reported up and the inspector knows it.
        self.agent()
        self.assertTrue(self.host_state('up'))
        deadline = time.monotonic() + 10
        while (self.chain.inspector.engine.hosts.state('hb-compute') != 'up'
               and time.monotonic() < deadline):
            time.sleep(0.05)
        self.assertEqual('up',
                         self.chain.inspector.engine.hosts.state(
                             'hb-compute'))


class TestUnreachableDetector(base_test.TestCase):
    """A detector that cannot be reached must not stall the others'."""

    def test_sending_never_waits_for_it(self):
        self.require(netns.capability_problem())
        testbed = netns.Testbed(('management',)).start()
        self.addCleanup(testbed.close)
        agent, gone, alive = (testbed.add_node(name)
                              for name in ('agent', 'gone', 'alive'))
        receiver = alive.socket()
        receiver.bind((alive.address('management'), 12346))
        receiver.setblocking(False)
        self.addCleanup(receiver.close)
        # Its address cannot be resolved any more: what is sent to it
        # waits in the agent's neighbour queue.
        gone.cut_off()
        # One sender for many hosts, as the benchmark's: 400 datagrams a
        # second to each detector.
        with netns.entered(agent.namespace):
            sender = heartbeat.HeartbeatSender(
                [f'host-{i}' for i in range(20)],
                [(gone.address('management'), 12346),
                 (alive.address('management'), 12346)], 0.05)
        self.addCleanup(sender.close)
        durations = []

        def send():
            # At real-time priority, as agents run: what is timed is the
            # sending, not this machine's other work.
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(40))
            end = time.monotonic() + 10.0
            while time.monotonic() < end:
                started = time.monotonic()
                sender.send_once()
                durations.append(time.monotonic() - started)
                time.sleep(sender.interval)

        thread = threading.Thread(target=send)
        thread.start()
        thread.join(30)
        received = 0
        while True:
            try:
                receiver.recv(2048)
            except BlockingIOError:
                break
            received += 1
        # A blocking socket waited here for seconds, until the neighbour
        # queue of the unreachable detector was dropped.
        self.assertLess(max(durations), 0.1)
        self.assertGreater(sender.dropped, 0)
        self.assertGreater(received, 0)
