"""Live training metrics: rank 0 serves Prometheus' text format on `metrics_port` while it trains.

    omni_train_step                         optimizer steps done
    omni_train_total_steps                  steps the run will make
    omni_train_loss{part="loss|text_loss|..."}  the latest logged loss parts (mean over ranks)
    omni_train_learning_rate{group="llm|modules"}
    omni_train_samples_per_second           over the last log interval, all ranks together
    omni_train_tokens_per_second            tokens the model read (audio positions + reply + speech units)
    omni_train_achieved_tflops / omni_train_mfu   when the peak FLOP/s of the device is known
    omni_train_memory_bytes{kind="peak_rss|cuda_peak"}
    omni_train_checkpoint_step              the newest complete checkpoint

Each metric carries `run` and `stage` labels, so one Prometheus sees every run. On a cluster the bootstrap's headless
Service and ServiceMonitor (infra/bootstrap/06-monitoring/training) scrape rank 0's pod, found by the label that
trainjob.py puts on the trainer pods; the Grafana dashboard "Emotion Omni training" draws them. The server is a
daemon thread: it dies with the rank.
"""

from __future__ import annotations

import resource

import torch

NAMESPACE = "omni_train"


class TrainMetrics:
    def __init__(self, port: int, run: str, stage: int):
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()  # not the global one: tests build several in one process
        labels = {"run": run, "stage": str(stage)}

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()):
            metric = Gauge(f"{NAMESPACE}_{name}", doc, (*labels, *extra), registry=self.registry)
            return metric, labels

        self._step = gauge("step", "Optimizer steps done")
        self._total = gauge("total_steps", "Optimizer steps this run will make")
        self._loss = gauge("loss", "Latest logged loss parts, mean over ranks", ("part",))
        self._lr = gauge("learning_rate", "Learning rate per parameter group", ("group",))
        self._samples = gauge("samples_per_second", "Training samples per second, all ranks")
        self._tokens = gauge("tokens_per_second", "Tokens the model read per second, all ranks")
        self._tflops = gauge("achieved_tflops", "Model TFLOP/s achieved, all ranks")
        self._mfu = gauge("mfu", "Model FLOPs utilisation: achieved / peak FLOP/s of the ranks' devices")
        self._memory = gauge("memory_bytes", "Peak resident memory of rank 0 and its peak CUDA memory", ("kind",))
        self._checkpoint = gauge("checkpoint_step", "Step of the newest complete checkpoint")
        self.server, self.thread = start_http_server(port, registry=self.registry)
        self.port = self.server.server_port

    @staticmethod
    def _set(metric, value: float, **extra: str) -> None:
        gauge, labels = metric
        gauge.labels(**labels, **extra).set(value)

    def progress(
        self,
        step: int,
        total_steps: int,
        losses: dict[str, float],
        lrs: dict[str, float],
        samples_per_s: float,
        tokens_per_s: float,
        tflops: float | None,
        mfu: float | None,
    ) -> None:
        self._set(self._step, step)
        self._set(self._total, total_steps)
        for part, value in losses.items():
            self._set(self._loss, value, part=part)
        for group, value in lrs.items():
            self._set(self._lr, value, group=group)
        self._set(self._samples, samples_per_s)
        self._set(self._tokens, tokens_per_s)
        if tflops is not None:
            self._set(self._tflops, tflops)
        if mfu is not None:
            self._set(self._mfu, mfu)
        self._set(self._memory, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, kind="peak_rss")
        if torch.cuda.is_available():
            self._set(self._memory, torch.cuda.max_memory_allocated(), kind="cuda_peak")

    def checkpoint(self, step: int) -> None:
        self._set(self._checkpoint, step)

    def close(self) -> None:
        self.server.shutdown()
