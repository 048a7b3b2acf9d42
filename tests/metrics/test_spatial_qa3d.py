"""Spatial QA metrics on metric (3-D) answers, worked by hand: units, the [0.5x, 2x] band,
median relative error, unparseable answers, and the constant / prior baselines."""

from __future__ import annotations

import pytest

from scalar.metrics.spatial_baselines import baseline_answer, fit_prior, score_baselines
from scalar.metrics.spatial_qa import SpatialQAMetrics, parse_metres, relative_error


def _m(qtype: str, value=None, unit: str | None = "m") -> dict:
    if value is None:
        return {"question_type": qtype, "answer_type": "qualitative"}
    return {"question_type": qtype, "answer_type": "quantitative", "value": value, "unit": unit}


def test_parse_metres_converts_units():
    assert parse_metres("45 cm") == pytest.approx(0.45)
    assert parse_metres("about 1.5 metres away") == pytest.approx(1.5)
    assert parse_metres("2 feet") == pytest.approx(0.6096)
    assert parse_metres("three meters") == pytest.approx(3.0)
    assert parse_metres("7") == 7.0  # no unit: metres
    assert parse_metres("5 minutes") == 5.0  # "m" of a longer word is no unit
    assert parse_metres("far away") is None
    assert relative_error(0.45, 0.5, metric=True) == pytest.approx(0.1)
    assert relative_error(0.45, 0.5) == pytest.approx(0.05)  # unitless: |v| floored at 1


def test_hand_worked_scores():
    preds = ["0.50 metres", "45 cm", "no idea", "9 metres", "yes", "the square", "3"]
    answers = ["1.00 metres", "0.50 metres", "2.00 metres", "4.00 metres", "no", "the square", "2"]
    metas = [_m("width_3d", 1.0), _m("width_3d", 0.5), _m("distance_3d", 2.0),
             _m("distance_3d", 4.0), _m("fits"), _m("closer_camera"),
             _m("count", 2, unit=None)]  # fmt: skip
    m = SpatialQAMetrics()
    m.update(preds, answers, metas)
    out = m.compute()
    # relative errors: 0.5 (in band), 0.1 (in band), 1 (unparseable), 1.25 (9 > 2 x 4), 0.5
    assert out["quant/acc"] == pytest.approx(3 / 5)
    assert out["quant/mre"] == pytest.approx((0.5 + 0.1 + 1.0 + 1.25 + 0.5) / 5)
    assert out["quant/medre"] == pytest.approx(0.5)
    assert out["qual/acc"] == pytest.approx(1 / 2)
    assert out["acc"] == pytest.approx(4 / 7)
    assert out["unparseable"] == 1
    assert out["width_3d/acc"] == 1.0 and out["width_3d/medre"] == pytest.approx(0.3)
    assert out["distance_3d/acc"] == 0.0 and out["distance_3d/medre"] == pytest.approx(1.125)


def test_baselines_by_hand():
    train_metas = [_m("width_3d", 1.0), _m("width_3d", 3.0), _m("width_3d", 2.0),
                   _m("distance_3d", 8.0), _m("fits"), _m("fits"), _m("fits"),
                   _m("count", 3, unit=None)]  # fmt: skip
    train_answers = ["", "", "", "", "no", "no", "yes", "3"]
    fit = fit_prior(train_answers, train_metas)
    # prior: median width 2 m, distance 8 m, "no" for fits; constant: median of all metric
    # values (1, 3, 2, 8 -> 2.5 m), "yes", and the median count
    assert fit["prior"] == {"fits": "no", "width_3d": "2.00 metres",
                            "distance_3d": "8.00 metres", "count": "3"}  # fmt: skip
    assert fit["constant"] == {"qualitative": "yes", "m": "2.50 metres", "unitless": "3"}
    assert baseline_answer(fit, _m("height_3d", 1.0), "prior") == "0"  # unseen type
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_answer(fit, _m("fits"), "oracle")
    metas = [_m("width_3d", 1.5), _m("distance_3d", 2.0), _m("fits"), _m("fits")]
    answers = ["1.50 metres", "2.00 metres", "no", "yes"]
    got = score_baselines(fit, answers, metas)
    # constant: 2.5 vs 1.5 (in band), 2.5 vs 2 (in band); "yes" right once
    assert got["constant"]["quant/acc"] == 1.0 and got["constant"]["qual/acc"] == 0.5
    assert got["constant"]["quant/medre"] == pytest.approx((2 / 3 + 0.25) / 2)
    # prior: 2 vs 1.5 (in band), 8 vs 2 (out); "no" right once
    assert got["prior"]["quant/acc"] == 0.5 and got["prior"]["qual/acc"] == 0.5
    assert got["prior"]["quant/medre"] == pytest.approx((1 / 3 + 3.0) / 2)
