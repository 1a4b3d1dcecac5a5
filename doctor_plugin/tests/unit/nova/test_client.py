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

"""Tests of the Nova client against a real Nova API stand-in.

Every request goes over loopback HTTP to ``doctor_plugin.testing.nova``
through keystoneauth1, exactly as in a deployment: microversion
negotiation, retries, timeouts and auth failures are the real ones.
"""

import time

import fixtures
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from doctor_plugin import exceptions
from doctor_plugin.nova import client as nova
from doctor_plugin import opts
from doctor_plugin.testing import config
from doctor_plugin.testing import nova as nova_standin
from doctor_plugin.tests import base

HOST = 'compute-1'


class NovaStandInFixture(fixtures.Fixture):
    """A Nova API stand-in on 127.0.0.1, stopped at cleanup."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = kwargs

    def _setUp(self) -> None:
        self.nova = nova_standin.NovaStandIn(**self.kwargs)
        self.nova.start()
        self.addCleanup(self.nova.stop)


def calls_to(standin, method, path_prefix, at_least=1, timeout=2.0):
    """``standin.calls_to(...)`` once ``at_least`` calls are recorded.

    For calls made by background threads (the controller's), which may
    not all have been sent when the test looks.
    """
    deadline = time.monotonic() + timeout
    while True:
        calls = standin.calls_to(method, path_prefix)
        if len(calls) >= at_least or time.monotonic() > deadline:
            return calls
        time.sleep(0.01)


def configure(test, standin, token=None, **overrides) -> None:
    """Point ``test.conf``'s ``[nova]`` at ``standin``, fast and bounded.

    With ``token``, keystoneauth's admin_token plugin sends it; without,
    its ``none`` plugin (which sends no valid token).
    """
    opts = dict(endpoint_override=standin.compute_url, request_timeout=1.0,
                retries=2, retry_backoff=0.01, fixup_deadline=10.0)
    if token is None:
        opts['auth_type'] = 'none'
    else:
        # keystoneauth1 registers a plugin's options when it loads it;
        # overridden before, they are registered here as it would.
        test.conf.register_opts(
            ks_loading.get_auth_plugin_conf_options('admin_token'),
            group=nova.GROUP)
        opts.update(auth_type='admin_token', token=token,
                    endpoint=standin.compute_url)
    opts.update(overrides)
    test.set_opts('nova', **opts)


def make_client(test, standin, token=None, **overrides) -> nova.NovaClient:
    configure(test, standin, token, **overrides)
    client = nova.NovaClient(test.conf)
    test.addCleanup(client.close)
    return client


class TestOptions(base.TestCase):

    def test_list_opts_has_ours_keystoneauths_and_no_duplicates(self):
        names = [opt.dest for opt in nova.list_opts()]
        self.assertEqual(len(names), len(set(names)))
        for name in ('request_timeout', 'retries', 'retry_backoff',
                     'max_parallel_resets', 'fixup_deadline',
                     'auth_type', 'auth_url', 'username', 'password',
                     'project_name', 'user_domain_name',
                     'project_domain_name', 'cafile', 'insecure', 'timeout',
                     'region_name', 'valid_interfaces', 'endpoint_override',
                     'service_type'):
            self.assertIn(name, names)
        password = [o for o in nova.list_opts() if o.dest == 'password']
        self.assertTrue(password[0].secret)

    def test_defaults(self):
        self.assertEqual('compute', self.conf.nova.service_type)
        self.assertEqual(5.0, self.conf.nova.request_timeout)
        self.assertEqual(3, self.conf.nova.retries)
        self.assertEqual(0.2, self.conf.nova.retry_backoff)
        self.assertEqual(16, self.conf.nova.max_parallel_resets)
        self.assertEqual(300.0, self.conf.nova.fixup_deadline)

    def test_list_opts_and_the_registered_ones_do_not_conflict(self):
        # The generator's list (with the password plugin's options) and
        # what register_all registered: one option object per name.
        self.conf.register_opts(nova.list_opts(), group=nova.GROUP)
        opts.register_all(self.conf)

    def test_missing_auth_type_is_a_configuration_error(self):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                nova.NovaClient, self.conf)
        self.assertIn('auth_type', str(exc))

    def _conf_from_file(self, text: str) -> cfg.ConfigOpts:
        """A service's configuration, read from a file as in deployment."""
        path = self.useFixture(fixtures.TempDir()).join('doctor.conf')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        conf = self.useFixture(config.ConfFixture()).conf
        conf(['--config-file', path], project='doctor_plugin',
             default_config_files=[])
        return conf

    def test_password_plugin_without_auth_url_is_a_configuration_error(self):
        conf = self._conf_from_file('[nova]\nauth_type = password\n'
                                    'username = doctor\n'
                                    'password = s3cret\n')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                nova.NovaClient, conf)
        self.assertIn('auth_url', str(exc))
        self.assertNotIn('s3cret', str(exc))

    def test_password_plugin_options_are_read_from_the_file(self):
        conf = self._conf_from_file(
            '[nova]\nauth_type = password\n'
            'auth_url = http://127.0.0.1:5000/v3\nusername = doctor\n'
            'password = s3cret\nproject_name = service\n'
            'user_domain_name = Default\nproject_domain_name = Default\n')
        client = nova.NovaClient(conf)
        self.addCleanup(client.close)
        self.assertEqual('doctor', conf.nova.username)

    def test_auth_type_none_needs_no_auth_url(self):
        # Registering every option up front (as the services do) must not
        # make the password plugin's auth_url required.
        conf = self._conf_from_file('[nova]\nauth_type = none\n'
                                    'endpoint_override = '
                                    'http://127.0.0.1:8774/v2.1\n')
        client = nova.NovaClient(conf)
        self.addCleanup(client.close)


