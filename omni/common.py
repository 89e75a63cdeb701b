"""What every `omni` command module shares: the data directory default, the command-level error, the registry lookup."""

from __future__ import annotations

import os
from pathlib import Path

from components.errors import OmniError

DEFAULT_DATA_DIR = Path(os.environ.get("OMNI_DATA_DIR", "data"))


class CLIError(OmniError):
    """A failure a command reports itself (flags that conflict, a server that exited); like every OmniError, `main`
    prints it without a traceback and exits 2."""


def registry_uri(tracking_uri: str = "", data_dir: Path = DEFAULT_DATA_DIR) -> str:
    """The MLflow registry a command reads: `tracking_uri`, else $MLFLOW_TRACKING_URI, else the demo's sqlite registry
    under `data_dir` when it exists; "" when there is none."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        return uri
    database = Path(data_dir).resolve() / "mlflow.db"
    return f"sqlite:///{database}" if database.is_file() else ""
