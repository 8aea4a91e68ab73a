"""The synthetic cohort: deterministic, and its labels mean what they say."""

from __future__ import annotations

import numpy as np

from predictor.cohort import CohortSpec, generate


def test_same_seed_same_cohort() -> None:
    a = generate(CohortSpec(n_patients=80, seed=9))
    b = generate(CohortSpec(n_patients=80, seed=9))
    np.testing.assert_array_equal(a.hours, b.hours)
    for name in a.vitals:
        np.testing.assert_array_equal(a.vitals[name], b.vitals[name])
    np.testing.assert_array_equal(a.label, b.label)


def test_shape_of_the_cohort() -> None:
    c = generate(CohortSpec(n_patients=1500, seed=2))
    assert 0.06 <= c.deteriorates.mean() <= 0.12
    # Older patients deteriorate more often.
    rate = [c.deteriorates[c.age_band == b].mean() for b in range(4)]
    assert rate[0] < rate[3]
    per_patient = np.bincount(c.patient) / c.spec.days
    assert 2.5 <= np.median(per_patient) <= 4.0
    # Temperature is missing more often than the others.
    missing = {name: np.isnan(v).mean() for name, v in c.vitals.items()}
    assert missing["temperature"] == max(missing.values())
    assert 0.15 < missing["temperature"] < 0.25
    assert np.isnan(c.not_alert).mean() > 0.05
    # Every reading has at least one vital.
    present = np.zeros(c.n_readings, dtype=bool)
    for v in (*c.vitals.values(), c.not_alert, c.on_oxygen):
        present |= ~np.isnan(v)
    assert present.all()


def test_labels_are_sae_within_24h_and_no_reading_follows_the_event() -> None:
    c = generate(CohortSpec(n_patients=800, seed=4))
    event = c.event_hours[c.patient]
    det = c.deteriorates[c.patient]
    assert np.all(c.hours[det] < event[det])
    until = event - c.hours
    np.testing.assert_array_equal(c.label == 1, det & (until <= 24.0))
    assert c.label[~det].sum() == 0
    # Benign abnormal readings exist: NEWS2 alone cannot be perfect.
    assert (c.news2()[c.label == 0] >= 5).sum() > 0
