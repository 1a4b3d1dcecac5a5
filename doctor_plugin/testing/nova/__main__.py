"""``python -m doctor_plugin.testing.nova``: serve a Nova stand-in."""

from doctor_plugin.testing.nova import process

process.main()
