"""Plugins that real Ceilometer and Aodh load through their own entry
points (``ceilometer.event.publisher``, ``aodh.notifier``).

They use neither project's code, only its calling conventions, so
doctor_plugin installs and runs without them, and they load in those
services' processes without pulling anything of doctor_plugin's services
in.
"""
