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

"""S1 refuses a database it cannot use before it starts any service."""

import sys
from unittest import mock

from doctor_plugin.bench import startup
from doctor_plugin import exceptions
from doctor_plugin.tests import base


class TestDatabaseCheck(base.TestCase):

    def test_a_postgresql_url_names_its_backend(self):
        # psycopg2 is a test requirement, so its driver loads here.
        self.assertEqual('postgresql', startup._check_server(
            'postgresql+psycopg2://postgres@127.0.0.1:5432/postgres'))

    def test_not_a_url_says_which_variable(self):
        exc = self.assertRaises(exceptions.DoctorPluginError,
                                startup._check_server, 'not a url')
        self.assertIn(startup.DATABASE_URL_ENV, str(exc))
        self.assertIn('postgresql+psycopg2://', str(exc))

    def test_a_missing_driver_names_the_extra(self):
        # As on a plain install: the driver cannot be imported.
        patch = mock.patch.dict(sys.modules, {'psycopg2': None})
        patch.start()
        self.addCleanup(patch.stop)
        exc = self.assertRaises(
            exceptions.DoctorPluginError, startup._check_server,
            'postgresql+psycopg2://doctor:secret@127.0.0.1:5432/doctor')
        message = str(exc)
        self.assertIn('needs its database driver', message)
        self.assertIn('doctor-plugin[bench]', message)
        self.assertNotIn('secret', message)
