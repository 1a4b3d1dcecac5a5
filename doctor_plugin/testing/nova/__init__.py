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

"""A local stand-in for Nova: the compute API our controller calls.

:class:`NovaStandIn` is a real HTTP server on loopback that speaks the part
of Nova's compute API v2.1 that the inspector's controller and topology
use, in Nova's wire format: version discovery, microversion negotiation,
``os-services`` (list, force-down by host and binary before 2.53, by
service UUID from 2.53), ``os-resetState``, and ``servers/detail`` with
Nova's marker pagination. With :meth:`NovaStandIn.enable_notifications` it
also sends Nova's versioned ``service.update`` and ``instance.*``
notifications on an oslo.messaging transport.

Unit and functional tests, the demo and the benchmark use it where a cloud
would have nova-api. It keeps every request it answered (:attr:`calls`)
and can misbehave on demand: added latency, injected errors, and the
outages a client sees when nova-api dies (:meth:`NovaStandIn.go_down`).

Run it alone with ``python -m doctor_plugin.testing.nova``.

Its parts, one module each: :mod:`~doctor_plugin.testing.nova.model`
(services and servers, in Nova's format),
:mod:`~doctor_plugin.testing.nova.api` (the HTTP server and routes),
:mod:`~doctor_plugin.testing.nova.notifications` (the versioned
notifications), :mod:`~doctor_plugin.testing.nova.standin`
(:class:`NovaStandIn`, which puts them together, and its fault injection)
and :mod:`~doctor_plugin.testing.nova.process` (:class:`NovaStandInProcess`
and the command). Import the names below from this package.
"""

from doctor_plugin.testing.nova.model import API_PREFIX
from doctor_plugin.testing.nova.model import Call
from doctor_plugin.testing.nova.model import COMPUTE_BINARY
from doctor_plugin.testing.nova.model import FAULT_NAMES
from doctor_plugin.testing.nova.model import FORCED_DOWN_VERSION
from doctor_plugin.testing.nova.model import OUTAGE_MODES
from doctor_plugin.testing.nova.model import parse_version
from doctor_plugin.testing.nova.model import POWER_STATES
from doctor_plugin.testing.nova.model import SERVICE_UUID_VERSION
from doctor_plugin.testing.nova.model import STATUSES
from doctor_plugin.testing.nova.process import main
from doctor_plugin.testing.nova.process import NovaStandInProcess
from doctor_plugin.testing.nova.standin import NovaStandIn

__all__ = ['API_PREFIX', 'Call', 'COMPUTE_BINARY', 'FAULT_NAMES',
           'FORCED_DOWN_VERSION', 'NovaStandIn', 'NovaStandInProcess',
           'OUTAGE_MODES', 'POWER_STATES', 'SERVICE_UUID_VERSION',
           'STATUSES', 'main', 'parse_version']
