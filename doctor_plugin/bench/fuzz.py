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

"""R4: malformed and hostile input against a live inspector's HTTP API.

A real ``doctor-plugin-inspector`` process on 127.0.0.1 (shared-secret
authentication, its pipeline posting every event to a consumer webhook on
loopback through the delivery outbox) is sent, over HTTP:

- hypothesis bodies (:mod:`doctor_plugin.bench.hostile`): for each event
  route, fuzzed JSON (valid, near-valid and arbitrary documents) and raw
  bytes that are not JSON, with the route's method or another and
  assorted content types, authenticated;
- schemathesis cases generated from the OpenAPI description the package
  ships (``inspector/openapi.yaml``), negative and positive, authenticated,
  each response checked against the description (documented status,
  content type, headers and body schema);
- requests without a token or with a wrong one, to every route, paths
  that do not exist and any method: every one must get 401.

Then ``GET /healthz`` must answer and a valid report sent afterwards must
reach the consumer within a second (nothing stuck). Counted: inputs sent,
5xx responses, crashes (tracebacks and ERROR lines in the inspector's log,
or the process gone), stuck, responses that do not conform to the
description, unauthenticated requests let in, by route.

The bus half of R4 (poison messages on RabbitMQ) is
:mod:`doctor_plugin.bench.poison`, whose ``run_r4`` runs both.

Needs hypothesis and schemathesis (the ``bench`` extra: ``pip install
'doctor-plugin[bench]'``, or ``tox -e bench``); they are imported when R4
runs, not when the bench starts.
"""

from __future__ import annotations

import collections
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import typing
import uuid

import requests
import yaml

from doctor_plugin.bench import harness
from doctor_plugin.testing import childproc
from doctor_plugin.testing import consumer as consumer_mod
from doctor_plugin.testing import services

#: Inputs of a full R4 run (``--trials`` overrides).
R4_INPUTS = 10000
TARGET = '0 responses 5xx, 0 crashes, 0 stuck'
#: The longest a valid report may take to reach the consumer afterwards.
PROBE_TIMEOUT = 1.0
#: Per request, in seconds.
REQUEST_TIMEOUT = 10.0
#: Failures kept, with what was sent, to show in the result.
SAMPLES = 10

#: The OpenAPI description of the inspector's API.
SPEC_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                         'inspector', 'openapi.yaml')

#: Event routes: path → (method, name of the valid payloads' strategy in
#: doctor_plugin.bench.hostile).
ROUTES = {
    '/events': ('PUT', 'doctor_events'),
    '/events/ceilometer': ('PUT', 'ceilometer_events'),
    '/events/alertmanager': ('POST', 'alertmanager_webhooks'),
    '/events/collectd': ('POST', 'collectd_notifications'),
    '/events/libvirt': ('POST', 'libvirt_events'),
}

_METHODS = ('GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD')
_CONTENT_TYPES = ('application/json', 'application/json',
                  'application/json', None, 'application/json; charset=utf-8',
                  'text/plain', 'application/x-www-form-urlencoded',
                  'application/jsonx', '*/*')
_LOG_ERROR = re.compile(r' (ERROR|CRITICAL) |Traceback \(most recent call')


