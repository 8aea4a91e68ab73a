"""A deterministic synthetic cohort to train and evaluate the model on.

There is no real patient data here and the model is not clinically validated:
the cohort only has to be rich enough that the model, its features and its
evaluation are exercised honestly. Every assumption is a number in
:class:`CohortSpec` and is restated in the model card.

Generative assumptions (per patient, numpy ``default_rng(seed)``, drawn in a
fixed order so the same seed gives the same cohort):

- **Age band** (registry): <40, 40-64, 65-79, 80+ with probabilities
  ``age_probs``; the registry lacks the band for ``age_missing`` of patients.
- **Baseline vitals**, normal with between-patient variation: respiratory rate
  N(15.5, 1.8)/min, SpO2 N(97.6 - 0.5*band, 1.0) % (at most 99.5), systolic BP
  N(118 + 5*band, 13) mmHg, heart rate N(74, 9)/min, temperature
  N(36.7, 0.25) °C. ``chronic_prob`` of patients have a benign chronic
  abnormality (SpO2 93-95 % with RR 19-22, or resting HR 92-105, or SBP
  98-108) that keeps NEWS2 raised without any added risk; ``home_oxygen_prob``
  are on oxygen throughout.
- **Schedule**: ``days`` days of follow-up, 3 (08, 14, 20 h) or 4 (07, 12, 17,
  22 h) readings a day (half each), each time jittered by N(0, 45 min), each
  slot skipped with probability ``skip_prob``.
- **Deterioration** for a minority: probability ``deteriorate_probs[band]``
  (older is likelier). The SAE happens at U(30, days*24 - 6) h after the start;
  the trajectory starts U(12, 72) h before it and progresses as
  f = ((t - onset)/duration)^g with g ~ U(1, 2.5) (slow, then faster): RR rises
  by U(6, 14), HR by U(15, 40); with probability 0.6 temperature rises by
  U(0.8, 2.3) °C, 0.6 SpO2 falls by U(3, 10) %, 0.5 systolic BP falls by
  U(15, 45) mmHg. Half of them become confused (not alert) late (f > U(0.6,
  0.9)); 60 % are started on oxygen late (f > U(0.5, 0.85)), which wins back
  60 % of the SpO2 fall.
- **Benign confounders** for everyone: single-reading transients (fever spike
  +U(1, 2) °C with HR +U(8, 20) at 3 %, exertion HR +U(20, 40) with RR +U(2, 6)
  at 4 %, SpO2 misread -U(3, 7) at 2 %, orthostatic SBP -U(15, 30) at 2 %), and
  for ``episode_prob`` of non-deteriorating patients a 12-48 h benign febrile
  episode (a half-sine bump: temperature +U(0.8, 1.8), HR +U(8, 20), RR
  +U(2, 5)). NEWS2 alone is therefore imperfect and trends carry information.
- **Measurement noise**: N(0, sd) with sd RR 1.2, SpO2 0.8, SBP 7, HR 5,
  temperature 0.15; integers rounded, temperature to 0.1, SpO2 at most 100.
- **Missing values**, each independently: RR 8 %, SpO2 5 %, BP 7 %, HR 4 %,
  temperature 20 %, consciousness 10 %, on_oxygen 10 % (a reading always keeps
  at least its heart rate).
- **Label**: 1 when the SAE occurs within the 24 h after the reading's
  measured_at (0 < event - t <= 24 h). Readings at or after the SAE are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from predictor.features import FEATURE_NAMES, Reading, window_features
from predictor.news2 import news2_totals

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Synthetic follow-up starts here; only differences of times matter.
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
NUMERIC_VITALS: tuple[str, ...] = (
    "respiratory_rate",
    "spo2",
    "systolic_bp",
    "diastolic_bp",
    "heart_rate",
    "temperature",
)


@dataclass(frozen=True)
class CohortSpec:
    """The generator's parameters (see the module docstring for their meaning)."""

    n_patients: int = 4000
    seed: int = 20261126
    days: int = 14
    age_probs: tuple[float, float, float, float] = (0.22, 0.40, 0.26, 0.12)
    age_missing: float = 0.05
    deteriorate_probs: tuple[float, float, float, float] = (0.04, 0.07, 0.12, 0.18)
    chronic_prob: float = 0.12
    home_oxygen_prob: float = 0.03
    episode_prob: float = 0.15
    skip_prob: float = 0.10
    missing: dict[str, float] = field(
        default_factory=lambda: {
            "respiratory_rate": 0.08,
            "spo2": 0.05,
            "blood_pressure": 0.07,
            "heart_rate": 0.04,
            "temperature": 0.20,
            "consciousness": 0.10,
            "on_oxygen": 0.10,
        }
    )


