"""A requests session that reads the environment once per host.

With ``trust_env`` (the default), requests reads the proxy settings
(``*_proxy``, ``no_proxy``), ``REQUESTS_CA_BUNDLE`` and ``~/.netrc`` again
for every request: under cProfile a quarter of a small request's CPU time.
The inspector sends hundreds of requests right after a fault, when the CPU
should go to notifying tenants, so it reads them once per scheme, host and
request settings instead; changes to the environment after the first
request to a host are not seen until the process restarts.
"""

from __future__ import annotations

import threading
import typing
import urllib.parse

import requests


class EnvironmentCachingSession(requests.Session):
    """:class:`requests.Session`, environment settings cached per host."""

    def __init__(self) -> None:
        super().__init__()
        self._env_cache: dict[typing.Hashable, dict] = {}
        self._env_lock = threading.Lock()

    def merge_environment_settings(self, url, proxies, stream, verify,
                                   cert):
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.netloc,
               tuple(sorted((proxies or {}).items())), stream,
               verify if isinstance(verify, (bool, str, type(None)))
               else id(verify),
               tuple(cert) if isinstance(cert, (list, tuple)) else cert)
        with self._env_lock:
            settings = self._env_cache.get(key)
        if settings is None:
            settings = super().merge_environment_settings(
                url, proxies, stream, verify, cert)
            with self._env_lock:
                self._env_cache[key] = settings
        # Callers may change what they get: each has its own copy.
        return dict(settings, proxies=dict(settings['proxies']))
