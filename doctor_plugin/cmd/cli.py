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

"""``doctor-plugin``: the operator's command line.

Sub-commands: ``demo`` (the whole Doctor chain on one machine), ``bench``
(the benchmark harness), ``list-plugins``, ``validate-config`` and
``deliveries`` (``list``, ``retry``, ``rejected``: the delivery database)
and ``status`` (the cluster's members, host owners and pending deliveries).

The demo and the bench stand on test doubles (:mod:`doctor_plugin.testing`)
and on the bench's own requirements: their modules are imported by their
sub-commands only, so the operator's commands load none of them.
"""

from __future__ import annotations

import argparse
import json
import logging as std_logging
import signal
import sys
import time
import typing

from doctor_plugin.alarms import definitions
from doctor_plugin.common import messaging
from doctor_plugin.common import plugins
from doctor_plugin.common import urls
from doctor_plugin.delivery import store as store_mod
from doctor_plugin import exceptions
from doctor_plugin.nova import client as nova
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin import service
from doctor_plugin.topology import hosts as topology_mod

PROG = 'doctor-plugin'

#: The ids of ``doctor_plugin.bench.scenarios.SCENARIOS`` and its
#: ``GROUPS``, written out so that parsing the command line imports no
#: bench code (a unit test keeps them equal).
BENCH_SCENARIOS = ('B1', 'B1-bus', 'B1-cluster', 'B2', 'B3', 'B4', 'B5',
                   'B6', 'B7', 'B8', 'B9', 'B10', 'B11', 'F1', 'R1', 'R2',
                   'R3', 'R4', 'R5', 'R6', 'S1')