@dataclass(frozen=True)
class Cohort:
    """Readings of all patients, sorted by (patient, time), as flat arrays.

    NaN marks a missing value. ``not_alert`` and ``on_oxygen`` are 1.0/0.0.
    Per-patient arrays are indexed by patient number.
    """

    spec: CohortSpec
    patient: IntArray
    hours: FloatArray
    vitals: dict[str, FloatArray]
    not_alert: FloatArray
    on_oxygen: FloatArray
    label: npt.NDArray[np.int8]
    age_band: IntArray
    age_band_recorded: FloatArray
    deteriorates: npt.NDArray[np.bool_]
    event_hours: FloatArray

    @property
    def n_readings(self) -> int:
        """Number of readings in the cohort."""
        return len(self.hours)

    def news2(self) -> IntArray:
        """Each reading's NEWS2 total (partial when items are missing)."""
        v = self.vitals
        return news2_totals(
            v["respiratory_rate"],
            v["spo2"],
            self.on_oxygen,
            v["systolic_bp"],
            v["heart_rate"],
            self.not_alert,
            v["temperature"],
        )

    def features(self) -> FloatArray:
        """The feature matrix (columns: FEATURE_NAMES), one row per reading."""
        return window_features(
            self.patient,
            self.hours,
            self.vitals,
            self.not_alert,
            self.on_oxygen,
            self.news2().astype(np.float64),
            self.age_band_recorded[self.patient],
        )

    def readings_of(self, patient: int) -> list[Reading]:
        """One patient's readings in the form the reference features take."""
        rows = np.flatnonzero(self.patient == patient)
        out: list[Reading] = []
        for i in rows:
            vitals: dict[str, object] = {"spo2_scale": 1}
            for name in NUMERIC_VITALS:
                if not np.isnan(self.vitals[name][i]):
                    vitals[name] = float(self.vitals[name][i])
            if not np.isnan(self.not_alert[i]):
                vitals["consciousness"] = "new_confusion" if self.not_alert[i] else "alert"
            if not np.isnan(self.on_oxygen[i]):
                vitals["on_oxygen"] = bool(self.on_oxygen[i])
            out.append(Reading(EPOCH + timedelta(hours=float(self.hours[i])), vitals))
        return out


def _schedule(rng: np.random.Generator, spec: CohortSpec) -> FloatArray:
    """Reading times in hours: 3 or 4 a day, jittered, some skipped, no ties."""
    slots = [8.0, 14.0, 20.0] if rng.random() < 0.5 else [7.0, 12.0, 17.0, 22.0]
    nominal = (np.arange(spec.days)[:, None] * 24.0 + np.array(slots)[None, :]).ravel()
    times = nominal + rng.normal(0.0, 0.75, nominal.size)
    keep = rng.random(nominal.size) >= spec.skip_prob
    # Whole seconds, like device clocks; jitter never reorders slots 5 h apart.
    return np.round(np.sort(times[keep]) * 3600.0) / 3600.0


