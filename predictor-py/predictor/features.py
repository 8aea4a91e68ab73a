"""The model's features, exactly as FEATURES.md defines them.

Two implementations of one definition:

- :func:`compute_features` follows FEATURES.md (and the Go side's
  ``predictor/features.go``) line by line for one reading: it is the reference,
  checked against ``testdata/features_golden.json``, which the Go tests load too.
- :func:`window_features` computes the same features for every reading of many
  patients at once with numpy, because the cohort has ~10^5 readings and a
  Python loop per reading would make training slow. A test checks that both
  agree on cohort patients.

A feature that cannot be computed is left out (NaN in the matrix form): the
model imputes it, which a zero would silently defeat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

WINDOW_HOURS = 24.0
# At most this many of the window's most recent readings are used (FEATURES.md):
# it bounds the work per prediction for a patient who reports far more often
# than any schedule asks. The synthetic cohort reports at most 4 times a day,
# so the cap never binds in training.
MAX_WINDOW_READINGS = 100
# A slope needs its readings to span at least this long (FEATURES.md).
MIN_SLOPE_SPAN_HOURS = 1.0
TREND_VITALS: tuple[str, ...] = (
    "respiratory_rate",
    "spo2",
    "systolic_bp",
    "heart_rate",
    "temperature",
)

# Every feature name the model accepts, in the model's (and FEATURES.md's) order.
FEATURE_NAMES: tuple[str, ...] = (
    *(name for v in TREND_VITALS for name in (v, f"{v}_delta_24h", f"{v}_slope_24h")),
    "not_alert",
    "on_oxygen",
    "news2_total",
    "age_band",
)

AGE_BANDS: dict[str, int] = {"<40": 0, "40-64": 1, "65-79": 2, "80+": 3}


@dataclass(frozen=True)
class Reading:
    """One reading as the features see it: when it was measured, and its vitals.

    ``vitals`` uses DESIGN.md's JSON names; a missing vital is absent or None.
    """

    measured_at: datetime
    vitals: Mapping[str, object]


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """OLS slope of ys against xs (hours) in float64; None when they span < 1 h.

    A per-hour rate from readings minutes apart is noise scaled up by the
    short interval (FEATURES.md); the span is tested on the xs themselves.
    """
    if max(xs) - min(xs) < MIN_SLOPE_SPAN_HOURS:
        return None
    n = float(len(xs))
    mx = math.fsum(xs) / n
    my = math.fsum(ys) / n
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = math.fsum((x - mx) * (x - mx) for x in xs)
    return sxy / sxx


def compute_features(
    readings: Sequence[Reading],
    current: int,
    news2_total: int,
    age_band: int | None,
) -> dict[str, float]:
    """Returns FEATURES.md's features for ``readings[current]``.

    Args:
        readings: the patient's readings in store order, the current one among
            them; readings outside the window (or after the current one) are
            allowed and ignored.
        current: index of the current reading in ``readings``.
        news2_total: the current reading's NEWS2 total as scored.
        age_band: 0-3 from the registry, or None when it has none.

    The window is every reading measured in [t - 24 h, t], ordered by
    measured_at with ties in store order, of which the last
    MAX_WINDOW_READINGS are used; the most recent value is the current
    reading's when it has one, else the last in that order.
    """
    cur = readings[current]
    start = cur.measured_at - timedelta(hours=WINDOW_HOURS)
    window = sorted(
        (r for r in readings if start <= r.measured_at <= cur.measured_at),
        key=lambda r: r.measured_at,
    )[-MAX_WINDOW_READINGS:]
    origin = window[0].measured_at
    out: dict[str, float] = {"news2_total": float(news2_total)}
    if age_band is not None:
        out["age_band"] = float(age_band)

    for name in TREND_VITALS:
        xs: list[float] = []
        ys: list[float] = []
        for r in window:
            value = r.vitals.get(name)
            if value is not None:
                xs.append((r.measured_at - origin).total_seconds() / 3600.0)
                ys.append(float(value))  # type: ignore[arg-type]
        own = cur.vitals.get(name)
        latest = float(own) if own is not None else (ys[-1] if ys else None)  # type: ignore[arg-type]
        if latest is None:
            continue
        out[name] = latest
        if len(ys) < 2:
            continue
        out[f"{name}_delta_24h"] = latest - ys[0]
        slope = _slope(xs, ys)
        if slope is not None:
            out[f"{name}_slope_24h"] = slope

    def most_recent(key: str) -> object | None:
        if cur.vitals.get(key) is not None:
            return cur.vitals[key]
        found = None
        for r in window:
            if r.vitals.get(key) is not None:
                found = r.vitals[key]
        return found

    level = most_recent("consciousness")
    if level is not None:
        out["not_alert"] = float(level != "alert")
    oxygen = most_recent("on_oxygen")
    if oxygen is not None:
        out["on_oxygen"] = float(bool(oxygen))
    return out


def window_features(
    patient: IntArray,
    hours: FloatArray,
    vitals: Mapping[str, FloatArray],
    not_alert: FloatArray,
    on_oxygen: FloatArray,
    news2_total: FloatArray,
    age_band: FloatArray,
) -> FloatArray:
    """Returns the feature matrix (rows: readings, columns: FEATURE_NAMES).

    Vectorized form of :func:`compute_features` for a cohort. Readings must be
    sorted by (patient, hours) with no two of one patient at the same instant
    (the generator guarantees it); every reading's window is then a contiguous
    run of rows ending at the reading itself, and the most recent value in the
    window is simply the last non-missing one. NaN marks a missing value in the
    inputs and a left-out feature in the output. ``age_band`` is per reading
    (NaN: the registry has none).
    """
    n = len(hours)
    # Patients far apart on one time line, so a window never spans two of them.
    line = patient.astype(np.float64) * 10_000.0 + hours
    if np.any(np.diff(line) <= 0):
        raise ValueError("readings must be sorted by (patient, time) without ties")
    lo = np.searchsorted(line, line - WINDOW_HOURS, side="left")
    width = int((np.arange(n) - lo).max(initial=0)) + 1
    # idx[i, k] is the k-th reading of reading i's window (k = 0 is the oldest).
    offsets = np.arange(width)
    idx = lo[:, None] + offsets[None, :]
    in_window = idx <= np.arange(n)[:, None]
    idx = np.minimum(idx, n - 1)
    x = np.where(in_window, hours[idx] - hours[lo][:, None], np.nan)

    out = np.full((n, len(FEATURE_NAMES)), np.nan)
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    rows = np.arange(n)

    def last_valid(values: FloatArray) -> tuple[FloatArray, FloatArray, IntArray]:
        """Most recent and earliest non-missing values in each window, and their count."""
        y = np.where(in_window, values[idx], np.nan)
        ok = ~np.isnan(y)
        count = ok.sum(axis=1)
        last = width - 1 - np.argmax(ok[:, ::-1], axis=1)
        first = np.argmax(ok, axis=1)
        has = count > 0
        latest = np.where(has, y[rows, last], np.nan)
        earliest = np.where(has, y[rows, first], np.nan)
        return latest, earliest, count

    for name in TREND_VITALS:
        values = np.asarray(vitals[name], dtype=np.float64)
        latest, earliest, count = last_valid(values)
        out[:, col[name]] = latest
        two = count >= 2
        out[:, col[f"{name}_delta_24h"]] = np.where(two, latest - earliest, np.nan)
        y = np.where(in_window, values[idx], np.nan)
        ok = ~np.isnan(y)
        xv = np.where(ok, x, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = np.nanmax(np.where(ok, xv, -np.inf), axis=1) - np.nanmin(
                np.where(ok, xv, np.inf), axis=1
            )
            safe = np.maximum(count, 1)
            mx = np.where(ok, xv, 0.0).sum(axis=1) / safe
            my = np.where(ok, y, 0.0).sum(axis=1) / safe
            dx = np.where(ok, xv - mx[:, None], 0.0)
            dy = np.where(ok, y - my[:, None], 0.0)
            sxx = (dx * dx).sum(axis=1)
            slope = (dx * dy).sum(axis=1) / sxx
        out[:, col[f"{name}_slope_24h"]] = np.where(
            two & (spread >= MIN_SLOPE_SPAN_HOURS), slope, np.nan
        )

    out[:, col["not_alert"]] = last_valid(np.asarray(not_alert, dtype=np.float64))[0]
    out[:, col["on_oxygen"]] = last_valid(np.asarray(on_oxygen, dtype=np.float64))[0]
    out[:, col["news2_total"]] = np.asarray(news2_total, dtype=np.float64)
    out[:, col["age_band"]] = np.asarray(age_band, dtype=np.float64)
    return out
