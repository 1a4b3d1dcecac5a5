"""Monitors: fault detectors that report host state changes to the inspector.

A monitor plugin lives in the ``doctor_plugin.monitors`` entry point
namespace; ``[monitor] driver`` names the one ``doctor-plugin-monitor``
runs. The options of each plugin are declared in its own module.
"""

from oslo_config import cfg

GROUP = 'monitor'

OPTS = [
    cfg.StrOpt('driver',
               default='tcp',
               help='The monitor plugin to run: the name of an entry point '
                    'in the doctor_plugin.monitors namespace.'),
]
