"""Model invariants: probabilities, determinism, monotonicity, explanations."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from predictor.cohort import CohortSpec
from predictor.features import FEATURE_NAMES
from predictor.model import FeatureError, RiskModel, version_of
from predictor.train import TrainingResult, main, train

ROOT = Path(__file__).resolve().parent.parent


def _p(model: RiskModel, features: dict[str, float]) -> float:
    return float(model.predict_proba(model.matrix([features]))[0])


def test_training_is_deterministic() -> None:
    spec = CohortSpec(n_patients=300, seed=21)
    a, b = train(spec), train(spec)
    assert a.data == b.data
    assert a.version == b.version == version_of(a.data)
    assert a.version.startswith("lr-")
    assert len(a.version) == 15


def test_cli_writes_artifact_and_card(tmp_path: Path) -> None:
    card = tmp_path / "CARD.md"
    assert main(["--out", str(tmp_path / "m"), "--card", str(card), "--patients", "300"]) == 0
    data = (tmp_path / "m" / "model.json").read_bytes()
    text = card.read_text()
    assert version_of(data) in text
    assert "NOT clinically validated" in text
    assert "synthetic data only" in text
    for heading in ("Intended use", "Training data", "Hold-out evaluation", "Limitations"):
        assert heading in text
    artifact = json.loads(data)
    assert "time" not in json.dumps(artifact["training"]).lower()


def test_artifact_is_plain_json_with_everything_inference_needs(
    small_training: TrainingResult,
) -> None:
    art = json.loads(small_training.data)
    assert [i["name"] for i in art["inputs"]] == list(FEATURE_NAMES)
    assert all(t["coef"] >= 0 for t in art["transforms"])
    assert {"intercept", "transforms", "inputs", "training"} <= set(art)


def test_probabilities_are_in_range(model: RiskModel, typical: dict[str, float]) -> None:
    rng = np.random.default_rng(0)
    x = model.matrix([typical] * 200)
    x = x + rng.normal(0, 20, x.shape)
    x[rng.random(x.shape) < 0.3] = np.nan
    p = model.predict_proba(x)
    assert np.all((p >= 0) & (p <= 1))
    extreme = dict(typical, respiratory_rate=60, spo2=50, systolic_bp=40, news2_total=20)
    assert 0 <= _p(model, extreme) <= 1


def test_only_news2_still_gives_a_probability(model: RiskModel) -> None:
    p = _p(model, {"news2_total": 3.0})
    assert 0 < p < 1
    assert 0 < _p(model, {}) < 1


@pytest.mark.parametrize(
    ("feature", "values"),
    [
        ("respiratory_rate", [20, 21, 24, 28, 35, 50]),
        ("heart_rate", [90, 95, 110, 130, 160]),
        ("temperature", [38.0, 38.3, 39.0, 40.0, 41.5]),
        ("spo2", [96, 95, 93, 90, 85, 70]),
        ("systolic_bp", [110, 105, 95, 85, 70]),
        ("not_alert", [0, 1]),
        ("on_oxygen", [0, 1]),
        ("heart_rate_slope_24h", [0, 0.5, 1, 3, 10]),
        ("respiratory_rate_delta_24h", [0, 2, 6, 12]),
        ("news2_total", [0, 3, 5, 7, 12]),
        ("age_band", [0, 1, 2, 3]),
    ],
)
def test_worse_never_lowers_the_risk(
    model: RiskModel, typical: dict[str, float], feature: str, values: list[float]
) -> None:
    for base in (typical, {"news2_total": 4.0}, dict(typical, respiratory_rate=26, spo2=91)):
        probs = [_p(model, dict(base, **{feature: float(v)})) for v in values]
        assert all(b >= a for a, b in itertools.pairwise(probs)), probs


def test_contributions_add_up_and_are_sorted(model: RiskModel, typical: dict[str, float]) -> None:
    sick = dict(
        typical,
        respiratory_rate=27,
        respiratory_rate_delta_24h=9,
        spo2=91,
        spo2_delta_24h=-5,
        not_alert=1,
        news2_total=11,
    )
    del sick["temperature"]
    x = model.matrix([sick, typical])
    p, contributions, used, missing = model.score(x)
    # Exact additivity on the logit scale.
    logit = np.log(p / (1 - p))
    np.testing.assert_allclose(contributions.sum(axis=1) + model._intercept, logit, rtol=1e-9)
    for n in (1, 3, 5, 40):
        why = model.explain(contributions, used, missing, n)
        assert len(why[0]) <= n
        logits = [c.logit for c in why[0]]
        assert all(v > 0 for v in logits)
        assert logits == sorted(logits, reverse=True)
    why = model.explain(contributions, used, missing, 40)[0]
    assert why[0].feature in {
        "respiratory_rate",
        "respiratory_rate_delta_24h",
        "news2_total",
        "not_alert",
        "spo2",
        "spo2_delta_24h",
    }
    temp = [
        c for c in model.explain(contributions, used, missing, 40)[0] if c.feature == "temperature"
    ]
    assert all(c.imputed for c in temp)
    assert model.explain(contributions, used, missing, 0) == [[], []]


def test_unknown_and_non_finite_features_are_rejected(model: RiskModel) -> None:
    with pytest.raises(FeatureError, match="'heart_rte'") as err:
        model.matrix([{"news2_total": 1.0}, {"heart_rte": 80.0}])
    assert err.value.row == 1
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(FeatureError, match="'spo2'"):
            model.matrix([{"spo2": bad}])


@pytest.mark.parametrize(
    ("features", "feature"),
    [
        ({"spo2": 1e30}, "spo2"),
        ({"heart_rate_slope_24h": -2e6}, "heart_rate_slope_24h"),
        ({"age_band": 17.0}, "age_band"),
        ({"age_band": 1.5}, "age_band"),
        ({"not_alert": 0.5}, "not_alert"),
        ({"on_oxygen": 2.0}, "on_oxygen"),
    ],
)
def test_out_of_range_features_are_rejected(
    model: RiskModel, features: dict[str, float], feature: str
) -> None:
    with pytest.raises(FeatureError, match=f"'{feature}' is out of range"):
        model.matrix([{"news2_total": 3.0}, features])


def test_in_range_edges_are_accepted(model: RiskModel) -> None:
    x = model.matrix(
        [{"age_band": 3.0, "not_alert": 1.0, "on_oxygen": 0.0, "spo2_slope_24h": -9e5}]
    )
    assert x.shape == (1, len(model.inputs))


def test_batch_of_64_is_fast(model: RiskModel, typical: dict[str, float]) -> None:
    import time

    batch = [typical] * 64
    best = float("inf")
    for _ in range(50):
        start = time.perf_counter()
        x = model.matrix(batch)
        _, c, u, m = model.score(x)
        model.explain(c, u, m)
        best = min(best, time.perf_counter() - start)
    assert best < 0.005  # generous for CI; typically well under 1 ms


def test_shipped_artifact_loads_if_built(typical: dict[str, float]) -> None:
    path = ROOT / "model" / "model.json"
    if not path.exists():
        pytest.skip("model/model.json not built (make model)")
    model = RiskModel.load(path)
    assert model.version == version_of(path.read_bytes())
    assert 0 < _p(model, typical) < 0.5