class LiveInspector:
    """A ``doctor-plugin-inspector`` process and the consumer it posts to.

    :param log: where progress lines go
    """

    def __init__(self, log: typing.Callable[[str], None]) -> None:
        self.log = log
        self.run_id = uuid.uuid4().hex[:8]
        self.dir = tempfile.mkdtemp(prefix=f'doctor-r4-{self.run_id}-')
        self.port = services.free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.secret = secrets.token_hex(16)
        self.log_path = os.path.join(self.dir, 'inspector.log')
        self.proc: subprocess.Popen | None = None
        self._log_file: typing.IO | None = None
        self._arrived: dict[str, float] = {}
        self._cond = threading.Condition()
        self.consumer = consumer_mod.ConsumerServer(
            on_alarm=self._received, keep=False)
        self._write_files()

    def _write_files(self) -> None:
        with open(os.path.join(self.dir, 'pipeline.yaml'), 'w') as f:
            yaml.safe_dump({
                'sources': [{'name': 'all', 'events': ['*'],
                             'sinks': ['consumer']}],
                'sinks': [{'name': 'consumer', 'notifiers': [
                    f'{self.consumer.url}/r4']}]}, f)
        with open(os.path.join(self.dir, 'topology.yaml'), 'w') as f:
            # The generators' usual hosts: their reports fan out.
            yaml.safe_dump({'hosts': {
                f'compute-{i}': [{'id': f'vm-{i}-{t}',
                                  'project_id': f'tenant-{t}'}
                                 for t in range(2)] for i in (1, 2, 3)}}, f)
        self.conf_file = os.path.join(self.dir, 'doctor_plugin.conf')
        with open(self.conf_file, 'w') as f:
            f.write(f"""[DEFAULT]
transport_url = fake://
state_path = {self.dir}
pipeline_cfg_file = {self.dir}/pipeline.yaml
[inspector]
host = 127.0.0.1
port = {self.port}
shared_secret = {self.secret}
# One client sends everything: the per-source limit is not under test.
rate_limit = 0
topology_file = {self.dir}/topology.yaml
enable_notification_listener = false
[notifier]
webhook_max_retries = 0
webhook_timeout = 2.0
""")

    def _received(self, alarm: consumer_mod.ReceivedAlarm) -> None:
        host = alarm.trait('host')
        if isinstance(host, str) and host.startswith('r4-probe-'):
            with self._cond:
                self._arrived[host] = time.monotonic()
                self._cond.notify_all()

    def start(self) -> LiveInspector:
        self.consumer.start()
        self._log_file = open(self.log_path, 'w')
        self.proc = childproc.start_inspector(self.conf_file, self.url,
                                              self._log_file)
        self.log(f'inspector up on {self.url} (log {self.log_path})')
        return self

    def healthy(self) -> bool:
        try:
            return requests.get(f'{self.url}/healthz', timeout=1).ok
        except requests.RequestException:
            return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_errors(self) -> list[str]:
        """The log's ERROR and CRITICAL lines and traceback starts."""
        with open(self.log_path, errors='replace') as f:
            return [line.rstrip() for line in f if _LOG_ERROR.search(line)]

    def probe(self, timeout: float = PROBE_TIMEOUT) -> float | None:
        """Send a fresh valid report; seconds until the consumer had it.

        None if it did not arrive within ``timeout``.
        """
        host = f'r4-probe-{uuid.uuid4().hex[:8]}'
        now = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        body: list[dict[str, typing.Any]] = [
            {'time': now, 'type': 'compute.host.down',
             'details': {'hostname': host, 'status': 'down',
                         'monitor': 'r4', 'monitor_event_id': host}}]
        started = time.monotonic()
        try:
            resp = requests.put(f'{self.url}/events', json=body,
                                headers={'X-Auth-Token': self.secret},
                                timeout=timeout)
        except requests.RequestException as exc:
            self.log(f'probe report failed: {exc}')
            return None
        if resp.status_code != 200:
            self.log(f'probe report got {resp.status_code}: {resp.text}')
            return None
        with self._cond:
            self._cond.wait_for(lambda: host in self._arrived,
                                max(0.0, started + timeout
                                    - time.monotonic()))
            arrived = self._arrived.get(host)
        return None if arrived is None else arrived - started

    def stop(self) -> None:
        if self.proc is not None:
            childproc.stop_process(self.proc, 30)
        self.consumer.stop()
        if self._log_file is not None:
            self._log_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Tally:
    """What the inputs got, by route."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: route → status (or 'no answer') → count
        self.routes: dict[str, collections.Counter] = (
            collections.defaultdict(collections.Counter))
        self.latencies_ms: list[float] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.samples: list[str] = []

    def record(self, route: str, status: int | None, elapsed: float,
               problem: str | None = None, sent: str = '') -> None:
        with self.lock:
            self.counts['sent'] += 1
            self.routes[route][status or 'no answer'] += 1
            if status is None:
                self.counts['no_answer'] += 1
            else:
                self.latencies_ms.append(elapsed * 1000.0)
            if status is not None and status >= 500:
                self.counts['server_errors'] += 1
                problem = problem or f'answered {status}'
            if problem:
                self.counts['nonconforming'] += 1
                if len(self.samples) < SAMPLES:
                    self.samples.append(f'{route}: {problem} <- '
                                        f'{sent[:200]!r}')

    def let_in(self, route: str, status: int, sent: str) -> None:
        with self.lock:
            self.counts['unauthenticated_accepted'] += 1
            if len(self.samples) < SAMPLES:
                self.samples.append(f'{route}: {status} WITHOUT a valid '
                                    f'token <- {sent[:200]!r}')

    def by_route(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {route: {str(k): v for k, v in sorted(
                counts.items(), key=lambda kv: str(kv[0]))}
                for route, counts in sorted(self.routes.items())}


def _fuzz(count: int, seed: int) -> typing.Callable:
    """Run a hypothesis test ``count`` times, reproducibly, all generated.

    No example database and no shrinking: the figures are counts, the
    failures samples of what was sent.
    """
    import hypothesis

    def decorate(test: typing.Callable) -> typing.Callable:
        test = hypothesis.settings(
            max_examples=max(1, count), deadline=None, database=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck))(test)
        return hypothesis.seed(seed)(test)
    return decorate


def _check_answer(resp: requests.Response, method: str) -> str | None:
    """What is wrong with an answer, by the description's error shape."""
    if resp.headers.get('Content-Type', '').split(';')[0] != (
            'application/json'):
        return f'Content-Type {resp.headers.get("Content-Type")!r}'
    if method == 'HEAD':
        return None
    try:
        body = resp.json()
    except ValueError:
        return 'a body that is not JSON'
    if resp.status_code == 200:
        if not (isinstance(body, dict)
                and isinstance(body.get('events'), list)
                and isinstance(body.get('published'), int)):
            return f'200 with {body!r:.100}'
        return None
    error = body.get('error') if isinstance(body, dict) else None
    if not (isinstance(error, dict) and error.get('code') == resp.status_code
            and isinstance(error.get('message'), str)):
        return f'{resp.status_code} with {body!r:.100}'
    if resp.status_code == 405 and 'Allow' not in resp.headers:
        return '405 without Allow'
    return None


