"""Reduced precision: bf16 autocast on the CPU stays close to fp32; budgets stay exact."""

import pytest

from vladv.errors import OptionError
from vladv.experiment import run

TOLERANCE = 6.25  # percentage points on R@1 over 64 images = 4 rank flips


def test_bf16_on_cpu_matches_fp32_within_tolerance(tiny):
    kw = dict(
        backbone="tiny",
        dataset="tiny",
        attack="pgd",
        progress=False,
        output=False,
        dataset_options={"n_images": 64},
        attack_options={"steps": "3"},
    )
    fp32 = run(**kw, precision="fp32")[0]
    bf16 = run(**kw, precision="bf16")[0]
    assert fp32["run_id"] != bf16["run_id"] and bf16["config"]["precision"] == "bf16"
    for block in ("clean", "adversarial"):
        for key in ("tr_r1", "ir_r1"):
            assert abs(fp32["metrics"][block][key] - bf16["metrics"][block][key]) <= TOLERANCE
    # the perturbation and its projection stay in fp32
    assert bf16["metrics"]["budget"]["max_linf"] <= 2 / 255 + 1e-6
    assert (
        bf16["metrics"]["budget"]["min_pixel"] >= 0 and bf16["metrics"]["budget"]["max_pixel"] <= 1
    )


def test_unknown_precision_is_a_user_error(tiny):
    with pytest.raises(OptionError, match="precision must be fp32, bf16 or fp16"):
        run(output=False, backbone="tiny", dataset="tiny", precision="int8", progress=False)
