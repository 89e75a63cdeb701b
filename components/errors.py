"""The platform's own error types (what `omni` prints as a clean message, without a traceback), and the check that
refuses a config's unknown keys with one of them.

An error raised as one of these says what is wrong and how to fix it (a bad config value, a missing credential,
an unreachable server). Anything else that escapes a command is a bug: the CLI keeps its traceback and asks for a
report. Each type also derives from the builtin it replaces, so `except ValueError` in callers keeps working.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class OmniError(Exception):
    """Base of every error whose message names the problem and the fix."""


class ConfigError(OmniError, ValueError):
    """A configuration value, argument or parameter the user gave is invalid."""


class InputNotFoundError(OmniError, FileNotFoundError):
    """A file or directory the user named (a dataset, a model, a run), or a program a command runs (prometheus),
    does not exist or is incomplete."""


class OutputExistsError(OmniError, FileExistsError):
    """A destination already holds earlier results that the command will not overwrite."""


def check_keys(cls: type, data: dict[str, Any]) -> None:
    """Refuse keys a config dataclass does not have, naming the known ones (typos must not pass silently)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
