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

"""Where a ``doctor://`` URL of Ceilometer or Aodh points: our inspector."""

from __future__ import annotations

import dataclasses
from urllib import parse as urlparse

from doctor_plugin import exceptions
from doctor_plugin.monitors import reporter as reporter_mod

#: URL query parameters a ``doctor://`` URL may carry (others are refused).
COMMON_PARAMS = ('timeout', 'retries', 'scheme')


def read_secret_file(path: str, url: str) -> str:
    """The shared secret in the file ``path`` (its first line).

    :raises ConfigurationError: if it cannot be read or is empty; the
        message names the file, never what it holds
    """
    try:
        with open(path, encoding='utf-8') as f:
            secret = f.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise exceptions.ConfigurationError(
            'doctor:// URL', url,
            f'cannot read the inspector secret file {path}: '
            f'{getattr(exc, "strerror", None) or exc}; make it readable by '
            f'this service (and by no one else)') from None
    if not secret:
        raise exceptions.ConfigurationError(
            'doctor:// URL', url,
            f'the inspector secret file {path} is empty; write the '
            f"inspector's [inspector] shared_secret in it")
    return secret


def inspector_reporter(parsed: urlparse.SplitResult, default_path: str,
                       extra_params: tuple[str, ...] = (),
                       secret: str | None = None
                       ) -> reporter_mod.InspectorReporter:
    """A reporter for the inspector that ``doctor://host:port/path`` names.

    ``?scheme=https`` reaches an inspector behind TLS; ``?timeout=`` (s)
    and ``?retries=`` override the reporter's defaults.

    :param extra_params: further query parameters the caller takes
        (``secret_file`` among them to take the secret from a file)
    :param secret: the inspector's shared secret, sent in ``X-Auth-Token``
        (a ``?secret_file=`` overrides it)
    :raises ConfigurationError: for a URL without host or with unknown
        parameters
    """
    params = dict(urlparse.parse_qsl(parsed.query))
    url = urlparse.urlunsplit(parsed)
    unknown = sorted(set(params) - set(COMMON_PARAMS) - set(extra_params))
    if unknown:
        raise exceptions.ConfigurationError(
            'doctor:// URL', url,
            f'unknown query parameter(s) {", ".join(unknown)}; allowed: '
            f'{", ".join(COMMON_PARAMS + extra_params)}')
    if not parsed.hostname:
        raise exceptions.ConfigurationError(
            'doctor:// URL', url,
            "name the inspector's API: doctor://HOST:PORT (the inspector "
            "listens on [inspector] host and port, 12345 by default)")
    scheme = params.get('scheme', 'http')
    if scheme not in ('http', 'https'):
        raise exceptions.ConfigurationError(
            'doctor:// URL', url, f'scheme must be http or https, not '
                                  f'{scheme!r}')
    settings = reporter_mod.ReporterSettings(urls=(urlparse.urlunsplit(
        (scheme, parsed.netloc, parsed.path.rstrip('/') or default_path,
         '', '')),))
    # Checked as the [monitor] options they stand for (numbers, in range).
    types = {opt.dest: opt.type for opt in reporter_mod.OPTS}
    try:
        if 'timeout' in params:
            settings = dataclasses.replace(
                settings, timeout=types['report_timeout'](params['timeout']))
        if 'retries' in params:
            settings = dataclasses.replace(
                settings, retries=types['report_retries'](params['retries']))
    except ValueError as exc:
        raise exceptions.ConfigurationError(
            'doctor:// URL', url, f'timeout and retries must be numbers: '
                                  f'{exc}') from None
    if 'secret_file' in params and 'secret_file' in extra_params:
        secret = read_secret_file(params['secret_file'], url)
    if secret:
        settings = dataclasses.replace(settings, secret=secret)
    return reporter_mod.InspectorReporter(settings=settings)
