"""``doctor-plugin``: the operator's command line.

Sub-commands: ``demo`` (the whole Doctor chain on one machine), ``bench``
(the benchmark harness), ``list-plugins`` and ``validate-config``.
"""

from __future__ import annotations

import argparse
import json
import logging as std_logging
import sys

from doctor_plugin.alarms import definitions
from doctor_plugin.bench import harness
from doctor_plugin.bench import scenarios
from doctor_plugin.controller import nova
from doctor_plugin import demo
from doctor_plugin import exceptions
from doctor_plugin.inspector import topology as topology_mod
from doctor_plugin import messaging
from doctor_plugin import pipeline as pipeline_mod
from doctor_plugin import plugins
from doctor_plugin import service

PROG = 'doctor-plugin'


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
                   choices=sorted(scenarios.SCENARIOS) + ['all'],
                   help='scenario id, or all')
    p.add_argument('--transport-url',
                   default=scenarios.DEFAULT_TRANSPORT_URL,
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
    return parser


def cmd_demo(args: argparse.Namespace) -> int:
    # The consumer and Nova stand for other machines, and the listener is
    # a service of its own: in processes of their own, as deployed, the
    # tenants' webhooks do not wait for the GIL behind the Nova fix-up.
    # The embedded fake:// bus only reaches a listener in this process.
    settings = demo.ChainSettings(
        transport_url=args.transport_url, vms=args.vms,
        tenants=args.tenants, nova=args.nova, consumer_process=True,
        nova_process=args.nova, alarms_in=args.alarms_in,
        listener_process=not args.transport_url.startswith('fake'))
    return demo.run_demo(settings, args.timeout, interval=args.interval)


def cmd_bench(args: argparse.Namespace) -> int:
    options = scenarios.BenchOptions(
        transport_url=args.transport_url, trials=args.trials,
        duration=args.duration)
    ids = (sorted(scenarios.SCENARIOS) if args.scenario == 'all'
           else [args.scenario])
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
        data = [r.as_json() for r in results]
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(data[0] if len(data) == 1 else data, f, indent=2)
        print(f'results written to {args.json}')
    return 1 if could_not_run else 0


def cmd_list_plugins(args: argparse.Namespace) -> int:
    for namespace in (plugins.TRANSFORMERS_NAMESPACE,
                      plugins.NOTIFIERS_NAMESPACE,
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
                    plugins.load_notifier(conf, url).close()
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
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == 'validate-config':
        # Everything after the sub-command is oslo.config's.
        args.oslo_args = extra
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
