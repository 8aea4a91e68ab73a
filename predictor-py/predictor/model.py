"""The risk model: logistic regression on hinge transforms of the features.

Why this model (restated in the model card):

- **Exact explanations.** The logit is ``intercept + sum_j coef_j * z_j`` with
  ``z_j`` the standardized transform ``(t_j(x) - mean_j) / scale_j``; an input's
  contribution is the sum of its transforms' terms, so contributions add up
  exactly to the logit minus the intercept (the average training patient).
- **Monotone by construction.** Every transform points in its clinically bad
  direction (RR above 20, SpO2 below 96, a rising heart rate, ...) and every
  coefficient is kept at or above zero, so a worse vital never lowers the risk.
  Training fits under that constraint with an active set: a term fitted
  negative (collinear with others, e.g. NEWS2, or without signal in the
  cohort) is dropped and the rest refitted, and a dropped term is re-admitted
  when the loss gradient says it would help (the KKT conditions); then every
  coefficient is checked and training fails loudly if one is negative.
- **Calibrated by its loss.** Unweighted log-loss gives probabilities, not
  just a ranking; the hold-out calibration table checks it.
- **Fast.** Inference is a few vectorized numpy operations on the whole batch.
- **A safe artifact.** The model is plain JSON (no pickle: loading it cannot
  execute code), reviewable, and identified by the hash of its bytes.

Missing features are imputed with the training split's medians.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from predictor.features import FEATURE_NAMES

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ARTIFACT_FORMAT = "vigil-risk-lr/1"
DEFAULT_MAX_CONTRIBUTIONS = 5
# Far beyond any vital, 24 h change or per-hour slope of a validated reading.
MAX_ABS_FEATURE = 1e6
# Inputs that are 0/1 flags, and the age band's codes 0-3 (FEATURES.md).
FLAG_INPUTS = ("not_alert", "on_oxygen")
BAND_INPUTS = ("age_band",)
# Inverse L2 strength on standardized transforms: mild, the cohort is large.
REGULARIZATION_C = 1.0
SIGNIFICANT_DIGITS = 12
MAX_ACTIVE_SET_ROUNDS = 50
KKT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Transform:
    """One model term: a function of one input feature.

    ``kind`` is ``above`` (max(0, x - knot)), ``below`` (max(0, knot - x)) or
    ``identity`` (x; its bad direction is up).
    """

    name: str
    input: str
    kind: str
    knot: float = 0.0


def _trend(vital: str, short: str, bad: str) -> list[Transform]:
    """The bad-direction part of a vital's 24 h delta and slope."""
    word = "rise" if bad == "above" else "fall"
    return [
        Transform(f"{short}_delta_{word}", f"{vital}_delta_24h", bad),
        Transform(f"{short}_slope_{word}", f"{vital}_slope_24h", bad),
    ]


TRANSFORMS: tuple[Transform, ...] = (
    Transform("rr_high", "respiratory_rate", "above", 20.0),
    Transform("rr_low", "respiratory_rate", "below", 12.0),
    *_trend("respiratory_rate", "rr", "above"),
    Transform("spo2_low", "spo2", "below", 96.0),
    *_trend("spo2", "spo2", "below"),
    Transform("sbp_low", "systolic_bp", "below", 110.0),
    Transform("sbp_high", "systolic_bp", "above", 180.0),
    *_trend("systolic_bp", "sbp", "below"),
    Transform("hr_high", "heart_rate", "above", 90.0),
    Transform("hr_low", "heart_rate", "below", 50.0),
    *_trend("heart_rate", "hr", "above"),
    Transform("temp_high", "temperature", "above", 38.0),
    Transform("temp_low", "temperature", "below", 36.0),
    *_trend("temperature", "temp", "above"),
    Transform("not_alert", "not_alert", "identity"),
    Transform("on_oxygen", "on_oxygen", "identity"),
    Transform("news2_total", "news2_total", "identity"),
    Transform("age_band", "age_band", "identity"),
)


class FeatureError(ValueError):
    """A request's features cannot be scored (unknown name, non-finite value)."""

    def __init__(self, row: int, feature: str, problem: str) -> None:
        super().__init__(f"feature {feature!r} {problem}")
        self.row = row
        self.feature = feature


class Contribution(NamedTuple):
    """How much one input pushed one prediction's logit up (a tuple: cheap to make)."""

    feature: str
    value: float
    logit: float
    imputed: bool


