"""``doctor-plugin-listener``: evaluate event alarms from the bus."""

from __future__ import annotations

from doctor_plugin import exceptions
from doctor_plugin.listener import service as alarm_listener
from doctor_plugin import service

PROG = 'doctor-plugin-listener'


def main(argv: list[str] | None = None) -> int:
    conf = service.prepare_service(argv, PROG)
    try:
        listener = alarm_listener.AlarmListener.from_conf(conf)
    except exceptions.DoctorPluginError as exc:
        return service.fail(exc, PROG)
    service.run_until_signalled(listener.start, listener.stop,
                                listener.reload)
    return 0
