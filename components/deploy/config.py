"""DeployConfig: where a verified version goes (a local `omni serve`, or a Helm release on Kubernetes) and how it is
verified (a smoke request, then a window of serving metrics). One dataclass: the pipeline's `deploy_json`, `omni
deploy` and the tests read their defaults here."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from components.contracts import TRITON_ADMIN_HEADER, TRITON_ADMIN_KEY_ENV
from components.errors import ConfigError, check_keys

TARGETS = ("", "local", "kubernetes")  # "" = no deploy target: the pipeline's deploy step does not run


@dataclass
class DeployConfig:
    target: str = ""
    # --- target "local": an `omni serve` in explicit model-control mode on a repository holding versions
    repository: str = ""  # the served repository directory (versions side by side: emotion_omni/<N>/)
    url: str = ""  # its HTTP host:port; "" = the pipeline step starts a tritonserver for the deploy and stops it after
    grpc_url: str = ""  # its gRPC host:port, where the repository API is called (an HTTP load stalls HTTP callers)
    metrics_url: str = ""  # its Prometheus endpoint (http://host:8002/metrics), the local metrics window's source
    # --- target "kubernetes": the Helm release of charts/emotion-omni-triton
    namespace: str = ""  # the release's namespace ("" = this pod's, else the kubeconfig context's)
    release: str = ""  # the Helm release name (its Deployment carries app.kubernetes.io/instance=<release>)
    service_url: str = ""  # where the smoke request goes; "" = http://<deployment>.<namespace>.svc.cluster.local:8000
    prometheus_url: str = ""  # the metrics window's source on a cluster (kube-prometheus-stack's Prometheus)
    rollout_timeout_s: float = 1200.0  # the chart's progressDeadlineSeconds: model loading is slow
    # --- verification, both targets
    admin_key_env: str = TRITON_ADMIN_KEY_ENV  # env var holding the restricted-API key (local target)
    admin_header: str = TRITON_ADMIN_HEADER  # the header Triton checks (the chart's restrictedApi.header)
    smoke_timeout_s: float = 120.0  # one smoke request, model warm-up included
    window_s: float = 60.0  # how long the serving metrics are watched after the move; 0 skips the window
    poll_s: float = 5.0  # how often the rollout (kubernetes) and the metrics are read
    # The chart's alert thresholds (prometheusRule.thresholds): a window above either fails the rollout.
    max_error_ratio: float = 0.05
    max_p95_latency_s: float = 2.0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"deploy target {self.target!r}: use one of {TARGETS}")
        if self.target == "local" and not self.repository:
            raise ConfigError("deploy target 'local' needs repository: the directory `omni serve` serves")
        if self.target == "kubernetes" and not self.release:
            raise ConfigError("deploy target 'kubernetes' needs release: the Helm release of emotion-omni-triton")
        for name in ("rollout_timeout_s", "smoke_timeout_s", "poll_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be > 0")
        if self.window_s < 0:
            raise ConfigError(f"window_s={self.window_s}: must be >= 0 (0 skips the metrics window)")
        if not 0 <= self.max_error_ratio <= 1:
            raise ConfigError(f"max_error_ratio={self.max_error_ratio}: a fraction between 0 and 1")
        if self.max_p95_latency_s <= 0:
            raise ConfigError(f"max_p95_latency_s={self.max_p95_latency_s}: must be > 0")

    @classmethod
    def from_dict(cls, data: dict) -> DeployConfig:
        check_keys(cls, data)
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> DeployConfig:
        """DeployConfig from a JSON object of its fields; "" or "{}" is no target."""
        return cls.from_dict(_json_object(text))

    @classmethod
    def from_pipeline(cls, target: str, deploy_json: str) -> DeployConfig:
        """From the pipeline's two parameters: `deploy_target` once, every other field in `deploy_json`."""
        data = _json_object(deploy_json)
        if "target" in data:
            raise ConfigError(
                f"deploy_json sets target={data['target']!r}; the target is the pipeline parameter deploy_target "
                "only. Fix: remove it from deploy_json"
            )
        return cls.from_dict({**data, "target": target})

    def to_dict(self) -> dict:
        return asdict(self)


def _json_object(text: str) -> dict:
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError as err:
        raise ConfigError(f'deploy_json is not JSON ({err}); pass e.g. \'{{"repository": "/srv/serving"}}\'') from None
    if not isinstance(data, dict):
        raise ConfigError(f"deploy_json must be a JSON object of DeployConfig fields, got {type(data).__name__}")
    return data