def _round(x: float) -> float:
    """Rounds to SIGNIFICANT_DIGITS digits.

    So that the artifact's bytes do not depend on the last bits of
    floating-point summation order.
    """
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def _apply(x: FloatArray, kind: npt.NDArray[np.str_], knot: FloatArray) -> FloatArray:
    """Applies each column's transform to the matching column of ``x``."""
    above = np.maximum(0.0, x - knot)
    below = np.maximum(0.0, knot - x)
    return np.where(kind == "above", above, np.where(kind == "below", below, x))


def fit(x: FloatArray, y: npt.NDArray[np.integer[Any]]) -> dict[str, Any]:
    """Fits the model on a feature matrix (columns: FEATURE_NAMES, NaN missing).

    Returns the artifact's core (everything inference needs), with floats
    rounded to SIGNIFICANT_DIGITS; the caller adds training metadata.

    Raises:
        RuntimeError: a coefficient is negative after the sign-constrained fit.
    """
    # Imported here: the server only loads artifacts, and scikit-learn's
    # import would cost it most of a second at startup.
    from sklearn.linear_model import LogisticRegression

    medians = np.nanmedian(x, axis=0)
    filled = np.where(np.isnan(x), medians, x)
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    inputs = np.array([col[t.input] for t in TRANSFORMS])
    kinds = np.array([t.kind for t in TRANSFORMS])
    knots = np.array([t.knot for t in TRANSFORMS])
    t = _apply(filled[:, inputs], kinds, knots)
    mean = t.mean(axis=0)
    scale = t.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (t - mean) / scale

    # Active-set fit of the sign constraint (every coefficient >= 0): drop the
    # terms fitted negative and refit; re-admit a dropped term whose gradient
    # at zero says the loss would fall if it rose (KKT), until neither happens.
    active = list(range(len(TRANSFORMS)))
    for _ in range(MAX_ACTIVE_SET_ROUNDS):
        lr = LogisticRegression(C=REGULARIZATION_C, solver="lbfgs", max_iter=5000, tol=1e-8)
        lr.fit(z[:, active], y)
        coef = lr.coef_[0]
        if np.any(coef < 0):
            active = [j for j, c in zip(active, coef, strict=True) if c >= 0]
            continue
        inactive = [j for j in range(len(TRANSFORMS)) if j not in active]
        if not inactive:
            break
        residual = lr.predict_proba(z[:, active])[:, 1] - y
        gradient = z[:, inactive].T @ residual / len(y)
        best = int(np.argmin(gradient))
        if gradient[best] >= -KKT_TOLERANCE:
            break
        active = sorted([*active, inactive[best]])
    else:
        raise RuntimeError("the sign-constrained fit did not converge")
    dropped = [TRANSFORMS[j].name for j in range(len(TRANSFORMS)) if j not in active]
    full = np.zeros(len(TRANSFORMS))
    full[active] = coef
    if np.any(full < 0):
        raise RuntimeError("a bad-direction coefficient is negative: the model is not monotone")

    return {
        "format": ARTIFACT_FORMAT,
        "inputs": [
            {"name": name, "median": _round(float(medians[i]))}
            for i, name in enumerate(FEATURE_NAMES)
        ],
        "transforms": [
            {
                "name": tr.name,
                "input": tr.input,
                "kind": tr.kind,
                "knot": tr.knot,
                "mean": _round(float(mean[j])),
                "scale": _round(float(scale[j])),
                "coef": _round(float(full[j])),
            }
            for j, tr in enumerate(TRANSFORMS)
        ],
        "intercept": _round(float(lr.intercept_[0])),
        "dropped_transforms": dropped,
    }


