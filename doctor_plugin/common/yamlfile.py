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
