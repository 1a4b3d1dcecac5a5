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

"""Read the YAML files operators write: pipeline, alarms, topology."""

from __future__ import annotations

import typing

import yaml

from doctor_plugin import exceptions


def load(path: str, what: str, option: str) -> typing.Any:
    """Parse the YAML file at ``path``.

    :param what: what the file holds, for the error ("the pipeline file")
    :param option: the option that names it ("[DEFAULT] pipeline_cfg_file")
    :raises ConfigurationError: if it cannot be read or is not YAML, saying
        which option to fix.
    """
    try:
        with open(path, encoding='utf-8') as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise exceptions.ConfigurationError(
            path, None, f'cannot read {what}: {exc.strerror}; set {option} '
                        f'to an existing file') from None
    except yaml.YAMLError as exc:
        raise exceptions.ConfigurationError(
            path, None, f'is not valid YAML: {exc}') from None
