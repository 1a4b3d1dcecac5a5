"""Describe urllib3 failures in the words requests used for them.

Our HTTP clients (the webhook notifier, the monitor's reporter) talk
urllib3, or http.client with failures raised as urllib3's exceptions, for
speed, but their messages keep requests' names (``ConnectionError``,
``ReadTimeout``...), which operators and their log searches know.
"""

from __future__ import annotations

from urllib3 import exceptions as urllib3_exc


def error_name(exc: Exception) -> str:
    """The name requests gave this failure, which messages keep."""
    reason = (exc.reason if isinstance(exc, urllib3_exc.MaxRetryError)
              else exc)
    if (isinstance(reason, urllib3_exc.ConnectTimeoutError)
            and not isinstance(reason, urllib3_exc.NewConnectionError)):
        return 'ConnectTimeout'
    if isinstance(reason, urllib3_exc.ReadTimeoutError):
        return 'ReadTimeout'
    if isinstance(reason, urllib3_exc.ResponseError):
        return 'RetryError'
    if isinstance(reason, urllib3_exc.ProxyError):
        return 'ProxyError'
    if isinstance(reason, urllib3_exc.SSLError):
        return 'SSLError'
    if isinstance(reason, urllib3_exc.DecodeError):
        return 'ContentDecodingError'
    if isinstance(reason, urllib3_exc.LocationValueError):
        return 'InvalidURL'
    return 'ConnectionError'


def describe(exc: Exception, timeout: float) -> str:
    """``name: cause`` of a failed request, without urllib3's noise.

    :param timeout: the request's timeout, for the timeout messages
    """
    name = error_name(exc)
    if name == 'ConnectTimeout':
        return f'no connection within {timeout}s'
    if name == 'ReadTimeout':
        return f'no response within {timeout}s'
    # MaxRetryError's str() repeats the URL with its query; its reason is
    # the cause without it.
    cause = getattr(exc, 'reason', None) or exc
    text = str(cause)
    # urllib3 prefixes connection errors with the connection's repr.
    if text.startswith(('HTTPConnection(', 'HTTPSConnection(')):
        text = text.partition('): ')[2] or text
    return f'{name}: {text}'
