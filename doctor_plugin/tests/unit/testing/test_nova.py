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

"""Tests for doctor_plugin.testing.nova: real HTTP over loopback."""

import json
import socket
import threading
import time
import urllib.parse
import uuid

from keystoneauth1 import adapter
from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
import requests

from doctor_plugin.common import messaging
from doctor_plugin.testing import nova
from doctor_plugin.tests import base
from doctor_plugin.tests import notifications
from doctor_plugin.transformers import nova_service

TIMEOUT = 5
WAIT = 3.0


def version_header(version):
    return {'OpenStack-API-Version': f'compute {version}'}


def next_link(body):
    for link in body.get('servers_links', []):
        if link['rel'] == 'next':
            return link['href']
    return None


class NovaTestCase(base.TestCase):
    """A started stand-in and an HTTP session on it."""

    standin_kwargs: dict = {}

    def setUp(self):
        super().setUp()
        self.nova = nova.NovaStandIn(**self.standin_kwargs).start()
        self.addCleanup(self.nova.stop)
        self.http = requests.Session()
        self.addCleanup(self.http.close)

    def request(self, method, path, version=None, **kwargs):
        headers = kwargs.pop('headers', {})
        if version:
            headers.update(version_header(version))
        kwargs.setdefault('timeout', TIMEOUT)
        return self.http.request(method, self.nova.compute_url + path,
                                 headers=headers, **kwargs)


class TestLifecycle(base.TestCase):

    def test_urls_name_the_bound_loopback_port(self):
        with nova.NovaStandIn() as standin:
            parsed = urllib.parse.urlsplit(standin.url)
            self.assertEqual('127.0.0.1', parsed.hostname)
            self.assertNotEqual(0, parsed.port)
            self.assertEqual(standin.url + '/v2.1', standin.compute_url)
            response = requests.get(standin.url, timeout=TIMEOUT)
            self.assertEqual(200, response.status_code)
        self.assertRaises(requests.ConnectionError, requests.get,
                          standin.url, timeout=TIMEOUT)

    def test_rejects_inverted_version_range(self):
        self.assertRaises(ValueError, nova.NovaStandIn,
                          min_version='2.60', max_version='2.53')


class TestVersionDiscovery(NovaTestCase):

    standin_kwargs = {'min_version': '2.1', 'max_version': '2.88'}

    def test_root_lists_v21_with_its_microversion_range(self):
        response = self.http.get(self.nova.url + '/', timeout=TIMEOUT)
        self.assertEqual(200, response.status_code)
        (version,) = response.json()['versions']
        self.assertEqual('v2.1', version['id'])
        self.assertEqual('CURRENT', version['status'])
        self.assertEqual('2.88', version['version'])
        self.assertEqual('2.1', version['min_version'])
        self.assertEqual([{'rel': 'self',
                           'href': self.nova.compute_url + '/'}],
                         version['links'])

    def test_v21_document_with_and_without_slash(self):
        for path in ('', '/'):
            response = self.request('GET', path)
            self.assertEqual(200, response.status_code)
            document = response.json()['version']
            self.assertEqual('v2.1', document['id'])
            self.assertEqual('2.88', document['version'])

    def test_keystoneauth_adapter_reads_the_microversion_range(self):
        sess = ks_session.Session(
            auth=noauth.NoAuth(endpoint=self.nova.compute_url))
        compute = adapter.Adapter(sess, service_type='compute',
                                  endpoint_override=self.nova.compute_url)
        data = compute.get_endpoint_data()
        self.assertEqual((2, 88), data.max_microversion)
        self.assertEqual((2, 1), data.min_microversion)
        self.assertEqual((2, 1), compute.get_api_major_version())

    def test_discovery_stays_open_when_a_token_is_required(self):
        with nova.NovaStandIn(token='secret', max_version='2.60') as standin:
            sess = ks_session.Session(auth=token_endpoint.Token(
                standin.compute_url, 'wrong'))
            data = sess.get_endpoint_data(
                service_type='compute',
                endpoint_override=standin.compute_url)
            self.assertEqual((2, 60), data.max_microversion)