def send_bodies(target: LiveInspector, count: int, tally: Tally,
                seed: int = 0) -> None:
    """Hypothesis-made bodies to every event route, authenticated."""
    import hypothesis
    from hypothesis import strategies as st

    from doctor_plugin.bench import hostile

    session = requests.Session()
    per_route = count // len(ROUTES)
    for index, (path, (method, valid)) in enumerate(ROUTES.items()):
        share = per_route + (count % len(ROUTES) if index == 0 else 0)
        documented = {200, 400, 413, 415}

        @_fuzz(share, seed * 100 + index)
        @hypothesis.given(
            hostile.bodies(getattr(hostile, valid)()),
            st.sampled_from((method,) * 9 + _METHODS),
            st.sampled_from(_CONTENT_TYPES))
        def send(body, verb, content_type):
            headers = {'X-Auth-Token': target.secret}
            if content_type:
                headers['Content-Type'] = content_type
            started = time.monotonic()
            try:
                resp = session.request(verb, target.url + path, data=body,
                                       headers=headers,
                                       timeout=REQUEST_TIMEOUT)
            except requests.RequestException as exc:
                tally.record(f'{verb} {path}', None, 0.0, str(exc),
                             body.decode('utf-8', 'replace'))
                return
            problem = _check_answer(resp, verb)
            expected = documented if verb == method else {405}
            if resp.status_code not in expected:
                problem = problem or f'undocumented {resp.status_code}'
            tally.record(f'{verb} {path}', resp.status_code,
                         time.monotonic() - started, problem,
                         body.decode('utf-8', 'replace'))

        send()


def send_cases(target: LiveInspector, count: int, tally: Tally) -> None:
    """Schemathesis cases of the API's description, authenticated."""
    import hypothesis
    import schemathesis
    from schemathesis import checks as st_checks
    from schemathesis.core import failures
    from schemathesis.core import result as st_result

    schema = schemathesis.openapi.from_path(SPEC_PATH)
    checks = [st_checks.not_a_server_error,
              st_checks.status_code_conformance,
              st_checks.content_type_conformance,
              st_checks.response_headers_conformance,
              st_checks.response_schema_conformance]
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, st_result.Err):
            raise result.err()
        operations.append(result.ok())
    modes = (schemathesis.GenerationMode.NEGATIVE,
             schemathesis.GenerationMode.POSITIVE)
    share = max(1, count // (len(operations) * len(modes)))
    session = requests.Session()
    for index, operation in enumerate(operations):
        route = f'{operation.method.upper()} {operation.path}'
        for mode in modes:
            @_fuzz(share, 1000 + index)
            # GenerationMode is a StrEnum, which mypy's Python 3.10 lacks;
            # without schemathesis installed (tox -e mypy) it is Any.
            @hypothesis.given(operation.as_strategy(
                generation_mode=mode))  # type: ignore[arg-type,unused-ignore]
            def send(case):
                started = time.monotonic()
                try:
                    resp = case.call(
                        base_url=target.url, session=session,
                        headers={'X-Auth-Token': target.secret},
                        timeout=REQUEST_TIMEOUT)
                except requests.RequestException as exc:
                    tally.record(route, None, 0.0, str(exc), repr(case.body))
                    return
                elapsed = time.monotonic() - started
                problem = None
                try:
                    case.validate_response(resp, checks=checks)
                except failures.FailureGroup as exc:
                    problem = '; '.join(sorted(
                        {f.title for f in exc.exceptions}))
                tally.record(route, resp.status_code, elapsed, problem,
                             repr(case.body))

            try:
                send()
            except hypothesis.errors.Unsatisfiable:
                # Nothing to make invalid: GET /healthz takes no input.
                continue


def send_unauthenticated(target: LiveInspector, count: int,
                         tally: Tally) -> None:
    """Requests with no token or a wrong one: each must get 401."""
    import string

    import hypothesis
    from hypothesis import strategies as st

    from doctor_plugin.bench import hostile

    near = (target.secret[:-1], target.secret + 'a', target.secret.upper(),
            target.secret[::-1], target.secret[:16], '', 'null',
            'Bearer ' + target.secret)
    tokens = st.one_of(
        st.none(), st.sampled_from(near),
        st.text(string.ascii_letters + string.digits + '-_.+/=',
                max_size=64),
        # Latin-1, as HTTP headers are; without what requests refuses to
        # send (DEL, NEL and no-break space count as white space to it).
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0xff,
                              exclude_characters='\x7f\x85\xa0'),
                max_size=300))
    paths = st.sampled_from(tuple(ROUTES) + (
        '/', '/events/', '/events/nova', '/openapi.yaml', '/healthz/',
        '/events/../events', '/%00'))
    session = requests.Session()

    @_fuzz(count, 2000)
    @hypothesis.given(tokens, paths, st.sampled_from(('PUT', 'POST')
                                                     + _METHODS),
                      hostile.doctor_events())
    def send(token, path, verb, body):
        headers = {} if token is None else {'X-Auth-Token': token}
        data = json.dumps(body)
        started = time.monotonic()
        try:
            resp = session.request(verb, target.url + path, data=data,
                                   headers=headers, timeout=REQUEST_TIMEOUT)
        except requests.exceptions.InvalidHeader:
            # Not sent: the client refused the header value.
            return
        except requests.RequestException as exc:
            tally.record(f'{verb} {path} (no valid token)', None, 0.0,
                         str(exc), data)
            return
        route = f'{verb} {path} (no valid token)'
        problem = None
        if resp.status_code != 401:
            problem = f'{resp.status_code}, not 401'
            if resp.status_code < 400:
                tally.let_in(route, resp.status_code, data)
        elif 'WWW-Authenticate' not in resp.headers:
            problem = '401 without WWW-Authenticate'
        tally.record(route, resp.status_code, time.monotonic() - started,
                     problem or _check_answer(resp, verb), data)

    send()


