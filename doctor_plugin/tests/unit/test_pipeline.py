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

"""Tests for doctor_plugin.pipeline."""

import logging
import os

import fixtures

from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin import pipeline
from doctor_plugin.testing import consumer
from doctor_plugin.tests import base
from doctor_plugin.tests import notifications


closed_port = base.closed_port


def document(**overrides):
    """A valid pipeline document; ``overrides`` replace top-level keys."""
    data = {
        'sources': [{'name': 'host_faults',
                     'events': ['compute.host.*'],
                     'sinks': ['bus']}],
        'sinks': [{'name': 'bus', 'notifiers': ['log://']}],
    }
    data.update(overrides)
    return data


def host_event(event_type='compute.host.down', **traits):
    traits.setdefault('host', 'compute-1')
    return event_model.Event.create(event_type, traits)


class TestEventSelector(base.TestCase):

    def test_include_patterns_use_wildcards(self):
        selector = pipeline.EventSelector.parse(['compute.host.*'])
        self.assertTrue(selector.matches('compute.host.down'))
        self.assertFalse(selector.matches('compute.instance.update'))

    def test_exclusion_wins_over_inclusion(self):
        selector = pipeline.EventSelector.parse(
            ['compute.host.*', '!compute.host.disabled'])
        self.assertTrue(selector.matches('compute.host.down'))
        self.assertFalse(selector.matches('compute.host.disabled'))

    def test_only_exclusions_select_everything_else(self):
        selector = pipeline.EventSelector.parse(['!compute.host.up'])
        self.assertEqual(('*',), selector.include)
        self.assertTrue(selector.matches('compute.instance.update'))
        self.assertFalse(selector.matches('compute.host.up'))

    def test_match_is_case_sensitive(self):
        selector = pipeline.EventSelector.parse(['compute.host.down'])
        self.assertFalse(selector.matches('Compute.Host.Down'))


