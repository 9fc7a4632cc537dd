"""Linked sweeps (``zip``): options of different plugins that move together, not as a product."""

from __future__ import annotations

import pytest

from vladv.errors import OptionError
from vladv.grid import GridSpec, expand, load_experiment_file, merge

DOMAINS = ["real", "generated", "mixed"]
LINK = ("backbone.clip.pretrain_data", "dataset.synthetic-aerial.train_domain")


def _grid(**kw):
    options = {
        "backbone": {"clip.pretrain_data": DOMAINS},
        "dataset": {"synthetic-aerial.train_domain": DOMAINS},
    }
    return GridSpec(defenses=("none",), attacks=("pgd",), options=options, **kw)


def test_zip_pairs_the_sweeps_instead_of_crossing_them():
    crossed = expand(_grid())
    linked = expand(_grid(zip=(LINK,)))
    assert len(crossed) == 9 and len(linked) == 3
    pairs = [
        (dict(k.backbone_options)["pretrain_data"], dict(k.dataset_options)["train_domain"])
        for k, _ in linked
    ]
    assert pairs == [(d, d) for d in DOMAINS]


@pytest.mark.parametrize(
    "zip_, match",
    [
        ((("backbone.clip.pretrain_data", "dataset.synthetic-aerial.seed"),), "swept option"),
        ((("backbone.clip.pretrain_data",),), "two or more"),
        ((("nonsense", "dataset.synthetic-aerial.train_domain"),), "swept option"),
    ],
)
def test_bad_zip_groups_are_one_line_errors(zip_, match):
    with pytest.raises(OptionError, match=match):
        _grid(zip=zip_)


def test_zip_of_unequal_lengths_is_refused():
    options = {
        "backbone": {"clip.pretrain_data": DOMAINS},
        "dataset": {"synthetic-aerial.train_domain": DOMAINS[:2]},
    }
    with pytest.raises(OptionError, match="different lengths"):
        GridSpec(options=options, zip=(LINK,))


def test_zip_from_a_toml_file_and_an_axis_override(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(
        '[experiment]\nattacks = ["pgd"]\nzip = [["backbone.clip.pretrain_data", '
        '"dataset.synthetic-aerial.train_domain"]]\n[options.backbone]\n'
        '"clip.pretrain_data" = ["real", "generated"]\n[options.dataset]\n'
        '"synthetic-aerial.train_domain" = ["real", "generated"]\n'
    )
    grid, _ = load_experiment_file(path)
    assert grid.zip == (LINK,) and len(expand(grid)) == 2
    assert grid.to_dict()["zip"] == [list(LINK)]
    other = merge(grid, backbones=["hf"])  # the linked backbone left the run: unlinked, no error
    assert other.zip == ()