BENCH_GROUPS = ('reliability',)
#: ``doctor_plugin.bench.harness.DEFAULT_TRANSPORT_URL``, for the help.
BENCH_TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be positive, got {value}')
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='OPNFV Doctor fault management for '
                               'OpenStack: operator commands.')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='log what the services do (to stderr)')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser(
        'demo', help='run the whole Doctor chain once on this machine',
        description='Simulate a compute host fault and follow it through '
                    'monitor, inspector (with its alarm evaluation), '
                    'message bus and the tenants\' consumer webhooks, and '
                    'the fix-up of a local Nova stand-in; print the Doctor '
                    'timeline. Exits 1 if a consumer missed its alarm.')
    p.add_argument('--transport-url', default=messaging.FAKE_TRANSPORT_URL,
                   help='oslo.messaging transport (default: the embedded '
                        'fake:// bus; e.g. '
                        'rabbit://guest:guest@127.0.0.1:5672/)')
    p.add_argument('--vms', type=_positive_int, default=20,
                   help='instances on the failing host (default 20)')
    p.add_argument('--tenants', type=_positive_int, default=4,
                   help='tenants owning them, one consumer each (default 4)')
    p.add_argument('--timeout', type=_positive_float, default=10.0,
                   help='seconds to wait for the alarms (default 10)')
    p.add_argument('--interval', type=_positive_float,
                   help='heartbeat interval in seconds (default: '
                        '[heartbeat] interval, 0.05)')
    p.add_argument('--no-nova', dest='nova', action='store_false',
                   help='run without the Nova stand-in: a static topology '
                        'and no controller (T03/T04 stay empty)')
    p.add_argument('--alarms-in', choices=('inspector', 'listener'),
                   default='inspector',
                   help="where the tenants' alarms are evaluated: by the "
                        "inspector's alarms:// sink (default), or by an "
                        "alarm listener taking the events off the bus, as "
                        "doctor-plugin-listener does")

    p = sub.add_parser(
        'bench', help='measure the figures of shared/BENCHMARKS.md',
        description='Run benchmark scenarios and print p50/p90/p99/max. '
                    'Exits 0 even when a target is missed (see "met").')
    p.add_argument('--scenario', required=True,
                   choices=(sorted(BENCH_SCENARIOS)
                            + sorted(BENCH_GROUPS) + ['all']),
                   help='scenario id, a group (reliability: R1-R3), or '
                        'all')
    p.add_argument('--transport-url',
                   default=BENCH_TRANSPORT_URL,
                   help='oslo.messaging transport (default: RabbitMQ on '
                        '127.0.0.1:5672)')
    p.add_argument('--trials', type=_positive_int,
                   help='number of measured trials (scenario default)')
    p.add_argument('--duration', type=_positive_float,
                   help='seconds of the soak part of a scenario')
    p.add_argument('--json', metavar='FILE',
                   help='also write the results as JSON to FILE')

    sub.add_parser('list-plugins',
                   help='list installed plugins and whether they load')

    p = sub.add_parser(
        'validate-config',
        help='check a configuration and the files it names',
        description='Parse the configuration (oslo.config options such as '
                    '--config-file and --config-dir follow), then load the '
                    'pipeline, the alarm definitions, the topology and '
                    'every plugin they name.')

    p = sub.add_parser(
        'deliveries',
        help='show and retry the deliveries in the delivery database',
        description='Read the [delivery] connection database of the '
                    'configuration (oslo.config options such as '
                    '--config-file follow).')
    dsub = p.add_subparsers(dest='action', required=True)
    q = dsub.add_parser('list', help='list pending or dead-lettered '
                                     'deliveries, oldest first')
    q.add_argument('--status', choices=store_mod.STATUSES + ('all',),
                   default='all', help='which deliveries (default all)')
    q.add_argument('--owner', help='only those of this [delivery] owner')
    q.add_argument('--limit', type=_positive_int, default=100,
                   help='at most this many (default 100)')
    q.add_argument('--json', action='store_true',
                   help='one JSON object per line')
    q = dsub.add_parser(
        'retry', help='make dead-lettered deliveries pending again',
        description='A running inspector or listener of the owner takes '
                    'them up within [delivery] poll_interval; otherwise '
                    'they wait for its next start.')
    q.add_argument('ids', nargs='*', type=int, metavar='ID',
                   help='deliveries to retry (see "list")')
    q.add_argument('--all-dead', action='store_true',
                   help='every dead-lettered delivery (of --from-owner)')
    q.add_argument('--from-owner', help='only deliveries of this owner')
    q.add_argument('--owner', help='hand them to this owner, e.g. an '
                                   'inspector that replaces a lost one')
    q = dsub.add_parser('rejected',
                        help='list bus messages rejected as malformed')
    q.add_argument('--limit', type=_positive_int, default=100,
                   help='at most this many (default 100)')
    p = sub.add_parser(
        'status',
        help='show the cluster: members, the owner of each host, and the '
             'deliveries pending per owner',
        description='Read the [coordination] backend (without joining), '
                    "each inspector's /healthz and the [delivery] "
                    'connection database of the configuration '
                    '(oslo.config options such as --config-file follow).')
    p.add_argument('--json', action='store_true',
                   help='print one JSON object')
    return parser


def cmd_status(args: argparse.Namespace) -> int:
    from doctor_plugin.coordination import status

    conf = service.prepare_service(args.oslo_args, f'{PROG} status')
    hosts: list[str] = []
    if conf.inspector.topology_file:
        hosts = topology_mod.HostTopology.from_file(
            conf.inspector.topology_file).hosts
    found = status.gather(conf, hosts)
    if args.json:
        print(json.dumps(found, sort_keys=True))
    else:
        print('\n'.join(status.render(found)))
    return 0


def cmd_deliveries(args: argparse.Namespace) -> int:
    conf = service.prepare_service(args.oslo_args,
                                   f'{PROG} deliveries {args.action}')
    store = store_mod.DeliveryStore(conf.delivery.connection)
    try:
        if args.action == 'list':
            return _list_deliveries(store, args)
        if args.action == 'rejected':
            for row in store.rejected(args.limit):
                print(json.dumps(row, sort_keys=True))
            return 0
        if bool(args.ids) == args.all_dead:
            raise exceptions.ConfigurationError(
                'deliveries retry', None,
                'name the deliveries to retry by ID, or give --all-dead')
        changed = store.retry(
            args.ids or None, time.time() + conf.delivery.deadline,
            owner=args.owner, from_owner=args.from_owner)
        print(f'{changed} deliveries are pending again')
        return 0 if changed or args.all_dead else 1
    finally:
        store.close()