def _patient(
    rng: np.random.Generator, spec: CohortSpec, band: int, deteriorates: bool
) -> tuple[FloatArray, dict[str, FloatArray], FloatArray, FloatArray, float]:
    """Generates one patient's readings; returns times, vitals, flags and event time."""
    t = _schedule(rng, spec)
    n = t.size
    base = {
        "respiratory_rate": rng.normal(15.5, 1.8),
        "spo2": min(rng.normal(97.6 - 0.5 * band, 1.0), 99.5),
        "systolic_bp": rng.normal(118.0 + 5.0 * band, 13.0),
        "heart_rate": rng.normal(74.0, 9.0),
        "temperature": rng.normal(36.7, 0.25),
    }
    if rng.random() < spec.chronic_prob:
        kind = rng.integers(3)
        if kind == 0:
            base["spo2"] = rng.uniform(93.0, 95.0)
            base["respiratory_rate"] = rng.uniform(19.0, 22.0)
        elif kind == 1:
            base["heart_rate"] = rng.uniform(92.0, 105.0)
        else:
            base["systolic_bp"] = rng.uniform(98.0, 108.0)
    v = {name: np.full(n, value) for name, value in base.items()}
    confused = np.zeros(n, dtype=bool)
    oxygen = np.full(n, rng.random() < spec.home_oxygen_prob)

    event = np.nan
    if deteriorates:
        event = rng.uniform(30.0, spec.days * 24.0 - 6.0)
        duration = rng.uniform(12.0, 72.0)
        onset = event - duration
        gamma = rng.uniform(1.0, 2.5)
        raw = np.clip((t - onset) / duration, 0.0, 1.0)
        f = raw**gamma
        v["respiratory_rate"] += f * rng.uniform(6.0, 14.0)
        v["heart_rate"] += f * rng.uniform(15.0, 40.0)
        if rng.random() < 0.6:
            v["temperature"] += f * rng.uniform(0.8, 2.3)
        spo2_fall = f * rng.uniform(3.0, 10.0) if rng.random() < 0.6 else np.zeros(n)
        if rng.random() < 0.5:
            v["systolic_bp"] -= f * rng.uniform(15.0, 45.0)
        if rng.random() < 0.5:
            confused |= raw > rng.uniform(0.6, 0.9)
        if rng.random() < 0.6:
            started = raw > rng.uniform(0.5, 0.85)
            oxygen |= started
            spo2_fall = np.where(started, 0.4 * spo2_fall, spo2_fall)
        v["spo2"] -= spo2_fall
    elif rng.random() < spec.episode_prob:
        start = rng.uniform(0.0, spec.days * 24.0)
        length = rng.uniform(12.0, 48.0)
        bump = np.where(
            (t >= start) & (t <= start + length), np.sin(np.pi * (t - start) / length), 0.0
        )
        v["temperature"] += bump * rng.uniform(0.8, 1.8)
        v["heart_rate"] += bump * rng.uniform(8.0, 20.0)
        v["respiratory_rate"] += bump * rng.uniform(2.0, 5.0)

    # Benign single-reading transients, for everyone.
    fever = rng.random(n) < 0.03
    v["temperature"] += fever * rng.uniform(1.0, 2.0, n)
    v["heart_rate"] += fever * rng.uniform(8.0, 20.0, n)
    exertion = rng.random(n) < 0.04
    v["heart_rate"] += exertion * rng.uniform(20.0, 40.0, n)
    v["respiratory_rate"] += exertion * rng.uniform(2.0, 6.0, n)
    v["spo2"] -= (rng.random(n) < 0.02) * rng.uniform(3.0, 7.0, n)
    v["systolic_bp"] -= (rng.random(n) < 0.02) * rng.uniform(15.0, 30.0, n)

    noise = {
        "respiratory_rate": 1.2,
        "spo2": 0.8,
        "systolic_bp": 7.0,
        "heart_rate": 5.0,
        "temperature": 0.15,
    }
    for name, sd in noise.items():
        v[name] = v[name] + rng.normal(0.0, sd, n)
    v["diastolic_bp"] = v["systolic_bp"] * 0.62 + rng.normal(0.0, 5.0, n)

    out = {
        "respiratory_rate": np.clip(np.rint(v["respiratory_rate"]), 4, 60),
        "spo2": np.clip(np.rint(v["spo2"]), 50, 100),
        "systolic_bp": np.clip(np.rint(v["systolic_bp"]), 50, 250),
        "diastolic_bp": np.clip(np.rint(v["diastolic_bp"]), 25, 150),
        "heart_rate": np.clip(np.rint(v["heart_rate"]), 25, 220),
        "temperature": np.clip(np.round(v["temperature"], 1), 33.0, 42.5),
    }
    not_alert = confused.astype(np.float64)
    on_oxygen = oxygen.astype(np.float64)

    miss = spec.missing
    for name in ("respiratory_rate", "spo2", "heart_rate", "temperature"):
        out[name][rng.random(n) < miss[name]] = np.nan
    bp = rng.random(n) < miss["blood_pressure"]
    out["systolic_bp"][bp] = np.nan
    out["diastolic_bp"][bp] = np.nan
    not_alert[rng.random(n) < miss["consciousness"]] = np.nan
    on_oxygen[rng.random(n) < miss["on_oxygen"]] = np.nan
    empty = np.all([np.isnan(a) for a in (*out.values(), not_alert, on_oxygen)], axis=0)
    out["heart_rate"][empty] = np.clip(np.rint(v["heart_rate"][empty]), 25, 220)

    if deteriorates:
        keep = t < event
        t = t[keep]
        out = {name: a[keep] for name, a in out.items()}
        not_alert, on_oxygen = not_alert[keep], on_oxygen[keep]
    return t, out, not_alert, on_oxygen, float(event)


