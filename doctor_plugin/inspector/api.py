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

"""The inspector's HTTP API, in OPNFV Doctor's format.

``PUT /events`` takes Doctor's inspector event list, ``PUT
/events/ceilometer`` a list of events in Ceilometer's format (what our
``doctor://`` Ceilometer publisher sends), ``POST /events/alertmanager``
Prometheus Alertmanager's webhook, ``POST /events/collectd`` collectd's
write_http notifications and ``POST /events/libvirt`` instance lifecycle
events; ``GET /healthz`` answers a load balancer (503 from a member of a
cluster that lost its coordination backend).

Every other request is rate limited per client address (429), must be
authenticated (401; :mod:`doctor_plugin.inspector.auth`) and allowed by
the policy (403; :mod:`doctor_plugin.policies`), in that order, before
its body is read; events over the limits of
:func:`doctor_plugin.event.check_limits` are refused (400).
Errors are JSON: ``{"error": {"code", "title", "message", "field"}}``,
where ``field`` names the offending part of the body. Nothing invalid
reaches the bus: a body is transformed as a whole before any event is
published.
"""

from __future__ import annotations

import json
import math
import socket
import socketserver
import threading
import typing
from wsgiref import simple_server

from oslo_config import cfg
from oslo_log import log as logging
import webob
import webob.dec
import webob.exc

from doctor_plugin.coordination import forward
from doctor_plugin import event as event_model
from doctor_plugin import exceptions
from doctor_plugin.inspector import auth
from doctor_plugin.inspector import engine
from doctor_plugin.inspector import ratelimit
from doctor_plugin import policies
from doctor_plugin.transformers import base as transformer_base
from doctor_plugin.transformers import payload as checks

LOG = logging.getLogger(__name__)

GROUP = 'inspector'

OPTS = [
    cfg.HostAddressOpt('host',
                       default='127.0.0.1',
                       help='Address the inspector API listens on.'),
    cfg.PortOpt('port',
                default=12345,
                help='Port the inspector API listens on (Doctor\'s sample '
                     'inspector uses 12345).'),
    cfg.IntOpt('max_request_body_size',
               default=1024 * 1024, min=1024,
               help='Largest request body accepted, in bytes; larger '
                    'requests get 413.'),
    cfg.StrOpt('api_transformer',
               default='doctor',
               help='Transformer plugin (doctor_plugin.transformers) that '
                    'turns PUT /events bodies into events.'),
    cfg.FloatOpt('rate_limit',
                 default=50.0, min=0.0,
                 help='Requests per second each client address may make '
                      'to the API on average (GET /healthz aside); more '
                      'get 429 with Retry-After. 0 turns the limit off. '
                      'Behind a proxy every request comes from its '
                      'address: raise the limit to the sum of the '
                      'sources.'),
    cfg.IntOpt('rate_limit_burst',
               default=200, min=1,
               help='Requests a client address may make at once, above '
                    'rate_limit, e.g. when a rack fails and one '
                    'Alertmanager reports every host.'),
]


def _error(status: int, message: str, field: str | None = None
           ) -> webob.Response:
    body = {'error': {'code': status,
                      'title': webob.exc.status_map[status].title,
                      'message': message}}
    if field is not None:
        body['error']['field'] = field
    return webob.Response(status=status, json_body=body)