class TestMicroversions(base.TestCase):

    def test_discovered_once_and_cached(self):
        standin = self.useFixture(NovaStandInFixture()).nova
        client = make_client(self, standin)
        self.assertEqual((2, 96), client.max_microversion())
        before = len(standin.calls)
        self.assertEqual((2, 96), client.max_microversion())
        self.assertEqual(before, len(standin.calls))

    def test_rediscovered_after_a_failure(self):
        standin = self.useFixture(NovaStandInFixture()).nova
        client = make_client(self, standin, retries=0)
        client.max_microversion()
        standin.go_down('refuse')
        self.assertRaises(exceptions.NovaUnavailable, client.reset_state,
                          'gone')
        standin.come_back()
        before = len(standin.calls)
        self.assertEqual((2, 96), client.max_microversion())
        self.assertGreater(len(standin.calls), before)

    def test_force_down_by_service_uuid_from_2_53(self):
        standin = self.useFixture(NovaStandInFixture()).nova
        standin.add_service(HOST)
        client = make_client(self, standin)
        client.force_down(HOST)
        self.assertTrue(standin.service(HOST)['forced_down'])
        puts = calls_to(standin, 'PUT', '/v2.1/os-services')
        self.assertEqual(1, len(puts))
        self.assertNotIn('force-down', puts[0].path)
        self.assertEqual('2.53', puts[0].microversion)
        gets = calls_to(standin, 'GET', '/v2.1/os-services')
        self.assertEqual(['2.53'], [c.microversion for c in gets])

    def test_service_uuid_is_cached(self):
        standin = self.useFixture(NovaStandInFixture()).nova
        standin.add_service(HOST)
        client = make_client(self, standin)
        client.force_down(HOST)
        client.force_down(HOST, down=False)
        client.force_down(HOST)
        self.assertEqual(
            3, len(calls_to(standin, 'PUT', '/v2.1/os-services', 3)))
        self.assertEqual(1, len(standin.calls_to('GET', '/v2.1/os-services')))

    def test_unforce(self):
        standin = self.useFixture(NovaStandInFixture()).nova
        standin.add_service(HOST)
        client = make_client(self, standin)
        client.force_down(HOST)
        client.force_down(HOST, down=False)
        self.assertFalse(standin.service(HOST)['forced_down'])

    def test_force_down_at_2_11_when_nova_is_older_than_2_53(self):
        standin = self.useFixture(
            NovaStandInFixture(max_version='2.52')).nova
        standin.add_service(HOST)
        client = make_client(self, standin)
        self.assertEqual((2, 52), client.max_microversion())
        client.force_down(HOST)
        self.assertTrue(standin.service(HOST)['forced_down'])
        puts = calls_to(standin, 'PUT', '/v2.1/os-services/force-down')
        self.assertEqual(['2.11'], [c.microversion for c in puts])
        self.assertEqual([], standin.calls_to('GET', '/v2.1/os-services'))
        client.force_down(HOST, down=False)
        self.assertFalse(standin.service(HOST)['forced_down'])

    def test_nova_too_old_to_force_down(self):
        standin = self.useFixture(
            NovaStandInFixture(max_version='2.10')).nova
        standin.add_service(HOST)
        client = make_client(self, standin)
        exc = self.assertRaises(exceptions.NovaError, client.force_down,
                                HOST)
        self.assertIn('2.11', str(exc))
        self.assertIn('2.10', str(exc))
        self.assertEqual([], standin.calls_to('PUT', '/v2.1/os-services'))
        self.assertEqual('up', standin.service(HOST)['state'])

    def test_unknown_host_is_named(self):
        standin = self.useFixture(NovaStandInFixture()).nova
        standin.add_service(HOST)
        client = make_client(self, standin)
        exc = self.assertRaises(exceptions.NovaError, client.force_down,
                                'compute-9')
        self.assertNotIsInstance(exc, exceptions.NovaUnavailable)
        self.assertIn('compute-9', str(exc))

    def test_unknown_host_at_2_11_is_named(self):
        standin = self.useFixture(
            NovaStandInFixture(max_version='2.52')).nova
        client = make_client(self, standin)
        exc = self.assertRaises(exceptions.NovaError, client.force_down,
                                'compute-9')
        self.assertIn('compute-9', str(exc))


