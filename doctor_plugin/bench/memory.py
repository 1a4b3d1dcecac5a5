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

"""B7: the inspector's memory with a large cloud's topology.

100,000 instances on 5,000 hosts, loaded the way the inspector loads them
(``NovaClient`` + ``NovaTopologySync``, over HTTP from the Nova stand-in),
must fit in 150 MB of resident memory for the whole inspector process.

The load runs in a fresh Python process so that the figure is the
inspector's own, not the benchmark's (which holds the stand-in's 100,000
servers). Run by hand::

    python -m doctor_plugin.bench.memory http://127.0.0.1:8774/v2.1 [--trace]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import typing

from doctor_plugin.bench import harness
from doctor_plugin.testing import childproc

INSTANCES = 100_000
HOSTS = 5_000
TENANTS = 2_000
TARGET_MB = 150.0


def _status_mb(key: str) -> float:
    """A ``/proc/self/status`` figure (``VmRSS``, ``VmHWM``) in MB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f'no {key} in /proc/self/status')


def load_topology(compute_url: str, trace: bool = False
                  ) -> dict[str, typing.Any]:
    """Load the topology as the inspector does; its figures as a dict.

    Run in a process of its own: the RSS figures are the process's.
    With ``trace`` the topology's own allocations are counted with
    tracemalloc (slower, and tracemalloc's overhead inflates the RSS).
    """
    import gc
    import tracemalloc

    # What the inspector service imports, before anything is loaded.
    from oslo_config import cfg

    from doctor_plugin.inspector import service  # noqa: F401
    from doctor_plugin.nova import client as nova
    from doctor_plugin import opts
    from doctor_plugin.topology import nova as nova_topology

    gc.collect()
    figures: dict[str, typing.Any] = {
        'baseline_rss_mb': round(_status_mb('VmRSS'), 1)}
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='doctor_plugin', default_config_files=[],
         default_config_dirs=[])
    conf.set_override('auth_type', 'none', group='nova')
    conf.set_override('endpoint_override', compute_url, group='nova')
    client = nova.NovaClient(conf)
    sync = nova_topology.NovaTopologySync(conf, client)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    count = sync.resync()
    load_s = time.perf_counter() - started
    gc.collect()
    if trace:
        traced, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        figures.update(traced_bytes=traced, traced_peak_bytes=traced_peak,
                       traced_bytes_per_instance=round(traced / max(count, 1),
                                                       1))
        client.close()
    figures.update(
        instances=count, hosts=len(sync.topology.hosts),
        load_s=round(load_s, 3),
        rss_mb=round(_status_mb('VmRSS'), 1),
        peak_rss_mb=round(_status_mb('VmHWM'), 1))
    figures['rss_bytes_per_instance'] = round(
        (figures['rss_mb'] - figures['baseline_rss_mb']) * 1024 * 1024
        / max(count, 1), 1)
    if not trace:
        # A periodic resync builds the new map beside the old one.
        started = time.perf_counter()
        sync.resync()
        figures.update(
            resync_s=round(time.perf_counter() - started, 3),
            rss_after_resync_mb=round(_status_mb('VmRSS'), 1),
            peak_rss_after_resync_mb=round(_status_mb('VmHWM'), 1))
        client.close()
    return figures


def measure_in_subprocess(compute_url: str, trace: bool = False,
                          timeout: float = 600.0) -> dict[str, typing.Any]:
    """:func:`load_topology` in a fresh Python process."""
    cmd = childproc.command('doctor_plugin.bench.memory', compute_url)
    if trace:
        cmd.append('--trace')
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode:
        raise RuntimeError(f'the B7 load process failed '
                           f'(exit {proc.returncode}): '
                           f'{proc.stderr.strip()[-2000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cloud(instances: int = INSTANCES, hosts: int = HOSTS,
          tenants: int = TENANTS
          ) -> typing.Iterator[tuple[str, str, str, str]]:
    """``(id, project_id, host, name)`` of a cloud, hosts filled in turn."""
    per_host = max(1, instances // hosts)
    for i in range(instances):
        yield (f'{i:08x}-b7b7-4b7b-8b7b-{i:012x}', f'{i % tenants:032x}',
               f'compute-{i // per_host:05d}', f'vm-{i:06d}')


def run_b7(options: harness.BenchOptions,
           log: typing.Callable[[str], None]) -> harness.ScenarioResult:
    """B7: RSS of an inspector holding 100,000 instances on 5,000 hosts."""
    from doctor_plugin.testing import nova as nova_standin

    standin = nova_standin.NovaStandIn().start()
    try:
        log(f'B7: filling the Nova stand-in with {INSTANCES} instances on '
            f'{HOSTS} hosts ...')
        standin.add_servers(cloud())
        log('B7: loading the topology in a fresh process ...')
        figures = measure_in_subprocess(standin.compute_url)
        log('B7: again with tracemalloc, for bytes per instance ...')
        traced = measure_in_subprocess(standin.compute_url, trace=True)
    finally:
        standin.stop()
    load_ms = figures['load_s'] * 1000.0
    loaded = figures['instances']
    extra = {
        'rss_mb': figures['rss_mb'],
        'peak_rss_mb': figures['peak_rss_mb'],
        'resync_s': figures['resync_s'],
        'peak_rss_after_resync_mb': figures['peak_rss_after_resync_mb'],
        'baseline_rss_mb': figures['baseline_rss_mb'],
        'instances': loaded, 'hosts': figures['hosts'],
        'rss_bytes_per_instance': figures['rss_bytes_per_instance'],
        'traced_bytes_per_instance': traced['traced_bytes_per_instance'],
        'traced_peak_mb': round(traced['traced_peak_bytes'] / 2 ** 20, 1),
    }
    return harness.ScenarioResult(
        scenario='B7', transport='none', trials=1,
        latency_ms={k: round(load_ms, 3)
                    for k in ('p50', 'p90', 'p99', 'max')},
        sent=INSTANCES, received=loaded, lost=INSTANCES - loaded,
        duplicates=0,
        target=f'peak RSS (load and a resync) <= {TARGET_MB:g} MB',
        met=(figures['peak_rss_after_resync_mb'] <= TARGET_MB
             and loaded == INSTANCES),
        env=harness.environment('none://'), extra=extra)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith('-'):
        sys.exit('usage: python -m doctor_plugin.bench.memory COMPUTE_URL '
                 '[--trace]')
    print(json.dumps(load_topology(args[0], trace='--trace' in args[1:])))


if __name__ == '__main__':
    main()
