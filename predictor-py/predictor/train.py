"""Trains the model on the synthetic cohort: ``python -m predictor.train --out model``.

Generates the cohort, splits it by patient (a patient's readings are strongly
correlated, so a split by reading would leak), fits on the training split,
evaluates the model and NEWS2 alone on the hold-out, and writes
``<out>/model.json`` and the model card. Deterministic: the same seed gives
the same artifact bytes, hence the same model version, and the same card.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from predictor import card, evaluate
from predictor.cohort import CohortSpec, generate
from predictor.features import FEATURE_NAMES
from predictor.model import REGULARIZATION_C, RiskModel, artifact_bytes, fit, version_of

HOLDOUT_FRACTION = 0.3
ALERT_THRESHOLD = 0.5


@dataclass(frozen=True)
class TrainingResult:
    """What training produced: the artifact (bytes and dict) and its evaluation."""

    artifact: dict[str, Any]
    data: bytes
    version: str
    spec: CohortSpec
    sizes: dict[str, Any]
    model_metrics: evaluate.Metrics
    news2_metrics: evaluate.Metrics


def train(spec: CohortSpec) -> TrainingResult:
    """Generates the cohort, fits and evaluates the model."""
    cohort = generate(spec)
    x = cohort.features()
    y = cohort.label.astype(np.int64)
    rng = np.random.default_rng(spec.seed + 1)
    n_holdout = round(spec.n_patients * HOLDOUT_FRACTION)
    holdout = rng.permutation(spec.n_patients)[:n_holdout]
    test = np.isin(cohort.patient, holdout)
    train_rows, test_rows = ~test, test

    core = fit(x[train_rows], y[train_rows])
    model = RiskModel(core, "unversioned")
    p = model.predict_proba(x[test_rows])
    y_test = y[test_rows]
    model_metrics = evaluate.metrics(
        p,
        y_test,
        [
            (f"p >= {ALERT_THRESHOLD} (default alert)", p >= ALERT_THRESHOLD),
            ("p >= 0.2", p >= 0.2),
            ("p >= 0.1", p >= 0.1),
        ],
    )
    news2_col = FEATURE_NAMES.index("news2_total")
    news2_metrics = evaluate.news2_baseline(
        x[train_rows, news2_col], y[train_rows], x[test_rows, news2_col], y_test
    )

    sizes = {
        "patients": spec.n_patients,
        "patients_train": spec.n_patients - n_holdout,
        "patients_holdout": n_holdout,
        "readings": int(cohort.n_readings),
        "readings_train": int(train_rows.sum()),
        "readings_holdout": int(test_rows.sum()),
        "positive_readings_train": int(y[train_rows].sum()),
        "positive_readings_holdout": int(y_test.sum()),
        "reading_event_rate": round(float(y.mean()), 6),
        "patients_with_sae": int(cohort.deteriorates.sum()),
        "patient_sae_rate": round(float(cohort.deteriorates.mean()), 6),
    }
    spec_json = dataclasses.asdict(spec)
    artifact = {
        **core,
        "training": {
            "cohort": "synthetic (predictor.cohort); not clinical data",
            "cohort_spec": spec_json,
            "holdout_fraction": HOLDOUT_FRACTION,
            "split": "by patient",
            "label": "SAE within 24 h after measured_at",
            "regularization_C": REGULARIZATION_C,
            "sizes": sizes,
            "holdout_metrics": {
                "model": model_metrics.to_json(),
                "news2": news2_metrics.to_json(),
            },
        },
    }
    data = artifact_bytes(artifact)
    return TrainingResult(
        artifact, data, version_of(data), spec, sizes, model_metrics, news2_metrics
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("model"), help="artifact directory")
    parser.add_argument(
        "--card", type=Path, default=Path("MODEL_CARD.md"), help="model card to write ('' skips)"
    )
    parser.add_argument("--patients", type=int, default=CohortSpec.n_patients)
    parser.add_argument("--seed", type=int, default=CohortSpec.seed)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    result = train(CohortSpec(n_patients=args.patients, seed=args.seed))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.json").write_bytes(result.data)
    if str(args.card):
        args.card.write_text(card.render(result), encoding="utf-8")
    elapsed = time.perf_counter() - started

    m, n = result.model_metrics, result.news2_metrics
    print(f"trained {result.version} in {elapsed:.1f}s -> {args.out / 'model.json'}")
    print(
        f"hold-out: readings {result.sizes['readings_holdout']}, "
        f"event rate {result.sizes['reading_event_rate']:.4f}; "
        f"AUROC model {m.auroc:.3f} vs NEWS2 {n.auroc:.3f}; "
        f"AP {m.average_precision:.3f} vs {n.average_precision:.3f}; "
        f"Brier {m.brier:.5f} vs {n.brier:.5f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