def generate(spec: CohortSpec | None = None) -> Cohort:
    """Generates the cohort described by ``spec`` (deterministic in its seed)."""
    spec = spec or CohortSpec()
    rng = np.random.default_rng(spec.seed)
    bands = rng.choice(4, size=spec.n_patients, p=np.array(spec.age_probs))
    recorded = np.where(rng.random(spec.n_patients) < spec.age_missing, np.nan, bands)
    deteriorates = rng.random(spec.n_patients) < np.array(spec.deteriorate_probs)[bands]

    hours: list[FloatArray] = []
    patients: list[IntArray] = []
    vitals: dict[str, list[FloatArray]] = {name: [] for name in NUMERIC_VITALS}
    flags: tuple[list[FloatArray], list[FloatArray]] = ([], [])
    events = np.full(spec.n_patients, np.nan)
    for p in range(spec.n_patients):
        t, v, not_alert, on_oxygen, event = _patient(rng, spec, int(bands[p]), deteriorates[p])
        hours.append(t)
        patients.append(np.full(t.size, p, dtype=np.int64))
        for name in NUMERIC_VITALS:
            vitals[name].append(v[name])
        flags[0].append(not_alert)
        flags[1].append(on_oxygen)
        events[p] = event

    patient = np.concatenate(patients)
    t_all = np.concatenate(hours)
    until_event = events[patient] - t_all
    label = ((until_event > 0) & (until_event <= 24.0)).astype(np.int8)
    return Cohort(
        spec=spec,
        patient=patient,
        hours=t_all,
        vitals={name: np.concatenate(parts) for name, parts in vitals.items()},
        not_alert=np.concatenate(flags[0]),
        on_oxygen=np.concatenate(flags[1]),
        label=label,
        age_band=bands.astype(np.int64),
        age_band_recorded=recorded.astype(np.float64),
        deteriorates=deteriorates,
        event_hours=events,
    )


__all__ = ["EPOCH", "FEATURE_NAMES", "Cohort", "CohortSpec", "generate"]