class InspectorAPI:
    """The WSGI application.

    :param conf: service configuration
    :param inspector: the engine events are handed to
    :param transformer: turns a ``PUT /events`` body into events
    """

    def __init__(self, conf: cfg.ConfigOpts, inspector: engine.Inspector,
                 transformer: transformer_base.TransformerBase,
                 routes: typing.Mapping[str, tuple[
                     str, transformer_base.TransformerBase]] | None = None
                 ) -> None:
        self.conf = conf
        self.inspector = inspector
        self.transformer = transformer
        #: path → (method, transformer of its bodies)
        self.routes = {'/events': ('PUT', transformer)}
        self.routes.update(routes or {})
        self.authenticator = auth.make_authenticator(conf)
        self.enforcer = (policies.make_enforcer(conf)
                         if self.authenticator.enforces_policy else None)
        self.rate_limiter = None
        if conf.inspector.rate_limit:
            self.rate_limiter = ratelimit.TokenBuckets(
                conf.inspector.rate_limit, conf.inspector.rate_limit_burst)
        # Sources refused since they last got through: logged once.
        self._throttled: set[str] = set()
        self._authenticated_app = self.authenticator.wrap(self.serve)

    @webob.dec.wsgify
    def __call__(self, req: webob.Request) -> webob.Response:
        if req.path_info == '/healthz':
            if req.method not in ('GET', 'HEAD'):
                resp = _error(405, 'use GET on /healthz')
                resp.allow = ('GET', 'HEAD')
                return resp
            return self.health()
        if (req.path_info == forward.PATH
                and self.inspector.cluster.forwarder is not None):
            # Members prove who they are by their signature, not a token.
            return self.take_over(req)
        if self.rate_limiter is not None:
            source = req.remote_addr or ''
            wait = self.rate_limiter.take(source)
            if wait:
                return self._throttle(req, source, wait)
            self._throttled.discard(source)
        # Through the strategy's middleware (Keystone's) to serve().
        return req.get_response(self._authenticated_app)

    def health(self) -> webob.Response:
        """``GET /healthz``: 200, or 503 for a member without a lease.

        A member cut off from its coordination backend acts on no host
        and refuses every report (503), so a load balancer should send
        reports elsewhere; the counts (not the members' names, since no
        token is needed here) let an operator compare the members' views.
        """
        membership = self.inspector.cluster.membership
        if not membership.enabled:
            return webob.Response(json_body={'status': 'ok'})
        lease = membership.has_lease()
        view = membership.view
        return webob.Response(
            status=200 if lease else 503,
            json_body={'status': 'ok' if lease else 'no-lease',
                       'coordination': {'lease': lease,
                                        'members': len(view.members),
                                        'version': view.version}})

    def _throttle(self, req: webob.Request, source: str,
                  wait: float) -> webob.Response:
        limit = self.conf.inspector.rate_limit
        if source not in self._throttled:
            self._throttled.add(source)
            LOG.warning('Rate limiting %(source)s: over %(rate)g requests '
                        'a second ([inspector] rate_limit); its refused '
                        'requests are not logged until it slows down',
                        {'source': source, 'rate': limit})
        resp = _error(429, f'too many requests from {source}: the limit is '
                           f'{limit:g} a second; retry after '
                           f'{wait:.2f} s')
        resp.headers['Retry-After'] = str(max(1, math.ceil(wait)))
        return resp

    @webob.dec.wsgify
    def serve(self, req: webob.Request) -> webob.Response:
        """Authenticate, authorise and route a request (not /healthz)."""
        credentials = self.authenticator.authenticate(req)
        if credentials is None:
            # Never the token itself: it may be a mistyped secret.
            problem = ('the X-Auth-Token header is not valid'
                       if auth.TOKEN_HEADER in req.headers
                       else 'there is no X-Auth-Token header')
            LOG.warning('Refused %(method)s %(path)s from %(source)s: '
                        '%(problem)s',
                        {'method': req.method, 'path': req.path_info,
                         'source': req.remote_addr, 'problem': problem})
            resp = _error(401, f'authentication required: {problem}; send '
                               f'{self.authenticator.credential} in it')
            if self.authenticator.challenge:
                resp.headers['WWW-Authenticate'] = (
                    self.authenticator.challenge)
            return resp
        path = req.path_info.rstrip('/')
        route = self.routes.get(path)
        if route is not None:
            method, transformer = route
            if req.method != method:
                resp = _error(405, f'{req.method} is not allowed on {path};'
                                   f' report events with {method}')
                resp.allow = (method,)
                return resp
            refusal = self._authorize(req, path, credentials)
            if refusal is not None:
                return refusal
            return self.put_events(req, transformer)
        served = ', '.join(f'{method} {path}' for path, (method, _)
                           in self.routes.items())
        return _error(404, f'no such resource {req.path_info}; the '
                           f'inspector serves {served} and GET /healthz')

    def _authorize(self, req: webob.Request, path: str,
                   credentials: auth.Credentials) -> webob.Response | None:
        if self.enforcer is None:
            return None
        rule = policies.rule_for(path)
        creds = credentials.as_policy_creds()
        target = {'project_id': credentials.project_id,
                  'user_id': credentials.user_id}
        if self.enforcer.authorize(rule, target, creds):
            return None
        LOG.warning('Refused %(method)s %(path)s from %(source)s: policy '
                    '%(rule)s does not allow roles %(roles)s (user '
                    '%(user)s, project %(project)s)',
                    {'method': req.method, 'path': path,
                     'source': req.remote_addr, 'rule': rule,
                     'roles': ','.join(credentials.roles) or '(none)',
                     'user': credentials.user_id,
                     'project': credentials.project_id})
        return _error(403, f'policy {rule} does not allow {req.method} '
                           f'{path} with your roles; ask for a role it '
                           f'allows (by default doctor_monitor)')

    def put_events(self, req: webob.Request,
                   transformer: transformer_base.TransformerBase
                   ) -> webob.Response:
        limit = self.conf.inspector.max_request_body_size
        if req.content_length is not None and req.content_length > limit:
            LOG.warning('Refused a body of %(size)d bytes from %(source)s: '
                        'over [inspector] max_request_body_size',
                        {'size': req.content_length,
                         'source': req.remote_addr})
            return _error(413, f'request body of {req.content_length} bytes '
                               f'exceeds the limit of {limit} bytes')
        ctype = req.content_type
        if ctype and ctype != 'application/json':
            return _error(415, f'Content-Type {ctype} is not supported; '
                               f'send application/json')
        body = req.body_file.read(limit + 1)
        if len(body) > limit:
            LOG.warning('Refused a body over %(limit)d bytes from '
                        '%(source)s: over [inspector] max_request_body_size',
                        {'limit': limit, 'source': req.remote_addr})
            return _error(413, f'request body exceeds the limit of {limit} '
                               f'bytes')
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return _error(400, f'body is not valid JSON: {exc}')
        except RecursionError:
            # json gives up on a nesting about a thousand levels deep.
            return _error(400, 'body is nested too deeply; no payload the '
                               'inspector takes nests more than '
                               f'{checks.MAX_DEPTH} levels')
        try:
            events = transformer.transform(payload)
            event_model.check_limits(events, self.conf.inspector.max_traits,
                                     self.conf.inspector.max_string_length)
        except exceptions.LimitExceeded as exc:
            LOG.warning('Refused %(method)s %(path)s from %(source)s: '
                        '%(error)s', {'method': req.method,
                                      'path': req.path_info,
                                      'source': req.remote_addr,
                                      'error': exc})
            return _error(400, str(exc), exc.field)
        except exceptions.InvalidPayload as exc:
            return _error(400, str(exc), exc.field)
        try:
            published = self.inspector.process(events)
        except exceptions.DeliveryError as exc:
            LOG.error('Could not publish %d event(s): %s', len(events), exc)
            return _error(503, f'the events are valid but could not be '
                               f'published ({exc}); retry the request')
        return webob.Response(
            status=200,
            json_body={'events': [e.message_id for e in events],
                       'published': len(published)})

    def take_over(self, req: webob.Request) -> webob.Response:
        """``POST /v1/cluster/events``: a member hands us our hosts."""
        forwarder = self.inspector.cluster.forwarder
        assert forwarder is not None
        if req.method != 'POST':
            resp = _error(405, f'use POST on {forward.PATH}')
            resp.allow = ('POST',)
            return resp
        # A member sends what it made of a body within the limits; its
        # events, serialised, are a few times that at most.
        limit = 4 * self.conf.inspector.max_request_body_size
        body = req.body_file.read(limit + 1)
        if len(body) > limit:
            return _error(413, f'handed-over events exceed {limit} bytes')
        try:
            events = forwarder.receive(req.headers, body)
        except PermissionError as exc:
            LOG.warning('Refused handed-over events from %(source)s '
                        '(member %(member)s): %(problem)s',
                        {'source': req.remote_addr, 'problem': exc,
                         'member': req.headers.get(forward.MEMBER_HEADER)})
            return _error(401, f'not signed by a member: {exc}; every '
                               f'member needs the same [coordination] '
                               f'member_secret')
        except exceptions.InvalidPayload as exc:
            return _error(400, str(exc), exc.field)
        try:
            published = self.inspector.process(events, handed_over=True)
        except exceptions.DeliveryError as exc:
            LOG.error('Could not handle %d event(s) handed over by %s: %s',
                      len(events), req.headers.get(forward.MEMBER_HEADER),
                      exc)
            return _error(503, f'could not handle the events ({exc}); '
                               f'retry')
        return webob.Response(
            status=200,
            json_body={'events': [e.message_id for e in events],
                       'published': len(published)})


