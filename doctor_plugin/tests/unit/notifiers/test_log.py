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

"""Tests of the log:// notifier and of loading notifiers by URL scheme."""

import datetime
import logging

import fixtures

from doctor_plugin.common import plugins
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.notifiers import base as notifier_base
from doctor_plugin.notifiers import log as log_notifier
from doctor_plugin.tests import base

GENERATED = datetime.datetime(2024, 5, 1, 12, 0, 0, 250000)


def make_event(event_type='compute.host.down', **traits):
    traits = traits or {'host': 'compute-1', 'status': 'down'}
    return event_model.Event.create(event_type, traits, generated=GENERATED)


def make_alarm():
    return notifier_base.AlarmNotification(
        alarm_id='5b3e1f7c-6a55-4d36-9d1a-0c1bd0e7f1a2',
        alarm_name='host-down', severity='critical', previous='ok',
        current='alarm', reason='Event <id=1,event_type=x> hits the query.',
        reason_data={'type': 'event', 'event': make_event().serialize()})


class TestLogNotifier(base.TestCase):

    def setUp(self):
        super().setUp()
        self.logger = self.useFixture(fixtures.FakeLogger(
            name=log_notifier.__name__, level=logging.DEBUG,
            format='%(levelname)s %(message)s'))

    def lines(self):
        return self.logger.output.splitlines()

    def test_default_level_is_info_one_line_per_event(self):
        notifier = log_notifier.LogNotifier(self.conf, 'log://')
        first = make_event()
        second = make_event('compute.host.up', host='compute-2',
                            since=GENERATED)

        notifier.notify([first, second])

        lines = self.lines()
        self.assertEqual(2, len(lines))
        self.assertTrue(all(line.startswith('INFO ') for line in lines))
        self.assertIn('compute.host.down', lines[0])
        self.assertIn(first.message_id, lines[0])
        self.assertIn('host=compute-1', lines[0])
        self.assertIn('status=down', lines[0])
        self.assertIn(second.message_id, lines[1])
        self.assertIn('since=2024-05-01T12:00:00.250000', lines[1])

    def test_alarm_adds_one_line_for_the_transition(self):
        notifier = log_notifier.LogAction(self.conf, 'log://')
        alarm = make_alarm()

        notifier.notify(alarm)

        lines = self.lines()
        self.assertEqual(2, len(lines))
        alarm_lines = [line for line in lines if alarm.alarm_id in line]
        self.assertEqual(1, len(alarm_lines))
        for text in ('host-down', 'critical', 'from ok to alarm',
                     alarm.reason):
            self.assertIn(text, alarm_lines[0])

    def test_level_from_url(self):
        for name, prefix in (('debug', 'DEBUG'), ('info', 'INFO'),
                             ('warning', 'WARNING'), ('error', 'ERROR'),
                             ('WARNING', 'WARNING')):
            logger = self.useFixture(fixtures.FakeLogger(
                name=log_notifier.__name__, level=logging.DEBUG,
                format='%(levelname)s %(message)s'))
            notifier = log_notifier.LogAction(self.conf,
                                              f'log://?level={name}')
            notifier.notify(make_alarm())
            lines = logger.output.splitlines()
            self.assertEqual(2, len(lines), name)
            self.assertTrue(all(line.startswith(prefix + ' ')
                                for line in lines), lines)

    def test_level_from_option_when_url_has_none(self):
        self.set_opts('notifier', log_level='error')
        notifier = log_notifier.LogNotifier(self.conf, 'log://')

        notifier.notify([make_event()])

        self.assertTrue(self.lines()[0].startswith('ERROR '))

    def test_nothing_logged_below_the_logger_level(self):
        quiet = self.useFixture(fixtures.FakeLogger(
            name=log_notifier.__name__, level=logging.INFO))
        notifier = log_notifier.LogAction(self.conf, 'log://?level=debug')

        notifier.notify(make_alarm())

        self.assertEqual('', quiet.output)

    def test_invalid_level(self):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                log_notifier.LogNotifier, self.conf,
                                'log://?level=loud')
        self.assertIn('log://?level=loud', str(exc))
        self.assertIn("'loud'", str(exc))
        self.assertIn('debug, info, warning, error', str(exc))

    def test_unknown_parameter(self):
        exc = self.assertRaises(exceptions.ConfigurationError,
                                log_notifier.LogNotifier, self.conf,
                                'log://?levle=info')
        self.assertIn('levle', str(exc))


class TestLoadNotifier(base.TestCase):
    """Notifier plugins are found by URL scheme through entry points."""

    def test_load_log(self):
        notifier = plugins.load_notifier(self.conf, 'log://?level=warning')
        self.assertIsInstance(notifier, log_notifier.LogNotifier)
        self.assertEqual(logging.WARNING, notifier.level)

    def test_invalid_url_is_a_configuration_error_not_a_load_error(self):
        self.assertRaises(exceptions.ConfigurationError,
                          plugins.load_notifier, self.conf,
                          'log://?level=loud')

    def test_unknown_scheme_lists_the_installed_notifiers(self):
        exc = self.assertRaises(exceptions.PluginLoadError,
                                plugins.load_notifier, self.conf, 'smtp://x')
        self.assertEqual('smtp', exc.name)
        self.assertEqual(plugins.NOTIFIERS_NAMESPACE, exc.namespace)
        for name in ('log', 'messaging', 'http', 'https'):
            self.assertIn(name, exc.available)
        self.assertIn('http, https, log, messaging', str(exc))
