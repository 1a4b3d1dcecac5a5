"""The console scripts: thin entry points that parse, wire and run.

Importing this package chooses oslo.service's threading backend for the
process (:func:`doctor_plugin.service.use_threads`): it has to happen
before oslo.messaging is imported, which every command's module does.
"""

from doctor_plugin import service

service.use_threads()
