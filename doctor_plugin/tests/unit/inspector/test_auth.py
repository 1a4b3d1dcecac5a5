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

"""Tests for doctor_plugin.inspector.auth and the API's policy checks.

Every request goes over real HTTP to the inspector's WSGI app on a
loopback port; Keystone is the stand-in (a real HTTP server) behind the
real keystonemiddleware.
"""

import logging
import os

import fixtures
from oslo_policy import opts as policy_opts
import requests

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import api
from doctor_plugin.inspector import auth
from doctor_plugin.monitors import base as monitor_base
from doctor_plugin.monitors import reporter as reporter_mod
from doctor_plugin import policies
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.testing import config
from doctor_plugin.testing import keystone as keystone_standin
from doctor_plugin.tests.unit.inspector import test_api

TIMEOUT = 10


class AuthTestCase(test_api.APITestCase):

    def serve(self, **kwargs):
        """The inspector API on a loopback port; its base URL."""
        server = api.APIServer(self.make_app(**kwargs), '127.0.0.1',
                               0).start()
        self.addCleanup(server.stop)
        return server.url

    def put(self, url, headers=None, body=None):
        return requests.put(f'{url}/events', json=body or
                            test_api.doctor_body(), headers=headers,
                            timeout=TIMEOUT)

    def assertError(self, response, status, fragment):
        self.assertEqual(status, response.status_code, response.text)
        self.assertEqual('application/json',
                         response.headers['Content-Type'])
        error = response.json()['error']
        self.assertEqual(status, error['code'])
        self.assertIn(fragment, error['message'])
        return error


class TestSharedSecret(AuthTestCase):

    def test_the_secret_gets_in(self):
        url = self.serve()
        response = self.put(url, {'X-Auth-Token': self.secret})
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual(1, len(self.recorder.batches))

    def test_no_token_is_401_with_a_challenge_and_changes_nothing(self):
        url = self.serve()
        response = self.put(url)
        self.assertError(response, 401, 'there is no X-Auth-Token header')
        self.assertEqual('X-Auth-Token realm="doctor-plugin-inspector"',
                         response.headers['WWW-Authenticate'])
        self.assertEqual([], self.recorder.batches)

    def test_a_wrong_secret_is_401_and_not_echoed(self):
        url = self.serve()
        wrong = 'wrong-' + self.secret[:20]
        response = self.put(url, {'X-Auth-Token': wrong})
        self.assertError(response, 401, 'X-Auth-Token header is not valid')
        self.assertNotIn(wrong, response.text)
        self.assertNotIn(self.secret, response.text)
        self.assertEqual([], self.recorder.batches)

    def test_a_prefix_of_the_secret_is_refused(self):
        url = self.serve()
        for token in (self.secret[:-1], self.secret + 'x', '',
                      self.secret.upper()):
            response = self.put(url, {'X-Auth-Token': token})
            self.assertEqual(401, response.status_code, token)

    def test_a_non_ascii_token_is_refused(self):
        url = self.serve()
        response = self.put(url, {'X-Auth-Token': 'sécret'.encode()})
        self.assertEqual(401, response.status_code)

    def test_unknown_paths_and_methods_are_401_too(self):
        url = self.serve()
        response = requests.get(f'{url}/v1/secrets', timeout=TIMEOUT)
        self.assertError(response, 401, 'authentication required')
        self.assertNotIn('/events', response.text)
        response = requests.delete(f'{url}/events', timeout=TIMEOUT)
        self.assertEqual(401, response.status_code)

    def test_healthz_stays_open(self):
        url = self.serve()
        response = requests.get(f'{url}/healthz', timeout=TIMEOUT)
        self.assertEqual(200, response.status_code)
        self.assertEqual({'status': 'ok'}, response.json())

    def test_without_a_secret_the_inspector_refuses_to_start(self):
        self.set_opts(group='inspector', shared_secret=None)
        exc = self.assertRaises(exceptions.ConfigurationError,
                                self.make_app)
        self.assertIn('Set [inspector] shared_secret', str(exc))
        self.assertIn('[monitor] inspector_secret', str(exc))
        self.assertIn('auth_strategy = keystone', str(exc))

    def test_an_empty_secret_is_no_secret(self):
        self.set_opts(group='inspector', shared_secret='')
        self.assertRaises(exceptions.ConfigurationError, self.make_app)

    def test_a_short_secret_is_warned_about(self):
        self.set_opts(group='inspector', shared_secret='short')
        with self.assertLogs(auth.LOG.logger.name, 'WARNING') as logs:
            self.make_app()
        self.assertIn('shorter than 16 characters', logs.output[0])
        self.assertNotIn('short ', logs.output[0])

    def test_the_reporter_sends_the_monitors_secret(self):
        url = self.serve()
        self.set_opts(group='monitor', inspector_url=f'{url}/events',
                      report_retries=0)
        reporter = reporter_mod.InspectorReporter(self.conf)
        self.addCleanup(reporter.close)
        reporter(monitor_base.FaultReport('compute-1', 'down', 'test',
                                          detected_at=1.0e9))
        self.assertEqual(1, len(self.recorder.batches))

    def test_a_reporter_without_the_secret_is_refused(self):
        url = self.serve()
        self.set_opts(group='monitor', inspector_url=f'{url}/events',
                      report_retries=0, inspector_secret=None)
        reporter = reporter_mod.InspectorReporter(self.conf)
        self.addCleanup(reporter.close)
        exc = self.assertRaises(
            exceptions.DeliveryError, reporter,
            monitor_base.FaultReport('compute-1', 'down', 'test',
                                     detected_at=1.0e9))
        self.assertIn('HTTP 401', str(exc))
        self.assertIn('[monitor] inspector_secret', str(exc))
        self.assertEqual([], self.recorder.batches)