def run_r4(options: typing.Any, log: typing.Callable[[str], None]
           ) -> harness.ScenarioResult:
    """R4 over HTTP: ``options.trials`` (default 10,000) inputs.

    Shares: 45 % hypothesis bodies, 45 % schemathesis cases, 10 %
    unauthenticated requests.
    """
    harness.require('R4', 'hypothesis', 'schemathesis')
    http = options.trials or R4_INPUTS
    target = LiveInspector(log).start()
    tally = Tally()
    extra: dict[str, typing.Any] = {}
    try:
        started = time.monotonic()
        unauthenticated = http // 10
        log(f'R4: {http - unauthenticated} authenticated and '
            f'{unauthenticated} unauthenticated inputs over HTTP')
        send_bodies(target, (http - unauthenticated) // 2, tally)
        log(f'  {tally.counts["sent"]} sent (hypothesis bodies)')
        send_cases(target, (http - unauthenticated)
                   - (http - unauthenticated) // 2, tally)
        log(f'  {tally.counts["sent"]} sent (schemathesis cases)')
        send_unauthenticated(target, unauthenticated, tally)
        log(f'  {tally.counts["sent"]} sent (without a valid token)')
        # Some operations have fewer distinct inputs than their share
        # (GET /healthz has one): more bodies make up the total.
        for round_ in range(1, 4):
            if tally.counts['sent'] >= http:
                break
            send_bodies(target, http - tally.counts['sent'], tally, round_)
        log(f'  {tally.counts["sent"]} sent in '
            f'{time.monotonic() - started:.1f} s')
        healthy = target.healthy()
        probe = target.probe()
        alive = target.alive()
        errors = target.log_errors()
    finally:
        target.stop()
    crashes = len(errors) + (0 if alive else 1)
    stuck = 0 if healthy and probe is not None else 1
    counts = tally.counts
    sent = counts['sent']
    extra.update({
        'server_errors_5xx': counts['server_errors'],
        'crashes': crashes,
        'stuck': stuck,
        'nonconforming_responses': counts['nonconforming'],
        'unauthenticated_accepted': counts['unauthenticated_accepted'],
        'probe_ms': None if probe is None else round(probe * 1000.0, 3),
        'by_route': tally.by_route(),
        'failures': tally.samples,
        'log_errors': errors[:SAMPLES],
    })
    met = (counts['server_errors'] == 0 and crashes == 0 and stuck == 0
           and counts['unauthenticated_accepted'] == 0)
    return harness.ScenarioResult(
        scenario='R4', transport='http', trials=1,
        latency_ms=harness.latency_summary(tally.latencies_ms),
        sent=sent, received=sent - counts['no_answer'],
        lost=counts['no_answer'], duplicates=0, target=TARGET, met=met,
        env=harness.environment('http://'), extra=extra)
