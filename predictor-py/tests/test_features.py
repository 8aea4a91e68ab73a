"""Features: the golden cases shared with the Go side, and vectorized == reference."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from predictor.cohort import CohortSpec, generate
from predictor.features import (
    FEATURE_NAMES,
    MAX_WINDOW_READINGS,
    Reading,
    _slope,
    compute_features,
)
from predictor.news2 import news2_total

GOLDEN = Path(__file__).resolve().parent.parent / "testdata" / "features_golden.json"
CASES: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["cases"]


def _readings(case: dict[str, Any]) -> list[Reading]:
    return [
        Reading(datetime.fromisoformat(r["measured_at"].replace("Z", "+00:00")), r["vitals"])
        for r in case["readings"]
    ]


def test_golden_file_covers_the_brief() -> None:
    assert 8 <= len(CASES) <= 16
    names = " ".join(c["name"] for c in CASES)
    for topic in ("single reading", "exactly 24 h", "excluded", "one instant", "age band"):
        assert topic in names
    for case in CASES:
        assert set(case) == {"name", "readings", "current", "news2_total", "age_band", "expected"}
        assert set(case["expected"]) <= set(FEATURE_NAMES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(case: dict[str, Any]) -> None:
    current = case["readings"][case["current"]]
    assert news2_total(current["vitals"]) == case["news2_total"]
    got = compute_features(_readings(case), case["current"], case["news2_total"], case["age_band"])
    assert sorted(got) == sorted(case["expected"])
    for name, want in case["expected"].items():
        assert got[name] == pytest.approx(want, rel=1e-6, abs=1e-9), name
        # What goes on the wire is float32: it must still be finite.
        assert math.isfinite(float(np.float32(got[name])))


def test_slope_of_equal_times_is_left_out_even_when_the_mean_is_inexact() -> None:
    assert _slope([0.1, 0.1, 0.1], [37.0, 37.5, 38.0]) is None
    assert _slope([0.0, 4.0, 8.0], [80.0, 84.0, 96.0]) == pytest.approx(2.0)


def test_vectorized_features_match_the_reference_on_cohort_patients() -> None:
    cohort = generate(CohortSpec(n_patients=150, seed=3))
    x = cohort.features()
    totals = cohort.news2()
    checked = 0
    for p in range(0, 150, 7):
        readings = cohort.readings_of(p)
        rows = np.flatnonzero(cohort.patient == p)
        band = cohort.age_band_recorded[p]
        for j, i in enumerate(rows):
            ref = compute_features(
                readings, j, int(totals[i]), None if np.isnan(band) else int(band)
            )
            for k, name in enumerate(FEATURE_NAMES):
                if name in ref:
                    assert x[i, k] == pytest.approx(ref[name], rel=1e-9, abs=1e-9), name
                else:
                    assert np.isnan(x[i, k]), name
            checked += 1
    assert checked > 500


def test_cohort_news2_matches_the_scalar_implementation() -> None:
    cohort = generate(CohortSpec(n_patients=40, seed=5))
    totals = cohort.news2()
    readings = [r for p in range(40) for r in cohort.readings_of(p)]
    assert [news2_total(r.vitals) for r in readings] == totals.tolist()


def test_window_is_capped_to_the_most_recent_readings() -> None:
    """A patient reporting every minute: only the last 100 readings count."""
    t0 = datetime.fromisoformat("2026-11-26T08:00:00+00:00")
    readings = [Reading(t0 + timedelta(minutes=i), {"heart_rate": 60 + i}) for i in range(150)]
    f = compute_features(readings, 149, 0, None)
    assert f["heart_rate"] == 209
    # The earliest reading used is the 100th from the end: heart rate 110.
    assert f["heart_rate_delta_24h"] == 209 - (60 + 150 - MAX_WINDOW_READINGS)
