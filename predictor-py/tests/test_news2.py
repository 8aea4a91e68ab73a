"""NEWS2 spot checks: both sides of every chart boundary, rounding, partial sets."""

from __future__ import annotations

import pytest

from predictor.news2 import news2_total


@pytest.mark.parametrize(
    ("name", "value", "points"),
    [
        ("respiratory_rate", 8, 3),
        ("respiratory_rate", 9, 1),
        ("respiratory_rate", 11, 1),
        ("respiratory_rate", 12, 0),
        ("respiratory_rate", 20, 0),
        ("respiratory_rate", 21, 2),
        ("respiratory_rate", 24, 2),
        ("respiratory_rate", 25, 3),
        ("spo2", 91, 3),
        ("spo2", 92, 2),
        ("spo2", 93, 2),
        ("spo2", 94, 1),
        ("spo2", 95, 1),
        ("spo2", 96, 0),
        ("systolic_bp", 90, 3),
        ("systolic_bp", 91, 2),
        ("systolic_bp", 100, 2),
        ("systolic_bp", 101, 1),
        ("systolic_bp", 110, 1),
        ("systolic_bp", 111, 0),
        ("systolic_bp", 219, 0),
        ("systolic_bp", 220, 3),
        ("heart_rate", 40, 3),
        ("heart_rate", 41, 1),
        ("heart_rate", 50, 1),
        ("heart_rate", 51, 0),
        ("heart_rate", 90, 0),
        ("heart_rate", 91, 1),
        ("heart_rate", 110, 1),
        ("heart_rate", 111, 2),
        ("heart_rate", 130, 2),
        ("heart_rate", 131, 3),
        ("temperature", 35.0, 3),
        ("temperature", 35.1, 1),
        ("temperature", 36.0, 1),
        ("temperature", 36.1, 0),
        ("temperature", 38.0, 0),
        ("temperature", 38.1, 1),
        ("temperature", 39.0, 1),
        ("temperature", 39.1, 2),
        # Half-up on the written decimal, although 38.05 is 38.04999... in binary.
        ("temperature", 38.05, 1),
        ("temperature", 38.04, 0),
        ("temperature", 35.05, 1),
        ("temperature", 35.04, 3),
        ("consciousness", "alert", 0),
        ("consciousness", "new_confusion", 3),
        ("consciousness", "voice", 3),
        ("consciousness", "pain", 3),
        ("consciousness", "unresponsive", 3),
        ("on_oxygen", False, 0),
        ("on_oxygen", True, 2),
    ],
)
def test_single_item(name: str, value: object, points: int) -> None:
    assert news2_total({name: value}) == points


def test_design_example_scores_zero() -> None:
    vitals = {
        "respiratory_rate": 18,
        "spo2": 96,
        "spo2_scale": 1,
        "on_oxygen": False,
        "systolic_bp": 118,
        "diastolic_bp": 76,
        "heart_rate": 88,
        "consciousness": "alert",
        "temperature": 37.2,
    }
    assert news2_total(vitals) == 0


def test_sick_patient_sums_items() -> None:
    vitals = {
        "respiratory_rate": 26,  # 3
        "spo2": 93,  # 2
        "on_oxygen": True,  # 2
        "systolic_bp": 95,  # 2
        "heart_rate": 118,  # 2
        "consciousness": "voice",  # 3
        "temperature": 39.4,  # 2
    }
    assert news2_total(vitals) == 16


def test_missing_items_give_a_partial_total() -> None:
    assert news2_total({"heart_rate": 120}) == 2
    assert news2_total({}) == 0
