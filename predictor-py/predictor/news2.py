"""NEWS2 total (Royal College of Physicians 2017, Chart 1, SpO2 scale 1 only).

Vigil's Go scoring is the NEWS2 of record; this copy exists so that the
synthetic cohort gets the same ``news2_total`` feature the Go side sends, and so
that the model can be compared with NEWS2 alone on the same hold-out.

Rounding follows the Go side (``reading.TenthsHalfUp``): temperature is rounded
half-up to 0.1 °C on the decimal value as written (38.05 is 38.1, although the
binary float is 38.04999...); the integer items are rounded to the nearest
whole number, halves up. A missing item scores 0, so a partial set gives a
partial (under-estimating) total, as the Go side reports it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _whole(x: FloatArray) -> FloatArray:
    """Rounds to the nearest integer, halves up (NaN stays NaN)."""
    return np.floor(x + 0.5)


def temperature_tenths(celsius: FloatArray) -> FloatArray:
    """Returns temperatures rounded half-up to 0.1 °C, in tenths of a degree.

    ``celsius * 10`` is first rounded to 6 decimals so that the binary error of
    a value such as 38.05 (38.04999...) does not move it across a boundary.
    """
    return np.floor(np.round(np.asarray(celsius, dtype=np.float64) * 10.0, 6) + 0.5)


def _score(values: FloatArray, edges: list[float], points: list[int]) -> IntArray:
    """Scores each value by the band it falls in; NaN (missing) scores 0.

    ``edges`` are the inclusive upper bounds of all bands but the last.
    """
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    scored = np.asarray(points, dtype=np.int64)[idx]
    return np.where(np.isnan(values), 0, scored)


def news2_totals(
    respiratory_rate: FloatArray,
    spo2: FloatArray,
    on_oxygen: FloatArray,
    systolic_bp: FloatArray,
    heart_rate: FloatArray,
    not_alert: FloatArray,
    temperature: FloatArray,
) -> IntArray:
    """Returns the NEWS2 total of each reading (vectorized; NaN marks missing).

    ``on_oxygen`` and ``not_alert`` are 1.0 for true, 0.0 for false.
    """
    rr = _whole(np.asarray(respiratory_rate, dtype=np.float64))
    sat = _whole(np.asarray(spo2, dtype=np.float64))
    sbp = _whole(np.asarray(systolic_bp, dtype=np.float64))
    hr = _whole(np.asarray(heart_rate, dtype=np.float64))
    temp = temperature_tenths(np.asarray(temperature, dtype=np.float64))
    total = (
        _score(rr, [8, 11, 20, 24], [3, 1, 0, 2, 3])
        + _score(sat, [91, 93, 95], [3, 2, 1, 0])
        + _score(sbp, [90, 100, 110, 219], [3, 2, 1, 0, 3])
        + _score(hr, [40, 50, 90, 110, 130], [3, 1, 0, 1, 2, 3])
        + _score(temp, [350, 360, 380, 390], [3, 1, 0, 1, 2])
    )
    oxygen = np.nan_to_num(np.asarray(on_oxygen, dtype=np.float64), nan=0.0) > 0
    confused = np.nan_to_num(np.asarray(not_alert, dtype=np.float64), nan=0.0) > 0
    return total + 2 * oxygen.astype(np.int64) + 3 * confused.astype(np.int64)


def news2_total(vitals: Mapping[str, object]) -> int:
    """Returns the NEWS2 total of one reading's vitals (DESIGN.md JSON names).

    Missing items score 0. Only SpO2 scale 1 is implemented: the synthetic
    cohort has no hypercapnic patients, and the Go side scores scale 2.
    """

    def num(name: str) -> FloatArray:
        value = vitals.get(name)
        return np.array([np.nan if value is None else float(value)])  # type: ignore[arg-type]

    oxygen = vitals.get("on_oxygen")
    level = vitals.get("consciousness")
    total = news2_totals(
        num("respiratory_rate"),
        num("spo2"),
        np.array([np.nan if oxygen is None else float(bool(oxygen))]),
        num("systolic_bp"),
        num("heart_rate"),
        np.array([np.nan if level is None else float(level != "alert")]),
        num("temperature"),
    )
    return int(total[0])