class TestServers(base.TestCase):

    def setUp(self):
        super().setUp()
        self.standin = self.useFixture(NovaStandInFixture(page_limit=3)).nova

    def test_reset_state_sets_error(self):
        self.standin.add_server('vm-1', 'tenant-a', HOST)
        client = make_client(self, self.standin)
        self.assertTrue(client.reset_state('vm-1'))
        self.assertEqual('ERROR', self.standin.server('vm-1')['status'])
        (call,) = calls_to(self.standin, 'POST', '/v2.1/servers/vm-1/action')
        self.assertEqual('2.1', call.microversion)

    def test_reset_of_a_deleted_server_is_not_an_error(self):
        client = make_client(self, self.standin)
        self.assertFalse(client.reset_state('deleted-meanwhile'))
        self.assertEqual(1, len(calls_to(
            self.standin, 'POST', '/v2.1/servers/deleted-meanwhile')))

    def test_list_servers_follows_pages_and_filters_by_host(self):
        for i in range(7):
            self.standin.add_server(f'vm-{i}', f'tenant-{i % 2}', HOST)
        self.standin.add_server('other', 'tenant-0', 'compute-2')
        client = make_client(self, self.standin)
        servers = list(client.list_servers(HOST, page_size=100))
        self.assertEqual({f'vm-{i}' for i in range(7)},
                         {s['id'] for s in servers})
        self.assertEqual(7, len(servers))
        self.assertEqual(
            3, len(calls_to(self.standin, 'GET', '/v2.1/servers/detail', 3)))

    def test_list_all_servers(self):
        for i in range(4):
            self.standin.add_server(f'vm-{i}', 'tenant-a', f'compute-{i}')
        client = make_client(self, self.standin)
        self.assertEqual(4, len(list(client.list_servers(page_size=2))))


