"""The server over a real channel: RPCs, errors, health, metrics, delay, shutdown."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from predictor.model import RiskModel
from predictor.pb import prediction_pb2 as pb
from predictor.pb import prediction_pb2_grpc as pb_grpc
from predictor.server import RunningServer, start

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(model: RiskModel) -> Iterator[RunningServer]:
    running = start(model, "127.0.0.1:0", "127.0.0.1:0")
    yield running
    running.stop(0)


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=5)
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.RiskPredictorStub:
    return pb_grpc.RiskPredictorStub(channel)


def _request(patient: str, **features: float) -> pb.PredictionRequest:
    return pb.PredictionRequest(patient_id=patient, features=features)


def test_predict(stub: pb_grpc.RiskPredictorStub, model: RiskModel) -> None:
    resp = stub.Predict(
        _request("P1", respiratory_rate=28, spo2=90, not_alert=1, news2_total=12), timeout=5
    )
    assert resp.patient_id == "P1"
    assert 0 < resp.probability < 1
    assert resp.model_version == model.version
    assert 0 < len(resp.contributions) <= 5
    logits = [c.logit for c in resp.contributions]
    assert logits == sorted(logits, reverse=True)
    assert all(v > 0 for v in logits)
    imputed = {c.feature for c in resp.contributions if c.imputed}
    assert imputed.isdisjoint({"respiratory_rate", "spo2", "not_alert", "news2_total"})


def test_predict_batch_keeps_order(stub: pb_grpc.RiskPredictorStub) -> None:
    reqs = [
        _request(f"P{i}", news2_total=float(i % 13), respiratory_rate=14 + i) for i in range(40)
    ]
    resp = stub.PredictBatch(pb.PredictBatchRequest(requests=reqs, max_contributions=2), timeout=5)
    assert [r.patient_id for r in resp.responses] == [f"P{i}" for i in range(40)]
    assert all(len(r.contributions) <= 2 for r in resp.responses)
    singles = [stub.Predict(r, timeout=5).probability for r in reqs[:5]]
    assert [r.probability for r in resp.responses[:5]] == pytest.approx(singles)
    assert len({round(r.probability, 6) for r in resp.responses}) > 10


def test_empty_batch(stub: pb_grpc.RiskPredictorStub) -> None:
    assert len(stub.PredictBatch(pb.PredictBatchRequest(), timeout=5).responses) == 0


def test_only_news2(stub: pb_grpc.RiskPredictorStub) -> None:
    resp = stub.Predict(_request("P1", news2_total=2), timeout=5)
    assert 0 < resp.probability < 1
    assert all(c.imputed or c.feature == "news2_total" for c in resp.contributions)


@pytest.mark.parametrize(
    ("features", "name"),
    [
        ({"news2_total": 1.0, "heart_rte": 80.0}, "heart_rte"),
        ({"news2_total": 1.0, "spo2": math.nan}, "spo2"),
        ({"news2_total": 1.0, "temperature": math.inf}, "temperature"),
    ],
)
def test_invalid_features(
    stub: pb_grpc.RiskPredictorStub, features: dict[str, float], name: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Predict(pb.PredictionRequest(patient_id="P1", features=features), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert name in err.value.details()
    batch = pb.PredictBatchRequest(
        requests=[_request("ok", news2_total=1), pb.PredictionRequest(features=features)]
    )
    with pytest.raises(grpc.RpcError) as err:
        stub.PredictBatch(batch, timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request 1" in err.value.details()
    assert name in err.value.details()


def test_far_out_values_are_allowed(stub: pb_grpc.RiskPredictorStub) -> None:
    resp = stub.Predict(_request("P1", heart_rate=400, temperature=20, news2_total=20), timeout=5)
    assert 0 <= resp.probability <= 1


def test_health(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "prediction.RiskPredictor"):
        resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_metrics(server: RunningServer, stub: pb_grpc.RiskPredictorStub) -> None:
    stub.Predict(_request("P1", news2_total=1), timeout=5)
    stub.PredictBatch(pb.PredictBatchRequest(requests=[_request("P1", news2_total=1)] * 3))
    with pytest.raises(grpc.RpcError):
        stub.Predict(_request("P1", nope=1), timeout=5)
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'predictor_requests_total{code="OK",method="Predict"}' in text
    assert 'predictor_requests_total{code="INVALID_ARGUMENT",method="Predict"}' in text
    assert 'predictor_request_duration_seconds_bucket{le="0.005",method="PredictBatch"}' in text
    assert 'predictor_batch_size_bucket{le="4.0"}' in text
    assert f'predictor_model_info{{version="{server.version}"}} 1.0' in text
    assert "predictor_predictions_total" in text


def test_delay_and_graceful_stop(model: RiskModel) -> None:
    running = start(model, "127.0.0.1:0", "", delay_ms=300)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        stub = pb_grpc.RiskPredictorStub(ch)
        began = time.perf_counter()
        stub.Predict(_request("P1", news2_total=1), timeout=5)
        assert time.perf_counter() - began >= 0.3
        # An RPC in flight when shutdown starts still completes.
        call = stub.Predict.future(_request("P2", news2_total=1), timeout=5)
        time.sleep(0.1)
        with futures.ThreadPoolExecutor(1) as pool:
            stopping = pool.submit(running.stop, 3.0)
            assert call.result().patient_id == "P2"
            stopping.result(timeout=5)


def test_command_line_serves_and_stops_on_sigterm(model_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "predictor",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "",
            "--model",
            str(model_path),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        prefix, _, rest = line.partition("predictor serving on 127.0.0.1:")
        assert prefix == ""
        port, _, version = rest.partition(" model ")
        assert version.startswith("lr-")
        assert "metrics" not in version
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            resp = pb_grpc.RiskPredictorStub(ch).Predict(_request("P9", news2_total=5), timeout=5)
        assert resp.model_version == version
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        logs = proc.stderr.read()
        assert "P9" not in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_model_path_fails_clearly(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "predictor",
            "--model",
            str(tmp_path / "none.json"),
            "--metrics-addr",
            "",
        ],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 1
    assert "cannot load model" in proc.stderr


@pytest.mark.parametrize(
    ("target", "want"),
    [("server", 0), ("127.0.0.1:1", 1), (None, 2)],
)
def test_healthcheck_command(server: RunningServer, target: str | None, want: int) -> None:
    from predictor import healthcheck

    if target is None:
        argv: list[str] = []
    elif target == "server":
        argv = [f"127.0.0.1:{server.port}"]
    else:
        argv = [target]
    assert healthcheck.main(argv) == want


def test_tls_flags_go_together(model_path: Path, tmp_path: Path) -> None:
    from predictor.__main__ import main

    cert = tmp_path / "cert.pem"
    cert.write_text("unused")
    assert main(["--model", str(model_path), "--addr", "127.0.0.1:0", "--tls-cert", str(cert)]) == 2