class TestPipelineDefinition(base.TestCase):

    def assertInvalid(self, data, entry, *fragments):
        exc = self.assertRaises(
            exceptions.ConfigurationError,
            pipeline.PipelineDefinition.from_dict, data, 'pipeline.yaml')
        self.assertEqual('pipeline.yaml', exc.source)
        self.assertEqual(entry, exc.entry)
        message = str(exc)
        self.assertTrue(message.startswith('pipeline.yaml'), message)
        if entry:
            self.assertIn(entry, message)
        for fragment in fragments:
            self.assertIn(fragment, exc.problem)
        return exc

    def test_valid_document(self):
        definition = pipeline.PipelineDefinition.from_dict(
            document(sources=[{'name': 'faults',
                               'events': ['compute.host.*',
                                          '!compute.host.up'],
                               'sinks': ['bus']}]), 'p.yaml')
        self.assertEqual('p.yaml', definition.origin)
        (source,) = definition.sources
        self.assertEqual('faults', source.name)
        self.assertEqual(('compute.host.*',), source.selector.include)
        self.assertEqual(('compute.host.up',), source.selector.exclude)
        self.assertEqual(('bus',), source.sinks)
        self.assertEqual(('log://',), definition.sinks['bus'].notifiers)

    def test_not_a_mapping(self):
        self.assertInvalid(['sources'], None, 'must be a mapping')

    def test_unknown_top_level_key(self):
        self.assertInvalid(document(publishers=[]), None,
                           'unknown top-level keys: publishers')

    def test_sinks_missing_or_empty(self):
        data = document()
        del data['sinks']
        self.assertInvalid(data, 'sinks', 'non-empty list')
        self.assertInvalid(document(sinks=[]), 'sinks', 'non-empty list')

    def test_sink_not_a_mapping(self):
        self.assertInvalid(document(sinks=['bus']), 'sinks[0]',
                           'must be a mapping')

    def test_sink_without_name(self):
        self.assertInvalid(document(sinks=[{'notifiers': ['log://']}]),
                           'sinks[0]', '"name" must be a non-empty string')

    def test_duplicate_sink(self):
        sink = {'name': 'bus', 'notifiers': ['log://']}
        self.assertInvalid(document(sinks=[sink, dict(sink)]),
                           'sinks[1] (bus)', 'duplicate sink name')

    def test_sink_without_notifiers(self):
        self.assertInvalid(document(sinks=[{'name': 'bus'}]),
                           'sinks[0] (bus)', '"notifiers" must be a non-empty')
        self.assertInvalid(
            document(sinks=[{'name': 'bus', 'notifiers': ['log://', '']}]),
            'sinks[0] (bus)', '"notifiers" must be a non-empty')

    def test_sink_unknown_key(self):
        self.assertInvalid(
            document(sinks=[{'name': 'bus', 'notifiers': ['log://'],
                             'publishers': []}]),
            'sinks[0] (bus)', 'unknown keys: publishers')

    def test_notifier_that_is_not_a_url(self):
        self.assertInvalid(
            document(sinks=[{'name': 'bus', 'notifiers': ['log']}]),
            'sinks[0] (bus)', "notifier 'log' is not a URL", 'log://')

    def test_sources_missing_or_empty(self):
        data = document()
        del data['sources']
        self.assertInvalid(data, 'sources', 'non-empty list')
        self.assertInvalid(document(sources=[]), 'sources', 'non-empty list')

    def test_source_not_a_mapping(self):
        self.assertInvalid(document(sources=['faults']), 'sources[0]',
                           'must be a mapping')

    def test_source_without_name(self):
        self.assertInvalid(
            document(sources=[{'events': ['*'], 'sinks': ['bus']}]),
            'sources[0]', '"name" must be a non-empty string')

    def test_duplicate_source(self):
        source = {'name': 'faults', 'events': ['*'], 'sinks': ['bus']}
        self.assertInvalid(document(sources=[source, dict(source)]),
                           'sources[1] (faults)', 'duplicate source name')

    def test_source_without_events(self):
        self.assertInvalid(
            document(sources=[{'name': 'faults', 'sinks': ['bus']}]),
            'sources[0] (faults)', '"events" must be a non-empty list')
        self.assertInvalid(
            document(sources=[{'name': 'faults', 'events': [3],
                               'sinks': ['bus']}]),
            'sources[0] (faults)', '"events" must be a non-empty list')

    def test_source_without_sinks(self):
        self.assertInvalid(
            document(sources=[{'name': 'faults', 'events': ['*']}]),
            'sources[0] (faults)', '"sinks" must be a non-empty list')

    def test_source_names_undefined_sink(self):
        self.assertInvalid(
            document(sources=[{'name': 'faults', 'events': ['*'],
                               'sinks': ['bus', 'nowhere']}]),
            'sources[0] (faults)', "sink 'nowhere' is not defined",
            'defined sinks: bus')

    def test_source_unknown_key(self):
        self.assertInvalid(
            document(sources=[{'name': 'faults', 'events': ['*'],
                               'sinks': ['bus'], 'meters': []}]),
            'sources[0] (faults)', 'unknown keys: meters')

    def test_from_file(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'pipeline.yaml')
        with open(path, 'w') as f:
            f.write('sources:\n'
                    '  - name: faults\n'
                    '    events: ["compute.host.*"]\n'
                    '    sinks: [bus]\n'
                    'sinks:\n'
                    '  - name: bus\n'
                    '    notifiers: ["log://"]\n')
        definition = pipeline.PipelineDefinition.from_file(path)
        self.assertEqual(path, definition.origin)
        self.assertEqual(['faults'], [s.name for s in definition.sources])

    def test_from_file_missing(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'missing.yaml')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                pipeline.PipelineDefinition.from_file, path)
        self.assertEqual(path, exc.source)
        self.assertIn('cannot read the pipeline file', exc.problem)
        self.assertIn('pipeline_cfg_file', exc.problem)

    def test_from_file_invalid_yaml(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'pipeline.yaml')
        with open(path, 'w') as f:
            f.write('sources: [unclosed\n')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                pipeline.PipelineDefinition.from_file, path)
        self.assertEqual(path, exc.source)
        self.assertIn('is not valid YAML', exc.problem)

    def test_from_file_errors_name_the_file(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'pipeline.yaml')
        with open(path, 'w') as f:
            f.write('sinks: []\n')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                pipeline.PipelineDefinition.from_file, path)
        self.assertEqual(f'{path}: sinks: must be a non-empty list',
                         str(exc))


