"""Shared fixtures: a small trained model (fast) and its artifact on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictor.cohort import CohortSpec
from predictor.model import RiskModel
from predictor.train import TrainingResult, train

SMALL = CohortSpec(n_patients=600, seed=11)


@pytest.fixture(scope="session")
def small_training() -> TrainingResult:
    return train(SMALL)


@pytest.fixture(scope="session")
def model_path(small_training: TrainingResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.json"
    path.write_bytes(small_training.data)
    return path


@pytest.fixture(scope="session")
def model(model_path: Path) -> RiskModel:
    return RiskModel.load(model_path)


@pytest.fixture
def typical() -> dict[str, float]:
    """A complete, unremarkable feature set."""
    return {
        "respiratory_rate": 16.0,
        "respiratory_rate_delta_24h": 0.0,
        "respiratory_rate_slope_24h": 0.0,
        "spo2": 97.0,
        "spo2_delta_24h": 0.0,
        "spo2_slope_24h": 0.0,
        "systolic_bp": 122.0,
        "systolic_bp_delta_24h": 0.0,
        "systolic_bp_slope_24h": 0.0,
        "heart_rate": 76.0,
        "heart_rate_delta_24h": 0.0,
        "heart_rate_slope_24h": 0.0,
        "temperature": 36.8,
        "temperature_delta_24h": 0.0,
        "temperature_slope_24h": 0.0,
        "not_alert": 0.0,
        "on_oxygen": 0.0,
        "news2_total": 0.0,
        "age_band": 1.0,
    }
