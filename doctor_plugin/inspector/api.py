"""The inspector's HTTP API, in OPNFV Doctor's format.

``PUT /events`` takes Doctor's inspector event list, ``PUT
/events/ceilometer`` a list of events in Ceilometer's format (what our
``doctor://`` Ceilometer publisher sends), ``POST /events/alertmanager``
Prometheus Alertmanager's webhook, ``POST /events/collectd`` collectd's
write_http notifications and ``POST /events/libvirt`` instance lifecycle
events; ``GET /healthz`` answers a load balancer.
Errors are JSON: ``{"error": {"code", "title", "message", "field"}}``,
where ``field`` names the offending part of the body. Nothing invalid
reaches the bus: a body is transformed as a whole before any event is
published.
"""

from __future__ import annotations

import json
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

from doctor_plugin import exceptions
from doctor_plugin.inspector import engine
from doctor_plugin.transformers import base as transformer_base

LOG = logging.getLogger(__name__)

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
        conf.register_opts(OPTS, group='inspector')
        self.conf = conf
        self.inspector = inspector
        self.transformer = transformer
        #: path → (method, transformer of its bodies)
        self.routes = {'/events': ('PUT', transformer)}
        self.routes.update(routes or {})

    @webob.dec.wsgify
    def __call__(self, req: webob.Request) -> webob.Response:
        path = req.path_info.rstrip('/')
        route = self.routes.get(path)
        if route is not None:
            method, transformer = route
            if req.method != method:
                resp = _error(405, f'{req.method} is not allowed on {path};'
                                   f' report events with {method}')
                resp.allow = (method,)
                return resp
            return self.put_events(req, transformer)
        if req.path_info == '/healthz':
            if req.method not in ('GET', 'HEAD'):
                resp = _error(405, 'use GET on /healthz')
                resp.allow = ('GET', 'HEAD')
                return resp
            return webob.Response(json_body={'status': 'ok'})
        served = ', '.join(f'{method} {path}' for path, (method, _)
                           in self.routes.items())
        return _error(404, f'no such resource {req.path_info}; the '
                           f'inspector serves {served} and GET /healthz')

    def put_events(self, req: webob.Request,
                   transformer: transformer_base.TransformerBase
                   ) -> webob.Response:
        limit = self.conf.inspector.max_request_body_size
        if req.content_length is not None and req.content_length > limit:
            return _error(413, f'request body of {req.content_length} bytes '
                               f'exceeds the limit of {limit} bytes')
        ctype = req.content_type
        if ctype and ctype != 'application/json':
            return _error(415, f'Content-Type {ctype} is not supported; '
                               f'send application/json')
        body = req.body_file.read(limit + 1)
        if len(body) > limit:
            return _error(413, f'request body exceeds the limit of {limit} '
                               f'bytes')
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return _error(400, f'body is not valid JSON: {exc}')
        try:
            events = transformer.transform(payload)
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
        host, port = self._server.server_address[:2]
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