class TestFailures(base.TestCase):

    def setUp(self):
        super().setUp()
        self.standin = self.useFixture(NovaStandInFixture()).nova
        self.standin.add_server('vm-1', 'tenant-a', HOST)

    def resets(self, at_least=1):
        return calls_to(self.standin, 'POST', '/v2.1/servers/vm-1/action',
                        at_least)

    def test_5xx_then_success_is_retried(self):
        client = make_client(self, self.standin, retries=3)
        self.standin.fail_next(2, status=500, path_prefix='/v2.1/servers')
        self.assertTrue(client.reset_state('vm-1'))
        self.assertEqual([500, 500, 202],
                         [c.status for c in self.resets(3)])
        self.assertEqual('ERROR', self.standin.server('vm-1')['status'])

    def test_5xx_exhausted_is_unavailable(self):
        client = make_client(self, self.standin, retries=2)
        self.standin.fail_next(10, status=503, path_prefix='/v2.1/servers')
        exc = self.assertRaises(exceptions.NovaUnavailable,
                                client.reset_state, 'vm-1')
        self.assertIn('503', str(exc))
        self.assertEqual(3, len(self.resets(3)))

    def test_4xx_is_not_retried_and_carries_novas_message(self):
        client = make_client(self, self.standin, retries=3)
        self.standin.fail_next(1, status=409, path_prefix='/v2.1/servers')
        exc = self.assertRaises(exceptions.NovaError, client.reset_state,
                                'vm-1')
        self.assertNotIsInstance(exc, exceptions.NovaUnavailable)
        self.assertIn('409', str(exc))
        self.assertEqual(1, len(self.resets()))

    def test_timeout_is_retried_then_unavailable(self):
        client = make_client(self, self.standin, retries=1,
                             request_timeout=0.1)
        self.standin.set_latency(0.5)
        start = time.monotonic()
        self.assertRaises(exceptions.NovaUnavailable, client.reset_state,
                          'vm-1')
        self.assertLess(time.monotonic() - start, 0.9)
        self.assertEqual(2, len(self.resets(2)))

    def test_refused_connection_is_unavailable(self):
        client = make_client(self, self.standin, retries=1)
        self.standin.go_down('refuse')
        self.assertRaises(exceptions.NovaUnavailable, client.reset_state,
                          'vm-1')

    def test_hanging_nova_is_unavailable_within_the_timeouts(self):
        client = make_client(self, self.standin, retries=1,
                             request_timeout=0.1)
        self.standin.go_down('hang')
        start = time.monotonic()
        self.assertRaises(exceptions.NovaUnavailable, client.reset_state,
                          'vm-1')
        self.assertLess(time.monotonic() - start, 1.0)

    def test_an_outage_is_logged_once_and_its_end_too(self):
        logs = self.useFixture(fixtures.FakeLogger(level='INFO'))
        client = make_client(self, self.standin, retries=0)
        self.standin.go_down('refuse')
        for _ in range(3):
            self.assertRaises(exceptions.NovaUnavailable,
                              client.reset_state, 'vm-1')
        self.standin.come_back()
        self.assertTrue(client.reset_state('vm-1'))
        self.assertEqual(1, logs.output.count('Nova is unavailable'))
        self.assertEqual(1, logs.output.count('Nova answers again'))

    def test_forbidden_is_an_auth_error_not_retried(self):
        client = make_client(self, self.standin, retries=3)
        self.standin.fail_next(1, status=403, path_prefix='/v2.1/servers')
        exc = self.assertRaises(exceptions.NovaAuthError,
                                client.reset_state, 'vm-1')
        self.assertIn('[nova]', str(exc))
        self.assertIn('policy', str(exc))
        self.assertEqual(1, len(self.resets()))


class TestAuth(base.TestCase):

    def setUp(self):
        super().setUp()
        self.standin = self.useFixture(
            NovaStandInFixture(token='0p3n-s3same')).nova
        self.standin.add_server('vm-1', 'tenant-a', HOST)
        self.standin.add_service(HOST)

    def test_the_right_token_is_accepted(self):
        client = make_client(self, self.standin, token='0p3n-s3same')
        self.assertTrue(client.reset_state('vm-1'))
        client.force_down(HOST)
        self.assertTrue(self.standin.service(HOST)['forced_down'])

    def test_no_token_is_an_auth_error(self):
        client = make_client(self, self.standin, retries=3)
        exc = self.assertRaises(exceptions.NovaAuthError,
                                client.reset_state, 'vm-1')
        self.assertIn('[nova]', str(exc))
        self.assertEqual(1, len(calls_to(
            self.standin, 'POST', '/v2.1/servers/vm-1/action')))

    def test_a_wrong_token_is_an_auth_error_and_not_logged(self):
        logs = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        client = make_client(self, self.standin, token='wr0ng-t0ken')
        exc = self.assertRaises(exceptions.NovaAuthError,
                                client.force_down, HOST)
        self.assertNotIn('wr0ng-t0ken', str(exc))
        self.assertNotIn('wr0ng-t0ken', logs.output)
        self.assertFalse(self.standin.service(HOST)['forced_down'])