def _list_deliveries(store: store_mod.DeliveryStore,
                     args: argparse.Namespace) -> int:
    rows = store.find(None if args.status == 'all' else args.status,
                      args.owner, args.limit)
    if args.json:
        for d in rows:
            print(json.dumps({
                'id': d.id, 'status': d.status, 'owner': d.owner,
                'target': urls.redact(d.target),
                'label': d.label, 'event_id': d.event_id,
                'attempts': d.attempts, 'created_at': d.created,
                'next_attempt_at': d.next_attempt,
                'deadline_at': d.deadline, 'last_error': d.last_error},
                sort_keys=True))
        return 0
    counts = store.counts()
    print(', '.join(f'{counts.get(k, 0)} {k}'
                    for k in store_mod.STATUSES + ('rejected',)))
    for d in rows:
        when = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(d.created))
        print(f'{d.id} {d.status:7} {when} attempts={d.attempts} '
              f'{urls.redact(d.target)} {d.label!r} '
              f'event={d.event_id}')
        if d.last_error:
            print(f'    last error: {d.last_error}')
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from doctor_plugin import demo
    from doctor_plugin.testing import chain as chain_mod

    # The consumer and Nova stand for other machines, and the listener is
    # a service of its own: in processes of their own, as deployed, the
    # tenants' webhooks do not wait for the GIL behind the Nova fix-up.
    # The embedded fake:// bus only reaches a listener in this process.
    settings = chain_mod.ChainSettings(
        transport_url=args.transport_url, vms=args.vms,
        tenants=args.tenants, nova=args.nova, consumer_process=True,
        nova_process=args.nova, alarms_in=args.alarms_in,
        listener_process=not args.transport_url.startswith('fake'))
    return demo.run_demo(settings, args.timeout, interval=args.interval)


def _exit_on_signal(signum: int, frame: typing.Any) -> None:
    sys.exit(128 + signum)


def cmd_bench(args: argparse.Namespace) -> int:
    from doctor_plugin.bench import harness
    from doctor_plugin.bench import scenarios

    options = harness.BenchOptions(
        transport_url=args.transport_url, trials=args.trials,
        duration=args.duration)
    # Stopped (timeout(1), a job's end), a scenario still takes down what
    # it started: its namespaces, child processes and CPU hogs.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    if args.scenario == 'all':
        ids = sorted(scenarios.SCENARIOS)
    else:
        ids = list(scenarios.GROUPS.get(args.scenario, [args.scenario]))
    results: list[harness.ScenarioResult] = []
    could_not_run = []
    for scenario_id in ids:
        print(f'running {scenario_id} ...', flush=True)
        try:
            result = scenarios.SCENARIOS[scenario_id](
                options, lambda line: print(line, file=sys.stderr))
        except exceptions.DoctorPluginError as exc:
            # B6 needs real Aodh: say so and run the others.
            print(f'{PROG} bench: {scenario_id} could not run: {exc}',
                  file=sys.stderr)
            could_not_run.append(scenario_id)
            continue
        print(result.as_table(), flush=True)
        results.append(result)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            harness.write_json(results, f)
        print(f'results written to {args.json}')
    return 1 if could_not_run else 0


def cmd_list_plugins(args: argparse.Namespace) -> int:
    for namespace in (plugins.TRANSFORMERS_NAMESPACE,
                      plugins.NOTIFIERS_NAMESPACE,
                      plugins.ALARM_ACTIONS_NAMESPACE,
                      plugins.MONITORS_NAMESPACE):
        print(namespace)
        for name, status in plugins.describe(namespace):
            print(f'  {name:16} {status}')
    return 0


def _check_nova(conf) -> str:
    """Load the [nova] credentials and ask Nova for its versions."""
    client = nova.NovaClient(conf)
    try:
        major, minor = client.max_microversion()
    finally:
        client.close()
    return (f'nova: reachable, compute API up to microversion '
            f'{major}.{minor}')