class TestNoAuth(AuthTestCase):

    def test_noauth_lets_everyone_in_and_says_so(self):
        self.set_opts(group='inspector', auth_strategy='noauth',
                      shared_secret=None)
        with self.assertLogs(auth.LOG.logger.name, 'WARNING') as logs:
            url = self.serve()
        self.assertIn('auth_strategy is noauth', logs.output[0])
        self.assertEqual(200, self.put(url).status_code)


class TestPolicy(AuthTestCase):

    def test_roles_the_policy_does_not_allow_get_403(self):
        self.set_opts(group='inspector', shared_secret_roles=['member'])
        url = self.serve()
        response = self.put(url, {'X-Auth-Token': self.secret})
        error = self.assertError(response, 403, policies.REPORT_EVENTS)
        self.assertIn('doctor_monitor', error['message'])
        self.assertEqual([], self.recorder.batches)

    def test_admin_may_report(self):
        self.set_opts(group='inspector', shared_secret_roles=['admin'])
        url = self.serve()
        response = self.put(url, {'X-Auth-Token': self.secret})
        self.assertEqual(200, response.status_code, response.text)

    def test_each_route_has_its_rule(self):
        self.assertEqual(policies.REPORT_CEILOMETER_EVENTS,
                         policies.rule_for('/events/ceilometer'))
        for path in ('/events', '/events/alertmanager', '/events/collectd',
                     '/events/libvirt'):
            self.assertEqual(policies.REPORT_EVENTS,
                             policies.rule_for(path))

    def test_the_ceilometer_route_takes_the_service_role(self):
        self.set_opts(group='inspector', shared_secret_roles=['service'])
        url = self.serve(routes=[('/events/ceilometer', 'PUT',
                                  'ceilometer')])
        headers = {'X-Auth-Token': self.secret}
        self.assertEqual(403, self.put(url, headers).status_code)
        response = requests.put(
            f'{url}/events/ceilometer', headers=headers, timeout=TIMEOUT,
            json=[event_model.Event.create('compute.host.down',
                                           {'host': 'compute-1'}).serialize()])
        self.assertEqual(200, response.status_code, response.text)

    def test_a_policy_file_overrides_the_defaults(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'policy.yaml')
        with open(path, 'w') as f:
            f.write('"doctor:events:report": "role:member"\n')
        policy_opts.set_defaults(self.conf)
        self.set_opts(group='oslo_policy', policy_file=path)
        self.set_opts(group='inspector', shared_secret_roles=['member'])
        url = self.serve()
        response = self.put(url, {'X-Auth-Token': self.secret})
        self.assertEqual(200, response.status_code, response.text)

    def test_every_rule_is_documented_and_loads(self):
        enforcer = policies.make_enforcer(self.conf)
        enforcer.load_rules()
        for rule in policies.list_rules():
            self.assertIn(rule.name, enforcer.rules)
            self.assertTrue(rule.description)


