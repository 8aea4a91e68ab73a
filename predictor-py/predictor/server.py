"""The gRPC server: prediction.RiskPredictor, the standard health service and metrics.

Logs carry no patient ids and no feature values (CLINICAL.md's privacy rule:
no PHI or vitals in logs): only method names, status codes, feature *names*
in errors, and the model version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import start_http_server

from predictor.model import DEFAULT_MAX_CONTRIBUTIONS, FeatureError, RiskModel
from predictor.pb import prediction_pb2 as pb
from predictor.pb import prediction_pb2_grpc as pb_grpc

log = logging.getLogger("predictor")

SERVICE_NAME = "prediction.RiskPredictor"
_T = TypeVar("_T")


def split_addr(addr: str) -> tuple[str, int]:
    """Splits ``host:port`` (``[v6]:port`` too) into host and port."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {addr!r} is not host:port")
    return host.strip("[]"), int(port)


class ServerMetrics:
    """Prometheus metrics of one server.

    They live in their own registry, so that several servers in one process
    (as in tests) do not collide.
    """

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "predictor_requests",
            "RPCs answered, by method and gRPC status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "predictor_request_duration_seconds",
            "Time to answer an RPC (including any --delay-ms), by method.",
            ["method"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "predictor_batch_size",
            "Predictions per PredictBatch call.",
            buckets=(0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.predictions = Counter(
            "predictor_predictions", "Predictions made.", registry=self.registry
        )
        info = Gauge(
            "predictor_model_info",
            "The loaded model (value 1), labelled with its version.",
            ["version"],
            registry=self.registry,
        )
        info.labels(version=version).set(1)


class RiskPredictorServicer(pb_grpc.RiskPredictorServicer):
    """Answers Predict and PredictBatch from one loaded model (thread-safe)."""

    def __init__(self, model: RiskModel, metrics: ServerMetrics, delay_s: float = 0.0) -> None:
        self._model = model
        self._metrics = metrics
        self._delay_s = delay_s

    def _observe(self, method: str, context: grpc.ServicerContext, work: Callable[[], _T]) -> _T:
        """Runs one RPC: the test delay, timing, status counting and error mapping."""
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if self._delay_s > 0:
                time.sleep(self._delay_s)
            return work()
        except FeatureError as err:
            code = grpc.StatusCode.INVALID_ARGUMENT
            prefix = "" if method == "Predict" else f"request {err.row}: "
            log.warning("%s: invalid argument: %s", method, err)
            context.abort(code, prefix + str(err))  # raises
            raise
        except Exception as err:
            code = grpc.StatusCode.INTERNAL
            # The type only: a message could quote a value.
            log.error("%s failed: %s", method, type(err).__name__)
            context.abort(code, "internal error")
            raise
        finally:
            self._metrics.requests.labels(method=method, code=code.name).inc()
            self._metrics.latency.labels(method=method).observe(time.perf_counter() - started)

    def _answer(
        self, requests: Sequence[pb.PredictionRequest], max_contributions: int
    ) -> list[pb.PredictionResponse]:
        """Scores a batch in one matrix; responses in request order."""
        model = self._model
        x = model.matrix([r.features for r in requests])
        probability, contributions, used, missing = model.score(x)
        reasons = model.explain(contributions, used, missing, max_contributions)
        self._metrics.predictions.inc(len(requests))
        return [
            pb.PredictionResponse(
                patient_id=r.patient_id,
                probability=float(np.float32(p)),
                model_version=model.version,
                contributions=[
                    pb.Contribution(
                        feature=c.feature, value=c.value, logit=c.logit, imputed=c.imputed
                    )
                    for c in why
                ],
            )
            for r, p, why in zip(requests, probability, reasons, strict=True)
        ]

    def Predict(  # noqa: N802 - gRPC method name
        self, request: pb.PredictionRequest, context: grpc.ServicerContext
    ) -> pb.PredictionResponse:
        """One patient's probability, with up to 5 contributions."""
        return self._observe(
            "Predict", context, lambda: self._answer([request], DEFAULT_MAX_CONTRIBUTIONS)[0]
        )

    def PredictBatch(  # noqa: N802 - gRPC method name
        self, request: pb.PredictBatchRequest, context: grpc.ServicerContext
    ) -> pb.PredictBatchResponse:
        """Many predictions in one call; responses[i] answers requests[i].

        One invalid request fails the whole call with INVALID_ARGUMENT naming
        its index and feature: a Go/Python feature drift must fail loudly.
        """

        def work() -> pb.PredictBatchResponse:
            self._metrics.batch_size.observe(len(request.requests))
            n = request.max_contributions or DEFAULT_MAX_CONTRIBUTIONS
            return pb.PredictBatchResponse(responses=self._answer(request.requests, n))

        return self._observe("PredictBatch", context, work)


@dataclass
class RunningServer:
    """A started server: its bound ports and how to stop it."""

    server: grpc.Server
    health: health.HealthServicer
    host: str
    port: int
    metrics_port: int | None
    metrics_httpd: Any
    version: str

    def stop(self, grace: float = 5.0) -> None:
        """Reports NOT_SERVING, lets in-flight RPCs finish (up to ``grace``), stops."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.metrics_httpd is not None:
            self.metrics_httpd.shutdown()
            self.metrics_httpd.server_close()


def start(
    model: RiskModel,
    addr: str,
    metrics_addr: str = "",
    delay_ms: float = 0.0,
    workers: int = 8,
    tls: tuple[bytes, bytes] | None = None,
) -> RunningServer:
    """Starts the gRPC server (and the metrics endpoint unless ``metrics_addr`` is '').

    Port 0 binds a free port; the bound ports are in the result. With ``tls``
    (PEM private key, PEM certificate chain) the port serves TLS only.

    Raises:
        OSError: an address cannot be bound.
    """
    host, _ = split_addr(addr)
    metrics = ServerMetrics(model.version)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
        # Without this, grpc sets SO_REUSEPORT and a second server could bind
        # a port that is already serving.
        options=[
            ("grpc.so_reuseport", 0),
            # Clients re-resolve when a connection ends: a predictor added by
            # the autoscaler gets calls within a minute.
            ("grpc.max_connection_age_ms", 60_000),
            ("grpc.max_connection_age_grace_ms", 10_000),
        ],
    )
    pb_grpc.add_RiskPredictorServicer_to_server(
        RiskPredictorServicer(model, metrics, delay_ms / 1000.0), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        if tls is None:
            port = server.add_insecure_port(addr)
        else:
            port = server.add_secure_port(addr, grpc.ssl_server_credentials([tls]))
    except RuntimeError as err:
        raise OSError(f"cannot bind {addr}: {err}") from err
    if port == 0:
        raise OSError(f"cannot bind {addr}")

    httpd = None
    metrics_port = None
    if metrics_addr:
        mhost, mport = split_addr(metrics_addr)
        httpd, _thread = start_http_server(mport, addr=mhost, registry=metrics.registry)
        metrics_port = int(httpd.server_port)

    server.start()
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health_servicer, host, port, metrics_port, httpd, model.version)
