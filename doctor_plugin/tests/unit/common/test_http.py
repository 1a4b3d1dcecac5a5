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

"""Tests for doctor_plugin.common.http: the client and the session."""

import socket

import fixtures

from doctor_plugin.common import http
from doctor_plugin.tests import base


class TestEnvironmentCachingSession(base.TestCase):

    def setUp(self):
        super().setUp()
        for name in ('http_proxy', 'HTTP_PROXY', 'no_proxy', 'NO_PROXY',
                     'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
            self.useFixture(fixtures.EnvironmentVariable(name))
        self.useFixture(fixtures.EnvironmentVariable(
            'http_proxy', 'http://proxy.example:3128'))
        self.useFixture(fixtures.EnvironmentVariable(
            'no_proxy', 'direct.example'))
        self.session = http.EnvironmentCachingSession()
        self.addCleanup(self.session.close)

    def settings(self, url, **kwargs):
        args = dict(proxies={}, stream=None, verify=None, cert=None)
        args.update(kwargs)
        return self.session.merge_environment_settings(url, **args)

    def test_same_settings_as_requests(self):
        got = self.settings('http://nova.example:8774/v2.1/servers')
        self.assertEqual('http://proxy.example:3128',
                         got['proxies'].get('http'))
        self.assertEqual({}, self.settings(
            'http://direct.example/x')['proxies'])

    def test_environment_read_once_per_host(self):
        self.settings('http://nova.example:8774/a')
        self.useFixture(fixtures.EnvironmentVariable(
            'http_proxy', 'http://other.example:8080'))
        # Same host: the first reading holds.
        self.assertEqual('http://proxy.example:3128', self.settings(
            'http://nova.example:8774/b')['proxies']['http'])
        # Another host is read afresh.
        self.assertEqual('http://other.example:8080', self.settings(
            'http://keystone.example:5000/v3')['proxies']['http'])

    def test_explicit_settings_are_part_of_the_key(self):
        self.assertIs(True, self.settings('http://nova.example/',
                                          verify=True)['verify'])
        self.assertIs(False, self.settings('http://nova.example/',
                                           verify=False)['verify'])

    def test_callers_get_copies(self):
        first = self.settings('http://nova.example/')
        first['proxies']['http'] = 'http://tampered.example'
        first['verify'] = 'x'
        second = self.settings('http://nova.example/')
        self.assertEqual('http://proxy.example:3128',
                         second['proxies']['http'])
        self.assertNotEqual('x', second['verify'])


class TestClientErrors(base.TestCase):
    """Failures come as our own types, worded in requests' terms."""

    def test_refused_connection_is_a_retryable_connect_failure(self):
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        client = http.Client(f'http://127.0.0.1:{port}/x', 0.5,
                             use_proxy=False)
        exc = self.assertRaises(http.ConnectFailed, client.request,
                                'POST', b'{}', {})
        self.assertTrue(exc.retryable)
        text = http.describe(exc, 0.5)
        self.assertTrue(text.startswith('ConnectionError: '), text)
        self.assertIn('Connection refused', text)
        self.assertIn('reachable from this host', http.advice(exc))

    def test_slow_answer_is_a_read_timeout_not_retried(self):
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = http.Client(f'http://127.0.0.1:{port}/x', 0.2,
                             use_proxy=False)
        exc = self.assertRaises(http.ReadTimeout, client.request,
                                'POST', b'{}', {})
        self.assertFalse(exc.retryable)
        self.assertEqual('no response within 0.2s', http.describe(exc, 0.2))
