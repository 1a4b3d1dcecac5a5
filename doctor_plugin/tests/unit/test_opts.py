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

"""Tests for doctor_plugin.opts: options are registered in one place."""

import ast
import os

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from doctor_plugin.alarms import evaluator
from doctor_plugin.common import plugins
from doctor_plugin import event
from doctor_plugin.inspector import api
from doctor_plugin.inspector import auth
from doctor_plugin.inspector import correlation
from doctor_plugin.inspector import engine
from doctor_plugin.inspector import listener
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin.listener import service as listener_service
from doctor_plugin import monitors
from doctor_plugin.monitors import heartbeat
from doctor_plugin.monitors import reporter
from doctor_plugin.monitors import tcp
from doctor_plugin.notifiers import log
from doctor_plugin.notifiers import messaging as messaging_notifier
from doctor_plugin.notifiers import webhook
from doctor_plugin.nova import client as nova
from doctor_plugin import opts
from doctor_plugin.testing import nova as nova_standin
from doctor_plugin.tests import alarm_files
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.inspector import test_service
from doctor_plugin.topology import nova as nova_topology
from doctor_plugin.transformers import alertmanager
from doctor_plugin.transformers import nova_service

PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
ETC = os.path.join(os.path.dirname(PACKAGE), 'etc', 'doctor_plugin')

#: The modules that may register options, relative to the package.
#: opts.py registers everything, for our commands; the integrations run
#: inside aodh-notifier and ceilometer-agent-notification, which never
#: call our prepare_service, so they register what they read themselves.
MAY_REGISTER = ('opts.py', 'integrations/')

REGISTER_CALLS = frozenset({'register_opt', 'register_opts',
                            'register_cli_opt', 'register_cli_opts'})


def registered(conf) -> set[tuple[str, str]]:
    """(group, option) of every option registered on ``conf``."""
    names = set()
    for key in conf:
        value = conf[key]
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            names.update((key, name) for name in value)
        else:
            names.add(('DEFAULT', key))
    return names


class TestOnlyRegisterAllRegisters(base.TestCase):
    """Library code reads options; only opts.register_all registers them."""

    def test_no_library_module_calls_register_opts(self):
        found = []
        for root, dirs, files in os.walk(PACKAGE):
            rel_root = os.path.relpath(root, PACKAGE)
            if rel_root.split(os.sep)[0] == 'tests':
                dirs[:] = []
                continue
            for name in files:
                if not name.endswith('.py'):
                    continue
                rel = os.path.normpath(os.path.join(rel_root, name)).replace(
                    os.sep, '/')
                if rel.startswith(MAY_REGISTER):
                    continue
                with open(os.path.join(root, name), encoding='utf-8') as f:
                    tree = ast.parse(f.read(), rel)
                found.extend(
                    f'{rel}:{node.lineno}' for node in ast.walk(tree)
                    if isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in REGISTER_CALLS)
        self.assertEqual([], found,
                         'declare options in the module and list them in '
                         'doctor_plugin/opts.py; opts.register_all '
                         'registers them')


