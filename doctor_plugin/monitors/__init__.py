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
    cfg.StrOpt('monitor_id',
               sample_default='<this machine\'s host name>',
               help='The name of this monitor\'s vantage point, sent as '
                    'details.monitor_id in every report, so that the '
                    'inspector can tell how many different monitors '
                    'report a host down. Give each monitor watching the '
                    'same hosts its own; this machine\'s host name by '
                    'default.'),
]
