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
