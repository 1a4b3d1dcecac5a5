"""OPNFV Doctor fault management for OpenStack, as plugins."""

import warnings

# eventlet is installed beside oslo.service, but we run on threads; futurist
# still imports it when present, and its deprecation banner would open every
# command's output. Silence only that import's warning.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated',
                        module=r'(futurist|oslo_service)\.')

from oslo_service import backend as _service_backend  # noqa: E402

# Our services run oslo.messaging listeners with the threading executor.
# oslo.service picks eventlet unless told otherwise; choose threads, unless
# the process that loaded us as a plugin (an eventlet-based service) already
# chose.
if _service_backend.get_backend_type() is None:
    try:
        _service_backend.init_backend(_service_backend.BackendType.THREADING)
    except (ImportError, ValueError):
        # oslo.service installed without its "threading" extra: the
        # eventlet backend works too, as our code never relies on it.
        pass