class TestMicroversions(NovaTestCase):

    standin_kwargs = {'min_version': '2.1', 'max_version': '2.60'}

    def assertVersion(self, expected, response):
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual(f'compute {expected}',
                         response.headers['OpenStack-API-Version'])
        self.assertEqual(expected,
                         response.headers['X-OpenStack-Nova-API-Version'])
        self.assertIn('OpenStack-API-Version', response.headers['Vary'])
        self.assertEqual(expected, self.nova.calls[-1].microversion)

    def test_defaults_to_the_minimum(self):
        self.assertVersion('2.1', self.request('GET', '/os-services'))

    def test_honours_the_requested_version(self):
        self.assertVersion('2.53',
                           self.request('GET', '/os-services', '2.53'))

    def test_latest_is_the_maximum(self):
        self.assertVersion('2.60',
                           self.request('GET', '/os-services', 'latest'))

    def test_reads_the_legacy_header(self):
        response = self.request(
            'GET', '/os-services',
            headers={'X-OpenStack-Nova-API-Version': '2.11'})
        self.assertVersion('2.11', response)

    def test_new_header_wins_and_other_services_are_ignored(self):
        response = self.request(
            'GET', '/os-services',
            headers={'OpenStack-API-Version': 'placement 1.9, compute 2.12',
                     'X-OpenStack-Nova-API-Version': '2.40'})
        self.assertVersion('2.12', response)

    def test_out_of_range_is_406(self):
        for version in ('2.61', '3.0'):
            response = self.request('GET', '/os-services', version)
            self.assertEqual(406, response.status_code)
            message = response.json()['computeFault']['message']
            self.assertIn('Minimum is 2.1 and maximum is 2.60', message)

    def test_malformed_version_is_400(self):
        response = self.request('GET', '/os-services', '2.x')
        self.assertEqual(400, response.status_code)
        self.assertIn('invalid format',
                      response.json()['badRequest']['message'])


