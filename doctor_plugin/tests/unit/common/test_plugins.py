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

"""Tests for doctor_plugin.common.plugins."""

from doctor_plugin.common import plugins
from doctor_plugin.common import urls
from doctor_plugin import exceptions
from doctor_plugin.notifiers import log as log_notifier
from doctor_plugin.tests import base
from doctor_plugin.transformers import doctor


class TestAvailable(base.TestCase):

    def test_notifiers(self):
        self.assertEqual(['alarms', 'http', 'https', 'log', 'messaging'],
                         plugins.available(plugins.NOTIFIERS_NAMESPACE))

    def test_unknown_namespace_is_empty(self):
        self.assertEqual([], plugins.available('doctor_plugin.no_such'))


class TestLoadDriver(base.TestCase):

    def test_loads_and_constructs_with_arguments(self):
        driver = plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE,
                                     'doctor', self.conf)
        self.assertIsInstance(driver, doctor.DoctorEventTransformer)
        self.assertIs(self.conf, driver.conf)

    def test_missing_entry_point_names_namespace_and_lists_plugins(self):
        exc = self.assertRaises(exceptions.PluginLoadError,
                                plugins.load_driver,
                                plugins.NOTIFIERS_NAMESPACE, 'ftp',
                                self.conf, 'ftp://x')
        self.assertEqual('doctor_plugin.notifiers', exc.namespace)
        self.assertEqual('ftp', exc.name)
        self.assertEqual(['alarms', 'http', 'https', 'log', 'messaging'],
                         exc.available)
        message = str(exc)
        self.assertIn("'ftp'", message)
        self.assertIn("'doctor_plugin.notifiers'", message)
        self.assertIn('no such entry point', message)
        self.assertIn('Available plugins: alarms, http, https, log, messaging',
                      message)

    def test_missing_namespace_says_none_installed(self):
        exc = self.assertRaises(exceptions.PluginLoadError,
                                plugins.load_driver,
                                'doctor_plugin.no_such', 'x')
        self.assertIn('(none installed)', str(exc))

    def test_constructor_error_is_wrapped_with_its_cause(self):
        # LogNotifier needs a ConfigOpts: a string makes its constructor
        # raise AttributeError.
        exc = self.assertRaises(exceptions.PluginLoadError,
                                plugins.load_driver,
                                plugins.NOTIFIERS_NAMESPACE, 'log',
                                'not-a-conf', 'log://')
        self.assertEqual('log', exc.name)
        self.assertIn('AttributeError', str(exc))
        self.assertIn("'str' object has no attribute", str(exc))
        self.assertIn('Available plugins:', str(exc))

    def test_our_own_errors_pass_through_unwrapped(self):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                plugins.load_driver,
                                plugins.NOTIFIERS_NAMESPACE, 'log',
                                self.conf, 'log://?level=loud')
        self.assertEqual('log://?level=loud', exc.entry)
        self.assertIn("level 'loud'", exc.problem)


class TestLoadNamed(base.TestCase):

    def test_keeps_names(self):
        loaded = plugins.load_named(plugins.TRANSFORMERS_NAMESPACE,
                                    ['doctor'], self.conf)
        self.assertEqual(['doctor'], list(loaded))
        self.assertIsInstance(loaded['doctor'],
                              doctor.DoctorEventTransformer)

    def test_first_missing_name_raises(self):
        exc = self.assertRaises(exceptions.PluginLoadError,
                                plugins.load_named,
                                plugins.TRANSFORMERS_NAMESPACE,
                                ['doctor', 'nagios'], self.conf)
        self.assertEqual('nagios', exc.name)
        self.assertEqual('doctor_plugin.transformers', exc.namespace)
        self.assertIn('doctor', exc.available)


class TestNotifiers(base.TestCase):

    def test_scheme_selects_plugin(self):
        self.assertEqual('https',
                         plugins.notifier_scheme('https://h/p?x=1'))
        self.assertEqual('log', plugins.notifier_scheme('log://'))

    def test_url_without_scheme(self):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                plugins.notifier_scheme, 'compute-1/alarm')
        self.assertEqual('compute-1/alarm', exc.entry)
        self.assertIn('has no scheme', exc.problem)

    def test_load_notifier_by_scheme(self):
        notifier = plugins.load_notifier(self.conf, 'log://?level=debug')
        self.assertIsInstance(notifier, log_notifier.LogNotifier)
        self.assertEqual('log://?level=debug', notifier.url)
        self.assertEqual(log_notifier.LEVELS['debug'], notifier.level)

    def test_load_notifier_unknown_scheme(self):
        exc = self.assertRaises(exceptions.PluginLoadError,
                                plugins.load_notifier, self.conf,
                                'snmp://trap-host')
        self.assertEqual('snmp', exc.name)
        self.assertEqual('doctor_plugin.notifiers', exc.namespace)


class TestRedact(base.TestCase):

    def test_password_hidden(self):
        self.assertEqual('rabbit://doctor:***@broker:5672/vhost',
                         urls.redact(
                             'rabbit://doctor:s3cret@broker:5672/vhost'))

    def test_query_and_path_kept(self):
        self.assertEqual('https://u:***@vnfm/alarm?x=1',
                         urls.redact('https://u:pw@vnfm/alarm?x=1'))

    def test_at_sign_in_password(self):
        redacted = urls.redact('https://u:p@ss@vnfm/alarm')
        self.assertEqual('https://u:***@vnfm/alarm', redacted)
        self.assertNotIn('ss@', redacted)

    def test_empty_password_is_still_hidden(self):
        self.assertEqual('https://u:***@vnfm/',
                         urls.redact('https://u:@vnfm/'))

    def test_without_password_unchanged(self):
        for url in ('https://vnfm/alarm', 'https://u@vnfm/alarm',
                    'log://', 'messaging://?topic=alarm.all'):
            self.assertEqual(url, urls.redact(url))


class TestDescribe(base.TestCase):

    def test_lists_each_plugin_with_its_target(self):
        rows = dict(plugins.describe(plugins.NOTIFIERS_NAMESPACE))
        self.assertEqual(['alarms', 'http', 'https', 'log', 'messaging'],
                         list(rows))
        self.assertEqual('ok (doctor_plugin.notifiers.log:LogNotifier)',
                         rows['log'])
