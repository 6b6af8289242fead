"""What the service measures, in Prometheus' text format (`GET /metrics`): jobs by status and the
queue's depth (read from the job store when scraped), generation seconds by model, peak GPU memory
per job, failures by kind, and the refiner's latency. The same figures per job sit in its record.
One registry per service, so tests and two studios in one process do not share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from .store import JobStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FAILURE_KINDS = ("out_of_memory", "bad_input", "model_missing", "interrupted", "internal", "llm_fallback")


class _StoreCollector:
    def __init__(self, store: JobStore):
        self.store = store

    def collect(self):
        counts = self.store.counts()
        jobs = GaugeMetricFamily("i2v_jobs", "Jobs in the store by status", labels=["status"])
        for status, n in counts.items():
            jobs.add_metric([status], n)
        yield jobs
        yield GaugeMetricFamily("i2v_queue_depth", "Jobs waiting to run", value=counts["queued"] + counts["interrupted"])


class Metrics:
    def __init__(self, store: JobStore):
        self.registry = CollectorRegistry()
        self.registry.register(_StoreCollector(store))
        self.generation_seconds = Histogram(
            "i2v_generation_seconds", "Seconds a finished job took to run, by model", ["model"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600), registry=self.registry)  # fmt: skip
        self.peak_gpu_gb = Histogram(
            "i2v_job_peak_gpu_memory_gb", "Peak GPU memory of a job (GB), by model", ["model"],
            buckets=(1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 141), registry=self.registry)  # fmt: skip
        self.failures = Counter("i2v_failures", "Failures by kind", ["kind"], registry=self.registry)
        for kind in FAILURE_KINDS:
            self.failures.labels(kind)  # every kind shows, at 0, before it first happens
        self.refine_seconds = Histogram(
            "i2v_refine_seconds", "Seconds a prompt refinement took, by who answered (llm or offline)", ["source"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=self.registry)  # fmt: skip

    def text(self) -> bytes:
        return generate_latest(self.registry)