class TestServices(NovaTestCase):

    def setUp(self):
        super().setUp()
        self.record = self.nova.add_service('compute-1')
        self.nova.add_service('compute-2')
        self.nova.add_service('controller', 'nova-scheduler')

    def list_services(self, version, **params):
        response = self.request('GET', '/os-services', version,
                                params=params)
        self.assertEqual(200, response.status_code)
        return response.json()['services']

    def test_list_filters_by_host_and_binary(self):
        (service,) = self.list_services('2.53', host='compute-1',
                                        binary='nova-compute')
        self.assertEqual({'id', 'binary', 'host', 'zone', 'status', 'state',
                          'updated_at', 'disabled_reason', 'forced_down'},
                         set(service))
        self.assertEqual(('compute-1', 'nova-compute', 'nova', 'enabled',
                          'up', False),
                         (service['host'], service['binary'],
                          service['zone'], service['status'],
                          service['state'], service['forced_down']))
        self.assertEqual(3, len(self.list_services('2.53')))

    def test_id_is_a_uuid_from_253_and_an_integer_before(self):
        (new,) = self.list_services('2.53', host='compute-1')
        (old,) = self.list_services('2.52', host='compute-1')
        uuid.UUID(new['id'])
        self.assertIsInstance(old['id'], int)
        self.assertEqual(self.record['id'], new['id'])

    def test_forced_down_is_listed_from_211(self):
        (before,) = self.list_services('2.10', host='compute-1')
        (after,) = self.list_services('2.11', host='compute-1')
        self.assertNotIn('forced_down', before)
        self.assertIn('forced_down', after)

    def test_force_down_by_uuid(self):
        response = self.request('PUT', f'/os-services/{self.record["id"]}',
                                '2.53', json={'forced_down': True})
        self.assertEqual(200, response.status_code, response.text)
        service = response.json()['service']
        self.assertEqual((True, 'down', self.record['id']),
                         (service['forced_down'], service['state'],
                          service['id']))
        self.assertEqual('down', self.nova.service('compute-1')['state'])
        self.assertTrue(self.nova.service('compute-1')['forced_down'])
        self.assertFalse(self.nova.service('compute-2')['forced_down'])
        (call,) = self.nova.calls_to('PUT', '/os-services/')
        self.assertEqual({'forced_down': True}, call.body)
        self.assertEqual(200, call.status)

        response = self.request('PUT', f'/os-services/{self.record["id"]}',
                                '2.53', json={'forced_down': False,
                                              'status': 'disabled',
                                              'disabled_reason': 'maint'})
        self.assertEqual(200, response.status_code, response.text)
        state = self.nova.service('compute-1')
        self.assertEqual(('up', 'disabled', 'maint'),
                         (state['state'], state['status'],
                          state['disabled_reason']))

    def test_force_down_by_uuid_unknown_is_404(self):
        response = self.request('PUT', f'/os-services/{uuid.uuid4()}',
                                '2.53', json={'forced_down': True})
        self.assertEqual(404, response.status_code)
        self.assertIn('could not be found',
                      response.json()['itemNotFound']['message'])

    def test_force_down_by_uuid_needs_an_update(self):
        response = self.request('PUT', f'/os-services/{self.record["id"]}',
                                '2.53', json={})
        self.assertEqual(400, response.status_code)

    def test_uuid_form_before_253_is_404(self):
        response = self.request('PUT', f'/os-services/{self.record["id"]}',
                                '2.52', json={'forced_down': True})
        self.assertEqual(404, response.status_code)
        self.assertEqual('Unknown action',
                         response.json()['itemNotFound']['message'])
        self.assertFalse(self.nova.service('compute-1')['forced_down'])

    def test_force_down_by_host_and_binary(self):
        body = {'host': 'compute-1', 'binary': 'nova-compute',
                'forced_down': True}
        response = self.request('PUT', '/os-services/force-down', '2.11',
                                json=body)
        self.assertEqual(200, response.status_code, response.text)
        self.assertEqual({'service': {'host': 'compute-1',
                                      'binary': 'nova-compute',
                                      'forced_down': True}},
                         response.json())
        self.assertEqual('down', self.nova.service('compute-1')['state'])

    def test_force_down_by_host_unknown_is_404(self):
        response = self.request('PUT', '/os-services/force-down', '2.52',
                                json={'host': 'nowhere',
                                      'binary': 'nova-compute',
                                      'forced_down': True})
        self.assertEqual(404, response.status_code)

    def test_force_down_by_host_is_unknown_before_211(self):
        response = self.request('PUT', '/os-services/force-down', '2.10',
                                json={'host': 'compute-1',
                                      'binary': 'nova-compute',
                                      'forced_down': True})
        self.assertEqual(404, response.status_code)
        self.assertFalse(self.nova.service('compute-1')['forced_down'])

    def test_force_down_by_host_from_253_is_rejected_as_nova_does(self):
        # Nova validates the 2.53 body schema before it looks at the id.
        response = self.request('PUT', '/os-services/force-down', '2.53',
                                json={'host': 'compute-1',
                                      'binary': 'nova-compute',
                                      'forced_down': True})
        self.assertEqual(400, response.status_code)
        self.assertIn('Additional properties',
                      response.json()['badRequest']['message'])
        response = self.request('PUT', '/os-services/force-down', '2.53',
                                json={'forced_down': True})
        self.assertEqual(400, response.status_code)
        self.assertEqual('Invalid uuid force-down',
                         response.json()['badRequest']['message'])
        self.assertFalse(self.nova.service('compute-1')['forced_down'])

    def test_only_nova_compute_can_be_updated(self):
        scheduler = self.nova.service('controller', 'nova-scheduler')
        response = self.request('PUT', f'/os-services/{scheduler["id"]}',
                                '2.53', json={'forced_down': True})
        self.assertEqual(400, response.status_code)

    def test_token_is_required_when_set(self):
        with nova.NovaStandIn(token='secret') as standin:
            url = standin.compute_url + '/os-services'
            response = requests.get(url, timeout=TIMEOUT)
            self.assertEqual(401, response.status_code)
            self.assertEqual(401, response.json()['error']['code'])
            self.assertIn('Keystone', response.headers['WWW-Authenticate'])
            response = requests.get(url, timeout=TIMEOUT,
                                    headers={'X-Auth-Token': 'other'})
            self.assertEqual(401, response.status_code)
            response = requests.get(url, timeout=TIMEOUT,
                                    headers={'X-Auth-Token': 'secret'})
            self.assertEqual(200, response.status_code)
            self.assertEqual([401, 401, 200],
                             [call.status for call in standin.calls])