class TestSecretsNeverLogged(AuthTestCase):
    """At DEBUG, neither the secret nor a presented token reach the logs."""

    def test_no_secret_in_any_log_line(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG,
                                                   format='%(message)s'))
        bad_token = 'bad-token-0123456789abcdef0123456789'
        url = self.serve()
        self.set_opts(group='monitor', inspector_url=f'{url}/events',
                      report_retries=0)
        reporter = reporter_mod.InspectorReporter(self.conf)
        self.addCleanup(reporter.close)
        reporter(monitor_base.FaultReport('compute-1', 'down', 'test',
                                          detected_at=1.0e9))
        self.assertEqual(401, self.put(
            url, {'X-Auth-Token': bad_token}).status_code)
        self.assertEqual(200, self.put(
            url, {'X-Auth-Token': self.secret},
            body=test_api.doctor_body(host='compute-2')).status_code)
        # What a service logs of its configuration at start.
        self.conf.log_opt_values(logging.getLogger('test.conf'),
                                 logging.DEBUG)

        output = logs.output
        self.assertIn('Reported host compute-1 down', output)
        self.assertIn('X-Auth-Token header is not valid', output)
        self.assertIn('shared_secret', output)
        self.assertNotIn(self.secret, output)
        self.assertNotIn(bad_token, output)


class TestKeystone(AuthTestCase):
    """keystonemiddleware against the Keystone stand-in."""

    def setUp(self):
        super().setUp()
        self.keystone = keystone_standin.KeystoneStandIn().start()
        self.addCleanup(self.keystone.stop)
        # As an operator configures it: a file with [keystone_authtoken].
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'inspector.conf')
        with open(path, 'w') as f:
            f.write('[keystone_authtoken]\n')
            for name, value in self.keystone.authtoken_options().items():
                f.write(f'{name} = {value}\n')
        self.conf(['--config-file', path], project='doctor_plugin')
        self.use_private_state()
        self.set_opts(group='inspector', auth_strategy='keystone',
                      shared_secret=None)
        self.url = self.serve()

    def test_a_monitors_token_gets_in(self):
        token = self.keystone.issue_token(['doctor_monitor'])
        response = self.put(self.url, {'X-Auth-Token': token})
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual(1, len(self.recorder.batches))
        # The middleware got its own token, then validated ours.
        self.assertEqual(
            [('POST', '/v3/auth/tokens', 201),
             ('GET', '/v3/auth/tokens', 200)],
            [(c.method, c.path, c.status) for c in self.keystone.calls
             if c.path == '/v3/auth/tokens'])

    def test_a_members_token_is_403(self):
        token = self.keystone.issue_token(['member', 'reader'])
        response = self.put(self.url, {'X-Auth-Token': token})
        self.assertError(response, 403, policies.REPORT_EVENTS)
        self.assertEqual([], self.recorder.batches)

    def test_an_unknown_token_is_401(self):
        response = self.put(self.url, {'X-Auth-Token': 'no-such-token'})
        self.assertError(response, 401, 'X-Auth-Token header is not valid')
        self.assertEqual(f'Keystone uri="{self.keystone.identity_url}"',
                         response.headers['WWW-Authenticate'])
        self.assertIn(('GET', '/v3/auth/tokens', 404),
                      [(c.method, c.path, c.status)
                       for c in self.keystone.calls])
        self.assertEqual([], self.recorder.batches)

    def test_a_revoked_token_is_401(self):
        token = self.keystone.issue_token(['doctor_monitor'])
        self.keystone.revoke(token)
        response = self.put(self.url, {'X-Auth-Token': token})
        self.assertEqual(401, response.status_code)

    def test_no_token_is_401(self):
        response = self.put(self.url)
        self.assertError(response, 401, 'there is no X-Auth-Token header')
        self.assertEqual([], self.recorder.batches)

    def monitor(self, password=None):
        """A monitor's reporter with [monitor_auth] for the stand-in.

        Its own configuration, from a file as a monitor host has it: the
        options of the ``password`` plugin are registered by keystoneauth1
        when it loads the plugin, and read from the file then.
        """
        options = self.keystone.authtoken_options()
        if password is not None:
            options['password'] = password
        path = self.useFixture(fixtures.TempDir()).join('monitor.conf')
        with open(path, 'w', encoding='utf-8') as f:
            f.write(f'[monitor]\ninspector_url = {self.url}/events\n'
                    f'report_retries = 1\n[{reporter_mod.AUTH_GROUP}]\n')
            for name in ('auth_type', 'auth_url', 'username', 'password',
                         'project_name', 'user_domain_name',
                         'project_domain_name'):
                f.write(f'{name} = {options[name]}\n')
        conf = self.useFixture(config.ConfFixture()).conf
        conf(['--config-file', path], project='doctor_plugin',
             default_config_files=[])
        reporter = reporter_mod.InspectorReporter(conf)
        self.addCleanup(reporter.close)
        return reporter

    def test_a_monitor_reports_with_a_keystone_token(self):
        reporter = self.monitor()
        reporter(monitor_base.FaultReport('compute-1', 'down', 'test',
                                          1.0, 'ev-1'))
        reporter(monitor_base.FaultReport('compute-2', 'down', 'test',
                                          1.0, 'ev-2'))
        self.assertEqual(2, len(self.recorder.batches))
        # One token for both reports, which the middleware validated.
        issued = [c for c in self.keystone.calls
                  if (c.method, c.path) == ('POST', '/v3/auth/tokens')]
        self.assertEqual(2, len(issued))  # the middleware's, the monitor's

    def test_a_revoked_monitor_token_is_renewed(self):
        # An inspector that checks every token with Keystone (no cache).
        self.set_opts(group='keystone_authtoken', token_cache_time=-1)
        self.url = self.serve()
        reporter = self.monitor()
        reporter(monitor_base.FaultReport('compute-1', 'down', 'test',
                                          1.0, 'ev-1'))
        for token in list(self.keystone._tokens):
            if self.keystone._tokens[token].user_id == 'doctor':
                self.keystone.revoke(token)
        reporter(monitor_base.FaultReport('compute-2', 'down', 'test',
                                          1.0, 'ev-2'))
        self.assertEqual(2, len(self.recorder.batches))

    def test_a_monitor_with_a_wrong_password_says_so(self):
        reporter = self.monitor(password='wrong')
        exc = self.assertRaises(
            exceptions.DeliveryError, reporter,
            monitor_base.FaultReport('compute-1', 'down', 'test', 1.0,
                                     'ev-1'))
        self.assertIn('no Keystone token', str(exc))
        self.assertIn('[monitor_auth]', str(exc))
        self.assertNotIn('wrong', str(exc).replace('went wrong', ''))
        self.assertEqual([], self.recorder.batches)

    def test_identity_headers_from_the_client_are_not_trusted(self):
        response = self.put(self.url, {'X-Identity-Status': 'Confirmed',
                                       'X-Roles': 'admin'})
        self.assertEqual(401, response.status_code)
        self.assertEqual([], self.recorder.batches)

    def test_tokens_and_passwords_never_reach_the_logs(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG,
                                                   format='%(message)s'))
        token = self.keystone.issue_token(['doctor_monitor'])
        unknown = 'unknown-token-0123456789abcdef'
        self.assertEqual(200, self.put(
            self.url, {'X-Auth-Token': token}).status_code)
        self.assertEqual(401, self.put(
            self.url, {'X-Auth-Token': unknown}).status_code)
        self.conf.log_opt_values(logging.getLogger('test.conf'),
                                 logging.DEBUG)
        self.assertIn('keystone_authtoken.password', logs.output)
        for secret in (token, unknown, self.keystone.service_password):
            self.assertNotIn(secret, logs.output)

    def test_healthz_needs_no_token(self):
        response = requests.get(f'{self.url}/healthz', timeout=TIMEOUT)
        self.assertEqual(200, response.status_code)


