# Tests run on the backend our commands choose (doctor_plugin.cmd), chosen
# before any test module imports oslo.messaging.
from doctor_plugin import service

service.use_threads()