def cmd_validate_config(args: argparse.Namespace) -> int:
    conf = service.prepare_service(args.oslo_args,
                                   f'{PROG} validate-config')
    checks = []
    try:
        path = conf.find_file(conf.pipeline_cfg_file)
        if path is None:
            raise exceptions.ConfigurationError(
                conf.pipeline_cfg_file, None, 'pipeline file not found')
        definition = pipeline_mod.PipelineDefinition.from_file(path)
        for sink in definition.sinks.values():
            for url in sink.notifiers:
                plugins.load_notifier(conf, url).close()
        checks.append(f'pipeline {path}: {len(definition.sources)} '
                      f'source(s), {len(definition.sinks)} sink(s)')
        path = conf.find_file(conf.alarms.definitions_file)
        if path is not None:
            alarms = definitions.load_file(path)
            for alarm in alarms:
                for url in alarm.action_urls():
                    plugins.load_alarm_action(conf, url).close()
            checks.append(f'alarm definitions {path}: {len(alarms)} '
                          f'alarm(s)')
        if 'nova' in (conf.inspector.topology_source,
                      conf.inspector.controller):
            checks.append(_check_nova(conf))
        if (conf.inspector.topology_source == 'file'
                and conf.inspector.topology_file):
            topo = topology_mod.HostTopology.from_file(
                conf.inspector.topology_file)
            checks.append(f'topology {conf.inspector.topology_file}: '
                          f'{len(topo)} instance(s) on '
                          f'{len(topo.hosts)} host(s)')
        if conf.delivery.durable:
            store = store_mod.DeliveryStore(conf.delivery.connection)
            counts = store.counts()
            store.close()
            checks.append(
                f'delivery database {urls.redact(store.url)}: '
                f'{counts.get(store_mod.PENDING, 0)} pending, '
                f'{counts.get(store_mod.DEAD, 0)} dead-lettered')
        plugins.load_driver(plugins.TRANSFORMERS_NAMESPACE,
                            conf.inspector.api_transformer, conf)
        plugins.load_named(plugins.TRANSFORMERS_NAMESPACE,
                           conf.inspector.transformers, conf)
        checks.append('transformers: ' + ', '.join(
            [conf.inspector.api_transformer] + conf.inspector.transformers))
    except exceptions.DoctorPluginError as exc:
        for line in checks:
            print(f'ok: {line}')
        return service.fail(exc, PROG)
    for line in checks:
        print(f'ok: {line}')
    print('configuration is valid')
    return 0


COMMANDS = {
    'demo': cmd_demo,
    'bench': cmd_bench,
    'list-plugins': cmd_list_plugins,
    'validate-config': cmd_validate_config,
    'deliveries': cmd_deliveries,
    'status': cmd_status,
}


#: oslo.config's own options that take a value.
_OSLO_VALUE_OPTS = ('--config-file', '--config-dir')


def _split_oslo_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(ours, oslo.config's): ``--config-file F`` would pass for an ID."""
    ours: list[str] = []
    oslo: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg in _OSLO_VALUE_OPTS:
            oslo.extend((arg, next(args, '')))
        elif arg.startswith(tuple(f'{o}=' for o in _OSLO_VALUE_OPTS)):
            oslo.append(arg)
        else:
            ours.append(arg)
    return ours, oslo


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, oslo_args = _split_oslo_args(argv)
    args, extra = parser.parse_known_args(argv)
    if args.command in ('validate-config', 'deliveries', 'status'):
        # The rest is oslo.config's.
        args.oslo_args = oslo_args + extra
    elif oslo_args:
        parser.error(f'unrecognized arguments: {" ".join(oslo_args)}')
    elif extra:
        parser.error(f'unrecognized arguments: {" ".join(extra)}')
    std_logging.basicConfig(
        level=std_logging.INFO if args.verbose else std_logging.WARNING,
        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    try:
        return COMMANDS[args.command](args)
    except exceptions.DoctorPluginError as exc:
        return service.fail(exc, PROG)


if __name__ == '__main__':
    sys.exit(main())