class TestServers(NovaTestCase):

    standin_kwargs = {'page_limit': 50}

    def setUp(self):
        super().setUp()
        self.server = self.nova.add_server('vm-1', 'tenant-a', 'compute-1',
                                           name='one')

    def test_add_server_registers_its_compute_service(self):
        self.assertEqual('up', self.nova.service('compute-1')['state'])

    def test_get_server(self):
        response = self.request('GET', '/servers/vm-1', '2.53')
        self.assertEqual(200, response.status_code)
        server = response.json()['server']
        self.assertEqual(self.server, server)
        self.assertEqual(
            ('vm-1', 'one', 'ACTIVE', 'tenant-a', 'compute-1', 'compute-1',
             'active'),
            (server['id'], server['name'], server['status'],
             server['tenant_id'], server['OS-EXT-SRV-ATTR:host'],
             server['OS-EXT-SRV-ATTR:hypervisor_hostname'],
             server['OS-EXT-STS:vm_state']))
        for key in ('created', 'updated'):
            time.strptime(server[key], '%Y-%m-%dT%H:%M:%SZ')

    def test_get_unknown_server_is_404(self):
        response = self.request('GET', '/servers/nope')
        self.assertEqual(404, response.status_code)
        self.assertEqual(404, response.json()['itemNotFound']['code'])

    def test_reset_state_to_error_and_back(self):
        response = self.request('POST', '/servers/vm-1/action', '2.53',
                                json={'os-resetState': {'state': 'error'}})
        self.assertEqual(202, response.status_code)
        self.assertEqual(b'', response.content)
        server = self.nova.server('vm-1')
        self.assertEqual(('ERROR', 'error'),
                         (server['status'], server['OS-EXT-STS:vm_state']))
        self.request('POST', '/servers/vm-1/action',
                     json={'os-resetState': {'state': 'active'}})
        self.assertEqual('ACTIVE', self.nova.server('vm-1')['status'])
        self.assertEqual(2, len(self.nova.calls_to(
            'POST', '/v2.1/servers/vm-1/action')))

    def test_reset_state_of_unknown_server_is_404(self):
        response = self.request('POST', '/servers/nope/action',
                                json={'os-resetState': {'state': 'error'}})
        self.assertEqual(404, response.status_code)
        self.assertIn('itemNotFound', response.json())

    def test_reset_state_rejects_other_states(self):
        response = self.request('POST', '/servers/vm-1/action',
                                json={'os-resetState': {'state': 'stopped'}})
        self.assertEqual(400, response.status_code)
        self.assertEqual('ACTIVE', self.nova.server('vm-1')['status'])

    def test_move_and_remove(self):
        self.nova.move_server('vm-1', 'compute-2')
        self.assertEqual('compute-2',
                         self.nova.server('vm-1')['OS-EXT-SRV-ATTR:host'])
        self.nova.remove_server('vm-1')
        self.assertRaises(KeyError, self.nova.server, 'vm-1')
        self.assertEqual(404,
                         self.request('GET', '/servers/vm-1').status_code)

    def list_all(self, **params):
        url = self.nova.compute_url + '/servers/detail?' + (
            urllib.parse.urlencode(dict(all_tenants=1, **params)))
        servers, pages = [], 0
        while url:
            response = self.http.get(url, timeout=TIMEOUT)
            self.assertEqual(200, response.status_code, response.text)
            body = response.json()
            servers += body['servers']
            pages += 1
            url = next_link(body)
        return servers, pages

    def test_pagination_covers_every_server_once(self):
        self.nova.add_servers((f'vm-{i:04d}', f'tenant-{i % 3}',
                               f'compute-{i % 4}', f'n{i}')
                              for i in range(2, 231))
        servers, pages = self.list_all(limit=20)
        ids = [server['id'] for server in servers]
        self.assertEqual(230, len(ids))
        self.assertEqual(set(ids), {'vm-1'} | {f'vm-{i:04d}'
                                               for i in range(2, 231)})
        self.assertEqual(12, pages)
        # Nova's default order: newest first.
        self.assertEqual('vm-0230', ids[0])
        self.assertEqual('vm-1', ids[-1])

    def test_limit_is_capped_at_the_page_limit(self):
        self.nova.add_servers((f'vm-{i:04d}', 't', 'compute-1', '')
                              for i in range(2, 121))
        response = self.request('GET', '/servers/detail',
                                params={'limit': 500})
        body = response.json()
        self.assertEqual(50, len(body['servers']))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(
            next_link(body)).query)
        self.assertEqual([body['servers'][-1]['id']], query['marker'])
        self.assertEqual(3, self.list_all()[1])

    def test_host_filter(self):
        self.nova.add_servers((f'vm-{i:04d}', 't', f'compute-{i % 4}', '')
                              for i in range(2, 102))
        servers, _ = self.list_all(host='compute-2', limit=7)
        self.assertEqual(25, len(servers))
        self.assertEqual({'compute-2'},
                         {s['OS-EXT-SRV-ATTR:host'] for s in servers})
        self.nova.move_server('vm-0002', 'compute-3')
        servers, _ = self.list_all(host='compute-2')
        self.assertEqual(24, len(servers))

    def test_unknown_marker_is_400(self):
        response = self.request('GET', '/servers/detail',
                                params={'marker': 'nope'})
        self.assertEqual(400, response.status_code)

    def test_bad_limit_is_400(self):
        for limit in ('x', '-1'):
            response = self.request('GET', '/servers/detail',
                                    params={'limit': limit})
            self.assertEqual(400, response.status_code)

    def test_plain_list(self):
        response = self.request('GET', '/servers')
        (server,) = response.json()['servers']
        self.assertEqual({'id', 'name', 'links'}, set(server))

    def test_reads_of_a_bulk_load_are_fast(self):
        count = 100_000
        standin = nova.NovaStandIn().start()
        self.addCleanup(standin.stop)
        started = time.monotonic()
        standin.add_servers((f'{i:06d}', 'tenant', f'compute-{i % 100}',
                             f'vm{i}') for i in range(count))
        url = standin.compute_url + '/servers/detail?all_tenants=1'
        seen = 0
        while url:
            body = self.http.get(url, timeout=TIMEOUT).json()
            seen += len(body['servers'])
            url = next_link(body)
        self.assertEqual(count, seen)
        self.assertLess(time.monotonic() - started, 20)


