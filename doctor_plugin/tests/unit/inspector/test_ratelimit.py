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

"""Tests for doctor_plugin.inspector.ratelimit and the API's limits."""

import json

import requests

from doctor_plugin.inspector import api
from doctor_plugin.inspector import ratelimit
from doctor_plugin.tests import base
from doctor_plugin.tests.unit.inspector import test_api

TIMEOUT = 10


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class TestTokenBuckets(base.TestCase):

    def setUp(self):
        super().setUp()
        self.clock = Clock()
        self.buckets = ratelimit.TokenBuckets(2.0, 3, clock=self.clock)

    def test_burst_then_refused_with_the_wait(self):
        self.assertEqual([0.0, 0.0, 0.0],
                         [self.buckets.take('a') for _ in range(3)])
        self.assertAlmostEqual(0.5, self.buckets.take('a'))
        self.clock.now += 0.25
        self.assertAlmostEqual(0.25, self.buckets.take('a'))
        self.clock.now += 0.25
        self.assertEqual(0.0, self.buckets.take('a'))

    def test_sources_are_apart(self):
        for _ in range(3):
            self.buckets.take('a')
        self.assertGreater(self.buckets.take('a'), 0)
        self.assertEqual(0.0, self.buckets.take('b'))

    def test_refill_stops_at_the_burst(self):
        self.buckets.take('a')
        self.clock.now += 3600
        self.assertEqual([0.0] * 3,
                         [self.buckets.take('a') for _ in range(3)])
        self.assertGreater(self.buckets.take('a'), 0)

    def test_the_number_of_sources_is_bounded(self):
        buckets = ratelimit.TokenBuckets(1.0, 2, max_sources=10,
                                         clock=self.clock)
        for i in range(100):
            buckets.take(f'10.0.0.{i}')
        self.assertLessEqual(len(buckets._buckets), 10)

    def test_bad_parameters(self):
        self.assertRaises(ValueError, ratelimit.TokenBuckets, 0, 1)
        self.assertRaises(ValueError, ratelimit.TokenBuckets, 1, 0)


class TestAPILimits(test_api.APITestCase):
    """Over real HTTP: each limit a 4xx with the JSON error, and a log."""

    def serve(self, **kwargs):
        server = api.APIServer(self.make_app(**kwargs), '127.0.0.1',
                               0).start()
        self.addCleanup(server.stop)
        return server.url

    def put(self, url, body=None, path='/events', token=None):
        return requests.put(
            f'{url}{path}', data=json.dumps(
                body or test_api.doctor_body()),
            headers={'Content-Type': 'application/json',
                     'X-Auth-Token': token or self.secret},
            timeout=TIMEOUT)

    def test_rate_limit_is_429_with_retry_after_and_one_log_line(self):
        self.set_opts(group='inspector', rate_limit=0.5, rate_limit_burst=2)
        url = self.serve()
        self.assertEqual([200, 200], [self.put(url).status_code
                                      for _ in range(2)])
        with self.assertLogs(api.LOG.logger.name, 'WARNING') as logs:
            refused = [self.put(url) for _ in range(3)]
        for response in refused:
            self.assertEqual(429, response.status_code)
            self.assertEqual('Too Many Requests',
                             response.json()['error']['title'])
            self.assertIn('too many requests from 127.0.0.1',
                          response.json()['error']['message'])
            self.assertIn(response.headers['Retry-After'], ('1', '2'))
        self.assertEqual(1, len(logs.output))
        self.assertIn('Rate limiting 127.0.0.1', logs.output[0])
        # Only the first two got through to the pipeline.
        self.assertEqual(1, len(self.recorder.batches))

    def test_unauthenticated_requests_count_too(self):
        self.set_opts(group='inspector', rate_limit=0.1, rate_limit_burst=3)
        url = self.serve()
        statuses = [self.put(url, token='guess').status_code
                    for _ in range(4)]
        self.assertEqual([401, 401, 401, 429], statuses)
        self.assertEqual(429, self.put(url).status_code)

    def test_healthz_is_not_limited(self):
        self.set_opts(group='inspector', rate_limit=0.1, rate_limit_burst=1)
        url = self.serve()
        self.put(url)
        self.assertEqual(429, self.put(url).status_code)
        self.assertEqual([200] * 5, [
            requests.get(f'{url}/healthz', timeout=TIMEOUT).status_code
            for _ in range(5)])

    def test_zero_turns_the_limit_off(self):
        self.set_opts(group='inspector', rate_limit=0, rate_limit_burst=1)
        url = self.serve()
        self.assertEqual([200] * 5, [self.put(url).status_code
                                     for _ in range(5)])

    def ceilometer_event(self, traits):
        return {'message_id': 'm-1', 'event_type': 'compute.host.down',
                'generated': '2024-05-02T10:00:00', 'traits': traits}

    def serve_ceilometer(self):
        return self.serve(routes=[('/events/ceilometer', 'PUT',
                                   'ceilometer')])

    def test_too_long_trait_value_is_400_and_logged(self):
        url = self.serve_ceilometer()
        event = self.ceilometer_event([['host', 1, 'h' * 256]])
        with self.assertLogs(api.LOG.logger.name, 'WARNING') as logs:
            response = self.put(url, [event], path='/events/ceilometer')
        self.assertEqual(400, response.status_code)
        error = response.json()['error']
        self.assertEqual('events.0.traits.host', error['field'])
        self.assertIn('over the limit of 255', error['message'])
        self.assertIn('max_string_length', logs.output[0])
        self.assertEqual([], self.recorder.batches)
        # At the limit it is taken.
        event = self.ceilometer_event([['host', 1, 'h' * 255]])
        response = self.put(url, [event], path='/events/ceilometer')
        self.assertEqual(200, response.status_code, response.text)

    def test_too_many_traits_is_400(self):
        self.set_opts(group='inspector', max_traits=10)
        url = self.serve_ceilometer()
        event = self.ceilometer_event([[f't{i}', 1, 'x'] for i in range(11)])
        response = self.put(url, [event], path='/events/ceilometer')
        self.assertEqual(400, response.status_code)
        self.assertEqual('events.0.traits', response.json()['error']
                         ['field'])
        self.assertIn('11 traits exceeds the limit of 10',
                      response.json()['error']['message'])
        self.assertEqual([], self.recorder.batches)

    def test_too_large_body_is_logged(self):
        self.set_opts(group='inspector', max_request_body_size=1024)
        url = self.serve()
        with self.assertLogs(api.LOG.logger.name, 'WARNING') as logs:
            response = self.put(url, [{'pad': 'x' * 2000}])
        self.assertEqual(413, response.status_code)
        self.assertIn('max_request_body_size', logs.output[0])