class TestPipeline(base.TestCase):

    def make(self, data):
        pipe = pipeline.Pipeline(
            self.conf,
            pipeline.PipelineDefinition.from_dict(data, 'pipeline.yaml'))
        self.addCleanup(pipe.close)
        return pipe

    def test_notifiers_loaded_once_per_url(self):
        pipe = self.make({
            'sources': [{'name': 's', 'events': ['*'],
                         'sinks': ['a', 'b']}],
            'sinks': [{'name': 'a', 'notifiers': ['log://']},
                      {'name': 'b', 'notifiers': ['log://',
                                                  'log://?level=debug']}]})
        self.assertEqual(['log://', 'log://?level=debug'],
                         sorted(pipe.notifiers))
        self.assertEqual('LogNotifier',
                         type(pipe.notifiers['log://']).__name__)

    def test_unknown_scheme_names_file_sink_and_plugins(self):
        definition = pipeline.PipelineDefinition.from_dict(
            document(sinks=[{'name': 'bus', 'notifiers': ['ftp://x']}]),
            'pipeline.yaml')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                pipeline.Pipeline, self.conf, definition)
        self.assertEqual('pipeline.yaml', exc.source)
        self.assertEqual('sink bus', exc.entry)
        self.assertIn("'ftp'", exc.problem)
        self.assertIn('doctor_plugin.notifiers', exc.problem)
        self.assertIn('http, https, log, messaging', exc.problem)

    def test_invalid_notifier_url_names_the_sink(self):
        definition = pipeline.PipelineDefinition.from_dict(
            document(sinks=[{'name': 'bus',
                             'notifiers': ['log://?level=loud']}]),
            'pipeline.yaml')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                pipeline.Pipeline, self.conf, definition)
        self.assertEqual('sink bus', exc.entry)
        self.assertIn("level 'loud'", exc.problem)

    def test_route_selects_by_source_and_excludes(self):
        pipe = self.make({
            'sources': [{'name': 'faults',
                         'events': ['compute.host.*',
                                    '!compute.host.disabled'],
                         'sinks': ['bus']},
                        {'name': 'everything', 'events': ['*'],
                         'sinks': ['audit']}],
            'sinks': [{'name': 'bus', 'notifiers': ['log://?level=info']},
                      {'name': 'audit',
                       'notifiers': ['log://?level=debug']}]})
        down = host_event('compute.host.down')
        disabled = host_event('compute.host.disabled')
        update = host_event('compute.instance.update')
        batches = pipe.route([down, disabled, update])
        self.assertEqual({'log://?level=info': [down],
                          'log://?level=debug': [down, disabled, update]},
                         dict(batches))

    def test_route_keeps_event_order_and_delivers_once_per_url(self):
        # Two sources select the same events into the same sink: each
        # event still appears once per notifier, in the order given.
        pipe = self.make({
            'sources': [{'name': 'a', 'events': ['compute.host.*'],
                         'sinks': ['bus']},
                        {'name': 'b', 'events': ['*'], 'sinks': ['bus']}],
            'sinks': [{'name': 'bus', 'notifiers': ['log://']}]})
        events = [host_event(host=f'compute-{i}') for i in range(5)]
        events.insert(2, host_event('compute.instance.update'))
        self.assertEqual({'log://': events}, dict(pipe.route(events)))

    def test_route_nothing_selected(self):
        pipe = self.make(document())
        self.assertEqual({}, dict(pipe.route(
            [host_event('compute.instance.update')])))
        self.assertEqual({}, pipe.publish(
            [host_event('compute.instance.update')]))

    def test_publish_to_log_notifier(self):
        logger = self.useFixture(fixtures.FakeLogger(
            name='doctor_plugin.notifiers.log', level=logging.INFO,
            format='%(levelname)s %(message)s'))
        pipe = self.make(document(sinks=[
            {'name': 'bus', 'notifiers': ['log://?level=warning']}]))
        ev = host_event(host='compute-7')
        self.assertEqual({}, pipe.publish(
            [ev, host_event('compute.instance.update')]))
        lines = logger.output.splitlines()
        self.assertEqual(1, len(lines), lines)
        self.assertTrue(lines[0].startswith(
            f'WARNING Event compute.host.down <{ev.message_id}>'), lines[0])
        self.assertIn('host=compute-7', lines[0])

    def test_failure_reported_per_url_and_others_delivered(self):
        # Without the outbox a failure is the caller's to handle (with it,
        # tests/unit/delivery: it is retried, not reported).
        self.set_opts(group='delivery', durable=False)
        self.set_opts(group='notifier', webhook_max_retries=0)
        receiver = consumer.ConsumerServer().start()
        self.addCleanup(receiver.stop)
        dead_url = f'http://127.0.0.1:{closed_port()}/dead'
        good_url = f'{receiver.url}/alive'
        pipe = self.make({
            'sources': [{'name': 's', 'events': ['compute.host.*'],
                         'sinks': ['k']}],
            'sinks': [{'name': 'k',
                       'notifiers': [dead_url, good_url, 'log://']}]})
        pipe.notifiers['log://'] = recorder = notifications.BatchRecorder()
        ev = host_event()

        failures = pipe.publish([ev])

        self.assertEqual([dead_url], list(failures))
        self.assertIsInstance(failures[dead_url], exceptions.DeliveryError)
        self.assertIn('/dead', str(failures[dead_url]))
        self.assertEqual([[ev]], recorder.batches)
        received = receiver.wait_for(1, timeout=2)
        self.assertEqual(['/alive'], [a.path for a in received])
        self.assertEqual(ev.message_id,
                         received[0].body['reason_data']['event']
                         ['message_id'])

    def test_single_target_failure_is_returned(self):
        pipe = self.make(document())

        class Broken(notifications.BatchRecorder):
            def notify(self, events):
                raise exceptions.DeliveryError('broker gone')

        pipe.notifiers['log://'] = Broken()
        failures = pipe.publish([host_event()])
        self.assertEqual(['log://'], list(failures))
        self.assertEqual('broker gone', str(failures['log://']))

    def test_close_closes_notifiers(self):
        pipe = pipeline.Pipeline(
            self.conf, pipeline.PipelineDefinition.from_dict(document()))
        pipe.notifiers['log://'] = recorder = notifications.BatchRecorder()
        pipe.close()
        self.assertTrue(recorder.closed)

    def test_from_conf_reads_the_configured_file(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'my-pipeline.yaml')
        with open(path, 'w') as f:
            f.write('sources: [{name: s, events: ["*"], sinks: [k]}]\n'
                    'sinks: [{name: k, notifiers: ["log://"]}]\n')
        self.set_opts(pipeline_cfg_file=path)
        pipe = pipeline.Pipeline.from_conf(self.conf)
        self.addCleanup(pipe.close)
        self.assertEqual(path, pipe.definition.origin)
        self.assertEqual(['log://'], list(pipe.notifiers))

    def test_from_conf_missing_file(self):
        self.set_opts(pipeline_cfg_file='no-such-pipeline-9f3c.yaml')
        exc = self.assertRaises(exceptions.ConfigurationError,
                                pipeline.Pipeline.from_conf, self.conf)
        self.assertEqual('no-such-pipeline-9f3c.yaml', exc.source)
        self.assertIn('pipeline_cfg_file', exc.problem)
