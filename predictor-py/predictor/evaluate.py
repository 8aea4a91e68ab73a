"""Hold-out metrics for a probability model, and the NEWS2-alone baseline.

Event rates are low, so AUROC alone flatters a model (CLINICAL.md): precision,
recall, average precision, the Brier score and a calibration table are
reported beside it, for the model and for NEWS2 on the same hold-out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

FloatArray = npt.NDArray[np.float64]
Labels = npt.NDArray[np.integer[Any]]


@dataclass(frozen=True)
class ThresholdRow:
    """Alerting at ``rule``: how many readings it flags and how well."""

    rule: str
    flagged: float
    precision: float
    recall: float


@dataclass(frozen=True)
class CalibrationRow:
    """One equal-count bin of predictions: mean predicted vs observed rate."""

    n: int
    mean_predicted: float
    observed: float


@dataclass(frozen=True)
class Metrics:
    """One scorer's hold-out metrics."""

    auroc: float
    average_precision: float
    brier: float
    thresholds: list[ThresholdRow]
    calibration: list[CalibrationRow]

    def to_json(self) -> dict[str, Any]:
        """Plain dict with floats rounded for a stable, readable artifact."""
        return _rounded(asdict(self))


def _rounded(value: Any) -> Any:  # noqa: ANN401 - JSON-shaped data
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def threshold_row(rule: str, flagged: npt.NDArray[np.bool_], y: Labels) -> ThresholdRow:
    """Precision and recall of flagging the readings in ``flagged``."""
    hits = int(np.sum(flagged & (y == 1)))
    n_flagged = int(flagged.sum())
    positives = int(y.sum())
    return ThresholdRow(
        rule=rule,
        flagged=n_flagged / len(y),
        precision=hits / n_flagged if n_flagged else float("nan"),
        recall=hits / positives if positives else float("nan"),
    )


def calibration_table(p: FloatArray, y: Labels, bins: int = 10) -> list[CalibrationRow]:
    """Deciles of predicted risk (equal counts, ties kept in order)."""
    order = np.argsort(p, kind="stable")
    rows = []
    for part in np.array_split(order, bins):
        rows.append(CalibrationRow(len(part), float(p[part].mean()), float(y[part].mean())))
    return rows


def metrics(p: FloatArray, y: Labels, rules: list[tuple[str, npt.NDArray[np.bool_]]]) -> Metrics:
    """Computes the metrics of probabilities ``p`` against labels ``y``.

    ``rules`` are the alerting rules to report precision and recall for.
    """
    return Metrics(
        auroc=float(roc_auc_score(y, p)),
        average_precision=float(average_precision_score(y, p)),
        brier=float(brier_score_loss(y, p)),
        thresholds=[threshold_row(name, flagged, y) for name, flagged in rules],
        calibration=calibration_table(p, y),
    )


def news2_baseline(
    train_total: FloatArray, train_y: Labels, test_total: FloatArray, test_y: Labels
) -> Metrics:
    """NEWS2 alone on the hold-out.

    AUROC and average precision rank by the raw total (a monotone map would
    not change them). Brier and calibration need probabilities, so a
    one-feature logistic regression is fitted on the training split.
    """
    lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    lr.fit(train_total.reshape(-1, 1), train_y)
    p = lr.predict_proba(test_total.reshape(-1, 1))[:, 1]
    rules = [
        ("NEWS2 >= 5 (medium)", test_total >= 5),
        ("NEWS2 >= 7 (high)", test_total >= 7),
        ("NEWS2-fitted p >= 0.5", p >= 0.5),
        ("NEWS2-fitted p >= 0.2", p >= 0.2),
    ]
    m = metrics(p, test_y, rules)
    return Metrics(
        auroc=float(roc_auc_score(test_y, test_total)),
        average_precision=float(average_precision_score(test_y, test_total)),
        brier=m.brier,
        thresholds=m.thresholds,
        calibration=m.calibration,
    )
