"""`omni serve --prometheus`: Debian's Prometheus scraping the local Triton with the chart's own alert rules.

A local user then sees the series and alerts an SRE sees: Triton's nv_* and the model's emotion_omni_*, and
EmotionOmniHighErrorRatio & co. evaluated on them. The rules are the chart's `files/alerts.yaml` with its
placeholders filled the way the chart fills them (thresholds from `values.yaml`), for a release named "local"; the
scrape adds the namespace/service/pod labels the cluster's ServiceMonitor adds, so the same expressions match.
Needs a checkout (the chart is not part of the installed package) and `apt-get install prometheus`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from components.errors import InputNotFoundError, OmniError
from serving.launcher import free_ports

CHART_DIR = Path(__file__).resolve().parents[1] / "charts" / "emotion-omni-triton"
RELEASE = NAMESPACE = "local"
SERVICE = "local-emotion-omni-triton"
_PLACEHOLDER = re.compile(r"<<(\w+)>>")


class PrometheusError(OmniError, RuntimeError):
    """The local Prometheus exited or never became ready; the message names its log."""


def local_rules(chart_dir: Path = CHART_DIR) -> str:
    """The chart's alert rules, filled for the local release (as templates/_helpers.tpl's fillFile does)."""
    rules_file, values_file = chart_dir / "files" / "alerts.yaml", chart_dir / "values.yaml"
    if not rules_file.is_file():
        raise InputNotFoundError(
            f"{rules_file} is missing: `omni serve --prometheus` reads the Helm chart's alert "
            "rules from a checkout of the project"
        )
    values = yaml.safe_load(values_file.read_text())
    thresholds = values["prometheusRule"]["thresholds"]
    fills = {
        "namespace": NAMESPACE,
        "service": SERVICE,
        "deployment": SERVICE,
        "release": RELEASE,
        "model": values["model"]["name"],
        **{k: str(v) for k, v in thresholds.items()},
    }

    def fill(match: re.Match) -> str:
        if match.group(1) not in fills:
            raise ValueError(f"{rules_file} has a placeholder <<{match.group(1)}>> the local fill does not know")
        return fills[match.group(1)]

    return _PLACEHOLDER.sub(fill, rules_file.read_text())


def prometheus_config(metrics_target: str, rules_file: Path, interval_s: int = 5) -> dict:
    """Scrape `metrics_target` (host:port of Triton's metrics) with the labels the ServiceMonitor would add."""
    return {
        "global": {"scrape_interval": f"{interval_s}s", "evaluation_interval": f"{interval_s}s"},
        "rule_files": [str(rules_file)],
        "scrape_configs": [
            {
                "job_name": "triton",
                "static_configs": [
                    {
                        "targets": [metrics_target],
                        "labels": {"namespace": NAMESPACE, "service": SERVICE, "pod": f"{SERVICE}-0"},
                    }
                ],
            }
        ],
    }


class LocalPrometheus:
    """A Prometheus process on 127.0.0.1 with its data under `work_dir`; a context manager."""

    def __init__(self, metrics_url: str, work_dir: Path, port: int = 0, interval_s: int = 5):
        binary = shutil.which("prometheus")
        if binary is None:
            raise InputNotFoundError(
                "prometheus is not installed: apt-get install prometheus (Debian's package "
                "ships the server and promtool)"
            )
        self.binary, self.work_dir, self.interval_s = binary, Path(work_dir), interval_s
        self.target = metrics_url.split("://")[-1].split("/")[0]  # host:port
        self.port = port or free_ports("127.0.0.1", 1)[0]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> LocalPrometheus:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        rules = self.work_dir / "alerts.rules.yaml"
        rules.write_text(local_rules())
        config = self.work_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(self.target, rules, self.interval_s)))
        self.log_path = self.work_dir / "prometheus.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.work_dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        self.stop()
        raise PrometheusError(f"prometheus was not ready after {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