class TestServicesRegisterNothing(test_service.ServiceTestCase):
    """What our services construct and start adds no option to the conf."""

    def setUp(self):
        super().setUp()
        self.before = registered(self.conf)
        self.assertIn(('inspector', 'port'), self.before)

    def assertNothingRegistered(self):
        """No option was added to any group of ours.

        Except those of the auth plugin ``[nova]`` or ``[monitor_auth]``
        names, which keystoneauth1 registers when it loads the plugin.
        Libraries' own groups (oslo.policy's, keystonemiddleware's) are
        theirs to register in.
        """
        ours = {group for group, _ in opts.list_opts()}
        allowed = {
            (group, o.dest)
            for group in (nova.GROUP, reporter.AUTH_GROUP)
            if self.conf[group].auth_type
            for o in ks_loading.get_auth_plugin_conf_options(
                self.conf[group].auth_type)}
        added = {(group, name)
                 for group, name in registered(self.conf) - self.before
                 if group in ours} - allowed
        self.assertEqual(set(), added)

    def test_inspector_with_nova_and_its_bus_listener(self):
        standin = nova_standin.NovaStandIn().start()
        self.addCleanup(standin.stop)
        self.nova_options(standin)
        self.set_opts(group='inspector', enable_notification_listener=True)
        self.start(self.make_service())
        self.assertNothingRegistered()

    def test_inspector_from_its_files(self):
        self.set_opts(pipeline_cfg_file=os.path.join(ETC, 'pipeline.yaml'))
        self.set_opts(group=evaluator.GROUP,
                      definitions_file=os.path.join(ETC, 'alarms.yaml'))
        service = inspector_service.InspectorService(self.conf)
        self.addCleanup(service.pipeline.close)
        self.assertNothingRegistered()

    def test_alarm_listener(self):
        path = alarm_files.write_tenant_alarms(
            self.state_path, 'http://127.0.0.1:9/', 'vm-1', 'tenant-a')
        self.set_opts(group=evaluator.GROUP, definitions_file=path)
        alarm_listener = listener_service.AlarmListener.from_conf(self.conf)
        alarm_listener.start()
        alarm_listener.stop()
        self.assertNothingRegistered()

    def test_every_plugin(self):
        for name in plugins.available(plugins.TRANSFORMERS_NAMESPACE):
            plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE, name,
                                self.conf)
        for url in ('log://', 'http://127.0.0.1:9/', 'https://127.0.0.1:9/',
                    'messaging://?topic=t'):
            plugins.load_notifier(self.conf, url).close()
        self.set_opts(group=heartbeat.GROUP, listen='127.0.0.1:0',
                      detectors=['127.0.0.1:9'])
        self.set_opts(group=tcp.GROUP, hosts=['compute-1=127.0.0.1:9'])
        for name in plugins.available(plugins.MONITORS_NAMESPACE):
            monitor = plugins.load_driver(plugins.MONITORS_NAMESPACE, name,
                                          self.conf, lambda report: None)
            if getattr(monitor, 'sock', None) is not None:
                monitor.sock.close()
        heartbeat.HeartbeatSender.from_conf(self.conf).close()
        for report_to in ('http', 'bus'):
            self.set_opts(group=reporter.GROUP, report_to=report_to)
            reporter.make_reporter(self.conf).close()
        self.assertNothingRegistered()


class TestListOpts(base.TestCase):

    def test_each_module_is_listed_in_its_group(self):
        listed = {(group, id(opt)) for group, options in opts.list_opts()
                  for opt in options}
        for group, options in (
                (api.GROUP, api.OPTS), (auth.GROUP, auth.OPTS),
                (correlation.GROUP, correlation.OPTS),
                (engine.GROUP, engine.OPTS), (listener.GROUP, listener.OPTS),
                (inspector_service.GROUP, inspector_service.OPTS),
                (event.LIMIT_GROUP, event.LIMIT_OPTS),
                (nova_topology.GROUP, nova_topology.OPTS),
                (alertmanager.GROUP, alertmanager.OPTS),
                (nova_service.GROUP, nova_service.OPTS),
                (nova.GROUP, nova.OPTS),
                (listener_service.GROUP, listener_service.OPTS),
                (evaluator.GROUP, evaluator.OPTS),
                (log.GROUP, log.OPTS), (webhook.GROUP, webhook.OPTS),
                (messaging_notifier.GROUP, messaging_notifier.OPTS),
                (monitors.GROUP, monitors.OPTS), (tcp.GROUP, tcp.OPTS),
                (reporter.GROUP, reporter.OPTS),
                (heartbeat.GROUP, heartbeat.OPTS)):
            for opt in options:
                self.assertIn((group, id(opt)), listed, opt.name)

    def test_register_all_twice_is_harmless(self):
        before = registered(self.conf)
        opts.register_all(self.conf)
        self.assertEqual(before, registered(self.conf))

    def test_registers_no_auth_plugin_options(self):
        # keystoneauth1 registers the plugin's when it loads it: with the
        # password plugin's up front, auth_url would be required even with
        # auth_type = none.
        names = registered(self.conf)
        self.assertIn((nova.GROUP, 'auth_type'), names)
        self.assertNotIn((nova.GROUP, 'auth_url'), names)
        self.assertNotIn((reporter.AUTH_GROUP, 'auth_url'), names)