def artifact_bytes(artifact: Mapping[str, Any]) -> bytes:
    """Serializes an artifact deterministically (sorted keys, fixed layout)."""
    return (json.dumps(artifact, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def version_of(data: bytes) -> str:
    """The model version: ``lr-`` and the first 12 hex digits of the bytes' SHA-256."""
    return "lr-" + hashlib.sha256(data).hexdigest()[:12]


class RiskModel:
    """A loaded model artifact; thread-safe (it is never mutated)."""

    def __init__(self, artifact: Mapping[str, Any], version: str) -> None:
        if artifact.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"unsupported model format {artifact.get('format')!r}")
        self.version = version
        self.inputs: tuple[str, ...] = tuple(i["name"] for i in artifact["inputs"])
        self._index = {name: i for i, name in enumerate(self.inputs)}
        self._flag_cols = np.array([self._index[n] for n in FLAG_INPUTS if n in self._index])
        self._band_cols = np.array([self._index[n] for n in BAND_INPUTS if n in self._index])
        self._medians = np.array([float(i["median"]) for i in artifact["inputs"]])
        tr = artifact["transforms"]
        self._cols = np.array([self._index[t["input"]] for t in tr])
        self._kinds = np.array([t["kind"] for t in tr])
        self._knots = np.array([float(t["knot"]) for t in tr])
        self._mean = np.array([float(t["mean"]) for t in tr])
        self._scale = np.array([float(t["scale"]) for t in tr])
        self._coef = np.array([float(t["coef"]) for t in tr])
        self._intercept = float(artifact["intercept"])
        # membership[j, k] = 1 when transform j belongs to input k.
        self._membership = np.zeros((len(tr), len(self.inputs)))
        self._membership[np.arange(len(tr)), self._cols] = 1.0

    @classmethod
    def load(cls, path: Path) -> RiskModel:
        """Loads an artifact file; its version is the hash of its bytes."""
        data = path.read_bytes()
        return cls(json.loads(data), version_of(data))

    def matrix(self, requests: Sequence[Mapping[str, float]]) -> FloatArray:
        """Builds the batch matrix (NaN: missing) from feature maps.

        Raises:
            FeatureError: a name the model does not know (a Go/Python drift
                must fail loudly, not be ignored) or a non-finite value.
        """
        index = self._index
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for i, features in enumerate(requests):
            names = list(features.keys())
            try:
                cols.extend([index[name] for name in names])
            except KeyError:
                unknown = next(name for name in names if name not in index)
                raise FeatureError(i, unknown, "is unknown") from None
            vals.extend([features[name] for name in names])
            rows.extend([i] * len(names))
        values = np.array(vals, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            k = int(np.argmin(finite))
            raise FeatureError(rows[k], self.inputs[cols[k]], "is not a finite number")
        col = np.array(cols, dtype=np.intp)
        # Vigil sends validated readings, so a value outside these bounds is
        # a bug on its side; refused, it cannot overflow the logit into NaN.
        bad = np.abs(values) > MAX_ABS_FEATURE
        bad |= np.isin(col, self._flag_cols) & ~np.isin(values, (0.0, 1.0))
        bad |= np.isin(col, self._band_cols) & ~np.isin(values, (0.0, 1.0, 2.0, 3.0))
        if bad.any():
            k = int(np.argmax(bad))
            raise FeatureError(rows[k], self.inputs[cols[k]], "is out of range")
        x = np.full((len(requests), len(self.inputs)), np.nan)
        x[np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp)] = values
        return x

    def score(self, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray]:
        """Scores a batch matrix.

        Returns:
            probabilities (n), per-input logit contributions (n x inputs),
            the input values as used (imputed where missing), and the
            imputed mask.
        """
        missing = np.isnan(x)
        used = np.where(missing, self._medians, x)
        t = _apply(used[:, self._cols], self._kinds, self._knots)
        terms = (t - self._mean) / self._scale * self._coef
        contributions = terms @ self._membership
        logit = self._intercept + terms.sum(axis=1)
        # The logistic function, stably: 1 / (1 + e^-logit) = e^-log(1 + e^-logit).
        return np.exp(-np.logaddexp(0.0, -logit)), contributions, used, missing

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Probabilities only (evaluation)."""
        return self.score(x)[0]

    def explain(
        self,
        contributions: FloatArray,
        used: FloatArray,
        missing: BoolArray,
        max_contributions: int = DEFAULT_MAX_CONTRIBUTIONS,
    ) -> list[list[Contribution]]:
        """The inputs that pushed each prediction up, largest first, at most N."""
        if max_contributions <= 0 or contributions.size == 0:
            return [[] for _ in range(len(contributions))]
        k = min(max_contributions, contributions.shape[1])
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
        # Plain lists: indexing numpy scalars one by one is slow.
        logits = np.take_along_axis(contributions, order, axis=1).tolist()
        values = np.take_along_axis(used, order, axis=1).tolist()
        imputed = np.take_along_axis(missing, order, axis=1).tolist()
        names = self.inputs
        return [
            [
                Contribution(names[j], value, logit, was_imputed)
                for j, logit, value, was_imputed in zip(o, c, v, m, strict=True)
                if logit > 0
            ]
            for o, c, v, m in zip(order.tolist(), logits, values, imputed, strict=True)
        ]