class TestFaultInjection(NovaTestCase):

    def setUp(self):
        super().setUp()
        self.nova.add_service('compute-1')

    def test_latency_delays_every_response(self):
        self.nova.set_latency(0.2)
        started = time.monotonic()
        self.assertEqual(200, self.request('GET', '/os-services')
                         .status_code)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.nova.set_latency(0)
        started = time.monotonic()
        self.request('GET', '/os-services')
        self.assertLess(time.monotonic() - started, 0.2)

    def test_fail_next_answers_nova_faults_then_recovers(self):
        self.nova.fail_next(2, 500, '/os-services')
        self.assertEqual(200, self.request('GET', '/servers/detail')
                         .status_code)
        for _ in range(2):
            response = self.request('GET', '/os-services')
            self.assertEqual(500, response.status_code)
            self.assertEqual(500, response.json()['computeFault']['code'])
        self.assertEqual(200, self.request('GET', '/os-services')
                         .status_code)
        self.assertEqual([500, 500, 200],
                         [c.status for c in self.nova.calls_to(
                             'GET', '/os-services')])

    def test_fail_next_with_other_statuses(self):
        self.nova.fail_next(1, 503)
        self.nova.fail_next(1, 404, '/v2.1/servers')
        response = self.request('GET', '/os-services')
        self.assertEqual(503, response.status_code)
        self.assertIn('serviceUnavailable', response.json())
        response = self.request('GET', '/servers/detail')
        self.assertEqual(404, response.status_code)
        self.assertIn('itemNotFound', response.json())

    def test_go_down_refuse_then_come_back_on_the_same_port(self):
        url = self.nova.compute_url
        self.assertEqual(200, self.request('GET', '/os-services')
                         .status_code)
        self.nova.go_down('refuse')
        # Also the pooled keep-alive connection is gone.
        self.assertRaises(requests.ConnectionError, self.request,
                          'GET', '/os-services')
        with socket.socket() as sock:
            sock.settimeout(TIMEOUT)
            self.assertRaises(ConnectionRefusedError, sock.connect,
                              (urllib.parse.urlsplit(url).hostname,
                               urllib.parse.urlsplit(url).port))
        self.nova.come_back()
        self.assertEqual(url, self.nova.compute_url)
        self.assertEqual(200, self.request('GET', '/os-services')
                         .status_code)

    def test_go_down_503(self):
        self.nova.go_down('503')
        response = self.request('GET', '/os-services')
        self.assertEqual(503, response.status_code)
        self.assertIn('serviceUnavailable', response.json())
        self.nova.come_back()
        self.assertEqual(200, self.request('GET', '/os-services')
                         .status_code)

    def test_go_down_hang_until_come_back(self):
        self.nova.go_down('hang')
        self.assertRaises(requests.Timeout, self.request, 'GET',
                          '/os-services', timeout=0.3)
        answered = []
        thread = threading.Thread(target=lambda: answered.append(
            self.request('GET', '/os-services').status_code))
        thread.start()
        time.sleep(0.2)
        self.assertEqual([], answered)
        self.nova.come_back()
        thread.join(TIMEOUT)
        self.assertEqual([200], answered)

    def test_stop_releases_hung_requests(self):
        standin = nova.NovaStandIn().start()
        standin.go_down('hang')
        failures = []

        def call():
            try:
                requests.get(standin.compute_url + '/os-services',
                             timeout=TIMEOUT)
            except requests.RequestException as exc:
                failures.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.2)
        started = time.monotonic()
        standin.stop()
        thread.join(TIMEOUT)
        self.assertFalse(thread.is_alive())
        self.assertLess(time.monotonic() - started, 2)
        self.assertEqual(1, len(failures))

    def test_unknown_outage_mode(self):
        self.assertRaises(ValueError, self.nova.go_down, 'explode')


