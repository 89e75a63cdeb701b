"""SteadyLoad: a bounded loopback load on a running Triton, to measure what a change to the server (a deploy, a
rollback) does to the requests of callers who keep sending while it happens.

    with SteadyLoad(server.http_url, wav, rate_per_s=2.0, max_in_flight=2) as load:
        ...  # change the server
        mark = load.elapsed_s()
    print(load.report.summary(slow_s=2.0), load.report.between(0, mark).summary(slow_s=2.0))

Requests start on an open-loop schedule (`rate_per_s`, like independent callers, not a client that waits for each
reply) but never more than `max_in_flight` at once: a start that would exceed it waits for a free slot and is
counted as delayed, and the schedule moves on from when it did start instead of catching up in a burst, so the
load can never pile up on a slow server and what it measures is the server's change, not a queue the load built.
Every request is recorded, failed ones included; nothing here raises because the server failed a request.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from components.contracts import TRITON_MODEL_NAME
from components.errors import ConfigError
from serving.client import EmotionOmniClient

_DISTINCT_ERRORS = 5  # a summary's error sample: enough to tell causes apart, short enough to read


@dataclass
class RequestRecord:
    """One request as the load saw it."""

    start_s: float  # when it was sent, seconds after the load started
    latency_s: float  # until the reply (or the failure) came back
    ok: bool
    error: str = ""  # "<ExceptionType>: <message>" when not ok
    model_version: str = ""  # the Triton version that answered; "" when it failed
    delayed: bool = False  # it waited for a free slot past its scheduled start
    # How long past its scheduled start it was sent. A caller of a stalled server waits this long on top of
    # latency_s; the starts that fell due meanwhile were not made (the schedule moved on), so a long stall shows
    # here and in fewer requests, not as a pile of slow ones.
    wait_s: float = 0.0


@dataclass
class LoadReport:
    """Every request of a load (or of one stretch of it: `between`)."""

    records: list[RequestRecord] = field(default_factory=list)
    seconds: float = 0.0  # how long the load (or the stretch) ran
    delayed: int = 0  # starts that had to wait for a free slot

    def summary(self, slow_s: float) -> dict:
        """Counts and latency figures; latencies are of the answered requests (a refused connection fails in
        microseconds and would make a failure look fast), None when none was answered."""
        ok = [r for r in self.records if r.ok]
        latency = np.array([r.latency_s for r in ok])

        def pct(q: float) -> float | None:
            return round(float(np.percentile(latency, q)), 4) if latency.size else None

        errors = list(dict.fromkeys(r.error for r in self.records if not r.ok))
        return {
            "requests": len(self.records),
            "failed": len(self.records) - len(ok),
            "slow": sum(r.latency_s > slow_s for r in ok),
            "p50_s": pct(50),
            "p95_s": pct(95),
            "max_s": round(float(latency.max()), 4) if latency.size else None,
            "versions": dict(sorted(Counter(r.model_version for r in ok).items())),
            "errors": errors[:_DISTINCT_ERRORS],
            "delayed": self.delayed,
            "max_wait_s": round(max((r.wait_s for r in self.records), default=0.0), 4),
            "seconds": round(self.seconds, 2),
        }

    def between(self, t0: float, t1: float) -> LoadReport:
        """The requests that started in [t0, t1) seconds after the load started (one phase of a benchmark)."""
        records = [r for r in self.records if t0 <= r.start_s < t1]
        seconds = max(0.0, min(t1, self.seconds) - max(t0, 0.0))
        return LoadReport(records, seconds, sum(r.delayed for r in records))


class SteadyLoad:
    """Requests of one WAV to `url` at `rate_per_s`, at most `max_in_flight` at once, until stop()."""

    def __init__(
        self,
        url: str,
        wav: bytes,
        *,
        rate_per_s: float = 2.0,
        max_in_flight: int = 2,
        timeout_s: float = 30.0,
        model_name: str = TRITON_MODEL_NAME,
    ):
        if rate_per_s <= 0:
            raise ConfigError(f"rate_per_s={rate_per_s}: must be > 0 (requests started per second)")
        if max_in_flight < 1:
            raise ConfigError(f"max_in_flight={max_in_flight}: must be >= 1")
        if timeout_s <= 0:
            raise ConfigError(f"timeout_s={timeout_s}: must be > 0")
        self.url, self.wav, self.model_name = url, bytes(wav), model_name
        self.rate_per_s, self.max_in_flight, self.timeout_s = rate_per_s, max_in_flight, timeout_s
        self.report: LoadReport | None = None  # set by stop()
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._stopping = threading.Event()
        self._t0 = 0.0
        self._scheduler: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        # Each start's (scheduled time, delayed); None tells a worker to exit.
        self._starts: queue.SimpleQueue[tuple[float, bool] | None] = queue.SimpleQueue()

    def elapsed_s(self) -> float:
        """Seconds since start(), on the clock of RequestRecord.start_s (for marking phases)."""
        return time.monotonic() - self._t0

    def snapshot(self) -> LoadReport:
        """The requests finished so far (the load keeps running)."""
        with self._lock:
            records = sorted(self._records, key=lambda r: r.start_s)
        return LoadReport(records, self.elapsed_s(), sum(r.delayed for r in records))

    def start(self) -> SteadyLoad:
        if self._scheduler is not None:
            raise RuntimeError("this load was already started; make a new SteadyLoad for another run")
        self._t0 = time.monotonic()
        self._workers = [
            threading.Thread(target=self._work, name=f"steady-load-{i}", daemon=True) for i in range(self.max_in_flight)
        ]
        self._scheduler = threading.Thread(target=self._schedule, name="steady-load-scheduler", daemon=True)
        for thread in [*self._workers, self._scheduler]:
            thread.start()
        return self

    def stop(self) -> LoadReport:
        """Start no more requests, wait for the ones in flight; return (and keep) the report."""
        if self.report is not None:
            return self.report
        if self._scheduler is None:
            raise RuntimeError("stop() before start()")
        self._stopping.set()
        self._scheduler.join()
        for _ in self._workers:
            self._starts.put(None)
        for thread in self._workers:
            thread.join()
        self.report = self.snapshot()
        return self.report

    def __enter__(self) -> SteadyLoad:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _schedule(self) -> None:
        period = 1.0 / self.rate_per_s
        due = time.monotonic()
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            delayed = not self._slots.acquire(blocking=False)
            if delayed:
                # Poll rather than block, so stop() is not held up by a server that never answers.
                while not self._slots.acquire(timeout=0.05):
                    if self._stopping.is_set():
                        return
            self._starts.put((due, delayed))
            due = max(due, time.monotonic()) + period  # after a wait the schedule moves on, no catch-up burst

    def _work(self) -> None:
        """One worker thread: its own client (tritonclient's HTTP client is not safe to share between threads), one
        request per start it takes."""
        client: EmotionOmniClient | None = None
        try:
            while (start := self._starts.get()) is not None:
                try:
                    client, record = self._send(client, *start)
                    with self._lock:
                        self._records.append(record)
                finally:
                    self._slots.release()
        finally:
            # Closed, not left to the garbage collector: an idle keep-alive connection holds a stopping
            # tritonserver for its whole exit timeout.
            if client is not None:
                client.close()

    def _send(
        self, client: EmotionOmniClient | None, due: float, delayed: bool
    ) -> tuple[EmotionOmniClient | None, RequestRecord]:
        """One request; returns the client to use next (None after a failure: a fresh connection, never a broken
        one) and the record."""
        start = time.monotonic()
        try:
            client = client or EmotionOmniClient(self.url, timeout_s=self.timeout_s, model_name=self.model_name)
            reply = client.chat(self.wav)
            ok, error, version = True, "", reply.model_version
        except Exception as err:  # every failure is data here: refused, reset, timed out, a non-OK reply
            if client is not None:
                client.close()
            client, ok, error, version = None, False, _describe(err), ""
        latency_s = time.monotonic() - start
        return client, RequestRecord(start - self._t0, latency_s, ok, error, version, delayed, max(0.0, start - due))


def _describe(err: Exception) -> str:
    message = getattr(err, "message", None) or str(err)  # ServingError.message is Triton's text without the url
    return f"{type(err).__name__}: {message}"
