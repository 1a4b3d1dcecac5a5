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

"""``doctor-plugin-inspector``: the Doctor inspector service."""

from __future__ import annotations

from doctor_plugin import exceptions
from doctor_plugin.inspector import service as inspector_service
from doctor_plugin import service

PROG = 'doctor-plugin-inspector'


def main(argv: list[str] | None = None) -> int:
    conf = service.prepare_service(argv, PROG)
    try:
        inspector = inspector_service.InspectorService(conf)
    except exceptions.DoctorPluginError as exc:
        return service.fail(exc, PROG)
    service.run_until_signalled(inspector.start, inspector.stop,
                                inspector.reload)
    return 0