class TestNotifications(NovaTestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(messaging.cleanup)
        self.topic = f'versioned_notifications_{uuid.uuid4().hex}'
        self.recorder = notifications.NotificationRecorder()
        listener = messaging.get_listener(
            messaging.get_transport(self.conf, messaging.FAKE_TRANSPORT_URL),
            [self.topic], [self.recorder])
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        self.nova.enable_notifications(messaging.FAKE_TRANSPORT_URL,
                                       topic=self.topic)
        self.service = self.nova.add_service('compute-1')
        self.nova.add_server('vm-1', 'tenant-a', 'compute-1', name='one')

    def test_force_down_sends_a_service_update_the_transformer_reads(self):
        response = self.request('PUT', f'/os-services/{self.service["id"]}',
                                '2.53', json={'forced_down': True})
        self.assertEqual(200, response.status_code)
        (message,) = self.recorder.wait_for(1)
        self.assertEqual(('info', 'nova-compute:compute-1',
                          'service.update'),
                         (message['priority'], message['publisher_id'],
                          message['event_type']))
        payload = message['payload']
        self.assertEqual(('ServiceStatusPayload', 'nova', '1.1'),
                         (payload['nova_object.name'],
                          payload['nova_object.namespace'],
                          payload['nova_object.version']))
        self.assertEqual(
            {'host', 'binary', 'topic', 'report_count', 'disabled',
             'disabled_reason', 'availability_zone', 'last_seen_up',
             'forced_down', 'version', 'uuid'},
            set(payload['nova_object.data']))

        transformer = nova_service.ServiceUpdateTransformer(self.conf)
        (event,) = transformer.transform(payload, message['metadata'])
        self.assertEqual('compute.host.down', event.event_type)
        traits = {t.name: t.value for t in event.traits}
        self.assertEqual(('compute-1', 'forced_down', self.service['id']),
                         (traits['host'], traits['cause'],
                          traits['service_id']))

    def test_emitted_service_update_of_a_healthy_host_is_up(self):
        self.nova.emit_service_update('compute-1')
        (message,) = self.recorder.wait_for(1)
        transformer = nova_service.ServiceUpdateTransformer(self.conf)
        (event,) = transformer.transform(message['payload'],
                                         message['metadata'])
        self.assertEqual('compute.host.up', event.event_type)

    def test_legacy_force_down_sends_a_service_update(self):
        self.request('PUT', '/os-services/force-down', '2.11',
                     json={'host': 'compute-1', 'binary': 'nova-compute',
                           'forced_down': True})
        (message,) = self.recorder.wait_for(1)
        self.assertTrue(
            message['payload']['nova_object.data']['forced_down'])

    def test_reset_state_sends_instance_update(self):
        self.request('POST', '/servers/vm-1/action',
                     json={'os-resetState': {'state': 'error'}})
        (message,) = self.recorder.wait_for(1)
        self.assertEqual(('instance.update', 'nova-compute:compute-1'),
                         (message['event_type'], message['publisher_id']))
        payload = message['payload']
        self.assertEqual(('InstanceUpdatePayload', 'nova'),
                         (payload['nova_object.name'],
                          payload['nova_object.namespace']))
        data = payload['nova_object.data']
        self.assertEqual(('vm-1', 'tenant-a', 'compute-1', 'one', 'error'),
                         (data['uuid'], data['tenant_id'], data['host'],
                          data['display_name'], data['state']))
        for key in ('user_id', 'node', 'task_state', 'power_state',
                    'created_at', 'updated_at', 'flavor', 'ip_addresses'):
            self.assertIn(key, data)
        time.strptime(data['updated_at'], '%Y-%m-%dT%H:%M:%SZ')
        update = data['state_update']
        self.assertEqual('InstanceStateUpdatePayload',
                         update['nova_object.name'])
        self.assertEqual({'old_state': 'active', 'state': 'error'},
                         {k: update['nova_object.data'][k]
                          for k in ('old_state', 'state')})

    def test_instance_action_payloads(self):
        self.nova.emit_instance_update('vm-1', 'instance.create.end')
        self.nova.emit_instance_update('vm-1', 'instance.delete.end')
        self.nova.emit_instance_update('vm-1', 'instance.create.error')
        # Priorities have queues of their own: no order across them.
        received = {m['event_type']: m for m in self.recorder.wait_for(3)}
        create = received['instance.create.end']
        delete = received['instance.delete.end']
        error = received['instance.create.error']
        self.assertEqual('InstanceCreatePayload',
                         create['payload']['nova_object.name'])
        self.assertEqual('active',
                         create['payload']['nova_object.data']['state'])
        self.assertEqual('InstanceActionPayload',
                         delete['payload']['nova_object.name'])
        data = delete['payload']['nova_object.data']
        self.assertEqual('deleted', data['state'])
        self.assertIsNotNone(data['deleted_at'])
        self.assertIsNone(data['fault'])
        self.assertEqual('error', error['priority'])

    def test_payloads_are_json(self):
        payload = self.nova.instance_payload('vm-1')
        self.assertEqual(payload, json.loads(json.dumps(payload)))

    def test_emit_without_notifications_is_an_error(self):
        standin = nova.NovaStandIn()
        standin.add_service('compute-1')
        self.assertRaises(RuntimeError, standin.emit_service_update,
                          'compute-1')
