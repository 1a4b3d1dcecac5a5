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

"""Tests of the Alertmanager and collectd transformers, and their paths."""

import copy
import datetime

from doctor_plugin import exceptions
from doctor_plugin.tests import base
from doctor_plugin.transformers import alertmanager

#: As Alertmanager 0.27 posts it (webhook payload version 4).
ALERTMANAGER = {
    'receiver': 'doctor',
    'status': 'firing',
    'alerts': [{
        'status': 'firing',
        'labels': {'alertname': 'InstanceDown', 'instance': 'compute-1:9100',
                   'job': 'node', 'severity': 'critical'},
        'annotations': {'summary': 'compute-1 is down'},
        'startsAt': '2026-11-25T10:00:00.123456789Z',
        'endsAt': '0001-01-01T00:00:00Z',
        'generatorURL': 'http://prometheus:9090/graph?g0.expr=up+%3D%3D+0',
        'fingerprint': '3f1c9a0b2d4e5f60'}, {
        'status': 'firing',
        'labels': {'alertname': 'DiskFull', 'instance': 'compute-2:9100'},
        'annotations': {},
        'startsAt': '2026-11-25T10:00:01Z',
        'endsAt': '0001-01-01T00:00:00Z',
        'fingerprint': '0a0b0c0d0e0f1011'}],
    'groupLabels': {'alertname': 'InstanceDown'},
    'commonLabels': {'job': 'node'},
    'commonAnnotations': {},
    'externalURL': 'http://alertmanager:9093',
    'version': '4',
    'groupKey': '{}:{alertname="InstanceDown"}',
    'truncatedAlerts': 0,
}

#: As collectd's write_http plugin posts a notification (Format "JSON").
COLLECTD = [{
    'labels': {'alertname': 'collectd_connectivity_gauge',
               'instance': 'compute-3', 'severity': 'FAILURE',
               'service': 'collectd', 'connectivity': 'eth0',
               'interface': 'eth0'},
    'annotations': {'summary': 'link status of eth0 is down'},
    'startsAt': '2026-11-25T10:00:02Z',
}]


class TestAlertmanager(base.TestCase):

    def setUp(self):
        super().setUp()
        self.transformer = alertmanager.AlertmanagerTransformer(self.conf)

    def transform(self, payload):
        return self.transformer.transform(payload)

    def assertInvalid(self, payload, field, fragment):
        exc = self.assertRaises(exceptions.InvalidPayload, self.transform,
                                payload)
        self.assertEqual(field, exc.field)
        self.assertIn(fragment, exc.problem)

    def test_firing_host_alert_is_a_host_down(self):
        (ev,) = self.transform(ALERTMANAGER)
        self.assertEqual('compute.host.down', ev.event_type)
        self.assertEqual('compute-1', ev.trait('host'))
        self.assertEqual('down', ev.trait('status'))
        self.assertEqual('alertmanager', ev.trait('monitor'))
        self.assertEqual('InstanceDown', ev.trait('cause'))
        self.assertEqual('critical', ev.trait('severity'))
        self.assertEqual(datetime.datetime(2026, 11, 25, 10, 0, 0, 123456),
                         ev.trait('time'))

    def test_repeats_keep_the_id_and_resolution_reports_up(self):
        (first,) = self.transform(ALERTMANAGER)
        (again,) = self.transform(copy.deepcopy(ALERTMANAGER))
        self.assertEqual(first.message_id, again.message_id)
        resolved = copy.deepcopy(ALERTMANAGER)
        resolved['status'] = resolved['alerts'][0]['status'] = 'resolved'
        resolved['alerts'][0]['endsAt'] = '2026-11-25T10:05:00Z'
        (up,) = self.transform(resolved)
        self.assertEqual('compute.host.up', up.event_type)
        self.assertEqual(first.trait('monitor_event_id'),
                         up.trait('monitor_event_id'))
        self.assertEqual(datetime.datetime(2026, 11, 25, 10, 5),
                         up.trait('time'))

    def test_host_labels_and_alertnames_are_configurable(self):
        self.set_opts(group='inspector', alertmanager_alertnames=['Disk*'],
                      alertmanager_host_labels=['nodename', 'instance'])
        (ev,) = self.transform(ALERTMANAGER)
        self.assertEqual('compute-2', ev.trait('host'))

    def test_ipv6_instance(self):
        payload = copy.deepcopy(ALERTMANAGER)
        payload['alerts'][0]['labels']['instance'] = '[fd00::7]:9100'
        (ev,) = self.transform(payload)
        self.assertEqual('fd00::7', ev.trait('host'))

    def test_malformed(self):
        self.assertInvalid([], '', "Alertmanager's webhook object")
        self.assertInvalid(dict(ALERTMANAGER, version='3'), 'version',
                           "'3' is not supported")
        self.assertInvalid(dict(ALERTMANAGER, alerts={}), 'alerts',
                           'array of alerts')
        for change, field, fragment in [
                ({'status': 'pending'}, 'alerts.0.status', "'firing' or"),
                ({'labels': {'alertname': 7}}, 'alerts.0.labels',
                 'object of strings'),
                ({'labels': {}}, 'alerts.0.labels.alertname', 'required'),
                ({'startsAt': 'yesterday'}, 'alerts.0.startsAt',
                 'RFC 3339'),
                ({'labels': {'alertname': 'InstanceDown'}},
                 'alerts.0.labels', 'names no host')]:
            payload = copy.deepcopy(ALERTMANAGER)
            payload['alerts'][0].update(change)
            self.assertInvalid(payload, field, fragment)


class TestCollectd(base.TestCase):

    def setUp(self):
        super().setUp()
        self.transformer = alertmanager.CollectdTransformer(self.conf)

    def test_link_failure_is_a_host_down(self):
        (ev,) = self.transformer.transform(COLLECTD)
        self.assertEqual('compute.host.down', ev.event_type)
        self.assertEqual('compute-3', ev.trait('host'))
        self.assertEqual('collectd', ev.trait('monitor'))
        self.assertEqual('eth0', ev.trait('interface'))
        self.assertEqual('collectd_connectivity_gauge', ev.trait('cause'))

    def test_okay_reports_up_warning_nothing(self):
        okay = copy.deepcopy(COLLECTD)
        okay[0]['labels']['severity'] = 'OKAY'
        (ev,) = self.transformer.transform(okay[0])
        self.assertEqual('compute.host.up', ev.event_type)
        okay[0]['labels']['severity'] = 'WARNING'
        self.assertEqual([], self.transformer.transform(okay))

    def test_other_plugins_are_not_host_faults(self):
        other = copy.deepcopy(COLLECTD)
        other[0]['labels']['alertname'] = 'collectd_df_percent_bytes'
        self.assertEqual([], self.transformer.transform(other))

    def test_malformed(self):
        bad = copy.deepcopy(COLLECTD)
        bad[0]['labels']['severity'] = 'BAD'
        exc = self.assertRaises(exceptions.InvalidPayload,
                                self.transformer.transform, bad)
        self.assertEqual('0.labels.severity', exc.field)
        exc = self.assertRaises(exceptions.InvalidPayload,
                                self.transformer.transform, 'x')
        self.assertEqual('', exc.field)