class TestOptions(AuthTestCase):

    def test_secrets_are_secret_and_listed(self):
        from doctor_plugin import opts

        listed = {(group, opt.name): opt
                  for group, options in opts.list_opts()
                  for opt in options}
        for key in (('inspector', 'auth_strategy'),
                    ('inspector', 'shared_secret_roles'),
                    ('inspector', 'rate_limit'),
                    ('inspector', 'rate_limit_burst'),
                    ('inspector', 'max_traits'),
                    ('inspector', 'max_string_length')):
            self.assertIn(key, listed)
        for key in (('inspector', 'shared_secret'),
                    ('monitor', 'inspector_secret')):
            self.assertTrue(listed[key].secret, key)
        (aodh_group,) = opts.list_aodh_opts()
        self.assertEqual('doctor', aodh_group[0])
        self.assertTrue({o.name: o for o in aodh_group[1]}
                        ['inspector_secret'].secret)

    def test_demo_secrets_are_random(self):
        first = chain_mod.use_shared_secret(self.conf)
        self.assertEqual(first, self.conf.inspector.shared_secret)
        self.assertEqual(first, self.conf.monitor.inspector_secret)
        self.assertNotEqual(first, chain_mod.use_shared_secret(self.conf))
        self.assertGreaterEqual(len(first), 32)
