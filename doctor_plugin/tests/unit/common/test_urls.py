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

"""Tests of URL redaction."""

from oslotest import base

from doctor_plugin.common import urls


class RedactTest(base.BaseTestCase):

    def test_password_replaced(self):
        self.assertEqual('https://alice:***@vnfm.example:8443/alarm?x=1',
                         urls.redact('https://alice:s3cret@vnfm.example:8443'
                                     '/alarm?x=1'))

    def test_every_host_of_a_transport_url(self):
        self.assertEqual(
            'rabbit://u:***@h1:5672,v:***@h2:5672,w:***@h3/vhost',
            urls.redact('rabbit://u:p1@h1:5672,v:p2@h2:5672,w:p3@h3/vhost'))

    def test_transport_url_hosts_with_and_without_credentials(self):
        self.assertEqual('rabbit://u:***@h1,h2,guest@h3/',
                         urls.redact('rabbit://u:pw@h1,h2,guest@h3/'))

    def test_no_password_left_alone(self):
        for url in ('http://vnfm.example/alarm',
                    'http://alice@vnfm.example/alarm',
                    'rabbit://h1:5672,h2:5672/',
                    'log://?level=info'):
            self.assertEqual(url, urls.redact(url))

    def test_unquoted_at_in_password(self):
        self.assertEqual('http://alice:***@vnfm.example/alarm',
                         urls.redact('http://alice:p@ss@word@vnfm.example'
                                     '/alarm'))

    def test_at_sign_in_the_path_is_no_userinfo(self):
        self.assertEqual('http://vnfm.example/a:b@c',
                         urls.redact('http://vnfm.example/a:b@c'))

    def test_password_without_path(self):
        self.assertEqual('postgresql://doctor:***@db',
                         urls.redact('postgresql://doctor:pw@db'))

    def test_empty_password(self):
        self.assertEqual('redis://:***@cache:6379/0',
                         urls.redact('redis://:secret@cache:6379/0'))

    def test_not_a_url(self):
        self.assertEqual('user:password@host',
                         urls.redact('user:password@host'))
