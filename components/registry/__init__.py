"""Registry: the promotion gate and MLflow registration with challenger/champion aliases (not stages)."""

from components.registry.config import RegistryConfig
from components.registry.connection import RegistryError
from components.registry.gate import GateConfig, GateDecision, GateError, evaluate_gate
from components.registry.mlflow_registry import (
    RegisteredVersion,
    download_model,
    promote,
    register_model,
    resolve,
)

__all__ = [
    "GateConfig",
    "GateDecision",
    "GateError",
    "RegisteredVersion",
    "RegistryConfig",
    "RegistryError",
    "download_model",
    "evaluate_gate",
    "promote",
    "register_model",
    "resolve",
]