class _QuietHandler(simple_server.WSGIRequestHandler):
    # wsgiref writes headers and body separately; without this the body
    # waits for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: typing.Any) -> None:
        LOG.debug('inspector API: ' + format, *args)

    def address_string(self) -> str:
        # Never a reverse DNS lookup on the hot path.
        return self.client_address[0]


class _ThreadingWSGIServer(socketserver.ThreadingMixIn,
                           simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a rack's monitors reporting at
    # once overflow it, and the kernel drops their SYNs for a second.
    request_queue_size = socket.SOMAXCONN


class _ThreadingWSGIServer6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class APIServer:
    """Serve a WSGI app on ``host:port`` in a background thread."""

    def __init__(self, app: typing.Callable, host: str, port: int) -> None:
        server_class = (_ThreadingWSGIServer6 if ':' in host
                        else _ThreadingWSGIServer)
        self._server = simple_server.make_server(
            host, port, app, server_class=server_class,
            handler_class=_QuietHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        # An AF_INET(6) server's address is a (host, port, ...) tuple.
        host, port = typing.cast(tuple, self._server.server_address)[:2]
        if ':' in host:
            host = f'[{host}]'
        return f'http://{host}:{port}'

    def start(self) -> APIServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={'poll_interval': 0.1},
            name='doctor-inspector-api', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for serve_forever(): only if it ever ran.
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
