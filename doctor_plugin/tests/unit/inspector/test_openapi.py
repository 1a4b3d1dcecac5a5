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

"""The OpenAPI description of the inspector's API, against the API."""

import importlib.resources

from schemathesis.specs.openapi import definitions
import webob
import yaml

from doctor_plugin.common import messaging
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin.testing import chain as chain_mod
from doctor_plugin.tests import base

#: The paths the API serves besides its event routes.
FIXED_ROUTES = {('/healthz', 'get')}

#: What every event route may answer.
EVENT_STATUSES = {'200', '400', '401', '403', '405', '413', '415', '429',
                  '503'}


def load_spec():
    """The description as installed (package data), parsed."""
    text = importlib.resources.files('doctor_plugin.inspector').joinpath(
        'openapi.yaml').read_text(encoding='utf-8')
    return yaml.safe_load(text)


def refs(node):
    """Every ``$ref`` in a parsed document."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if '$ref' in item:
                yield item['$ref']
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class TestOpenAPI(base.TestCase):

    def setUp(self):
        super().setUp()
        self.spec = load_spec()
        self.addCleanup(messaging.cleanup)
        self.set_opts(transport_url=messaging.FAKE_TRANSPORT_URL)
        self.set_opts(group='inspector', port=0,
                      enable_notification_listener=False)
        self.secret = chain_mod.use_shared_secret(self.conf)

    def make_service(self):
        pipeline = pipeline_mod.Pipeline(
            self.conf, pipeline_mod.PipelineDefinition.from_dict(
                {'sources': [{'name': 'all', 'events': ['*'],
                              'sinks': ['log']}],
                 'sinks': [{'name': 'log', 'notifiers': ['log://']}]},
                '<test pipeline>'))
        service = inspector_service.InspectorService(self.conf,
                                                     pipeline=pipeline)
        self.addCleanup(service.stop)
        return service

    def test_is_valid_openapi_3_0(self):
        self.assertTrue(self.spec['openapi'].startswith('3.0.'))
        definitions.OPENAPI_30_VALIDATOR.validate(self.spec)

    def test_an_invalid_description_is_caught(self):
        # The validator is not one that lets anything through.
        self.spec['paths']['/events']['put']['responses']['2xx'] = {}
        # jsonschema_rs.ValidationError, schemathesis's validator's.
        self.assertRaises(ValueError,
                          definitions.OPENAPI_30_VALIDATOR.validate,
                          self.spec)

    def test_every_reference_resolves(self):
        for ref in set(refs(self.spec)):
            self.assertTrue(ref.startswith('#/'), ref)
            node = self.spec
            for part in ref[2:].split('/'):
                self.assertIn(part, node, ref)
                node = node[part]

    def test_paths_and_methods_are_the_routes_served(self):
        service = self.make_service()
        served = {(path, method.lower())
                  for path, (method, _) in service.app.routes.items()}
        documented = {(path, method) for path, item in
                      self.spec['paths'].items() for method in item}
        self.assertEqual(served | FIXED_ROUTES, documented)
        for path, method in FIXED_ROUTES:
            resp = webob.Request.blank(path, method=method.upper()
                                       ).get_response(service.app)
            self.assertEqual(200, resp.status_code, resp.text)
        # And the routes table is the whole truth: anything else is 404.
        resp = webob.Request.blank(
            '/events/undocumented', method='PUT',
            headers={'X-Auth-Token': self.secret}).get_response(service.app)
        self.assertEqual(404, resp.status_code, resp.text)

    def test_event_routes_document_every_answer(self):
        error = {'$ref': '#/components/schemas/Error'}
        responses = self.spec['components']['responses']
        for path, item in self.spec['paths'].items():
            if path == '/healthz':
                continue
            for method, operation in item.items():
                self.assertEqual(EVENT_STATUSES,
                                 set(operation['responses']), path)
                self.assertIn('application/json',
                              operation['requestBody']['content'])
                for status, answer in operation['responses'].items():
                    if status == '200':
                        continue
                    name = answer['$ref'].rsplit('/', 1)[1]
                    self.assertEqual(
                        error, responses[name]['content'][
                            'application/json']['schema'], status)

    def test_the_security_scheme_is_the_token_header(self):
        self.assertEqual(
            {'type': 'apiKey', 'in': 'header', 'name': 'X-Auth-Token'},
            {k: v for k, v in self.spec['components']['securitySchemes'][
                'authToken'].items() if k != 'description'})
        self.assertEqual([{'authToken': []}], self.spec['security'])
        self.assertEqual([], self.spec['paths']['/healthz']['get'][
            'security'])
