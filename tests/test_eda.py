"""EDA (docs/algorithms.md#eda): each operation, the driver, WordNet loading, caption pools."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import vladv
from vladv import pools as P
from vladv.errors import OptionError, VladvError
from vladv.kit import text as T
from vladv.options import resolve_options
from vladv.testing import tiny_dataset
from vladv_plugins import eda as E

WORDS = [f"w{c}" for c in "abcdefghijklmnopqrst"]
FAKE = {w: [f"s{w[1:]}", f"t{w[1:]}"] for w in WORDS}  # wa -> sa, ta
FAKE.update(red=["crimson", "ruby"], car=["auto mobile"])


def fake(word: str) -> list[str]:
    return list(FAKE.get(word, []))


@pytest.fixture(scope="session")
def wordnet():
    try:
        return E.load_wordnet()
    except VladvError:
        pytest.skip("WordNet not installed (apt-get install wordnet-base)")


# ----------------------------------------------------------------------------------------------
# Operations
# ----------------------------------------------------------------------------------------------
def test_clean_text_is_get_only_chars():
    assert E.clean_text("It’s a well-known\tfact, 42 times!\n") == "its a well known fact times"
    assert E.clean_text("  Hello ") == "hello"


@pytest.mark.parametrize("n", [1, 2, 5])
def test_sr_replaces_n_distinct_words(n):
    out = E.synonym_replacement(WORDS, n, random.Random(0), fake)
    changed = [(a, b) for a, b in zip(WORDS, out, strict=True) if a != b]
    assert len(changed) == n
    assert all(b in FAKE[a] for a, b in changed)


def test_sr_replaces_all_occurrences_and_skips_stop_words():
    words = "the red car near the red house".split()
    for seed in range(10):
        out = E.synonym_replacement(words, 1, random.Random(seed), fake)
        if out[1] != "red":  # red was chosen: both occurrences change to the same synonym
            assert out[1] == out[5] and out[1] in FAKE["red"]
            assert out[0] == out[4] == "the"
        else:  # car was chosen: its two-word synonym became two words
            assert out[2:4] == ["auto", "mobile"]


def test_ri_inserts_first_synonym_n_times():
    words = ["wb", "zzz", "qqq"]
    out = E.random_insertion(words, 2, random.Random(3), fake)
    assert len(out) == 5
    extra = list(out)
    for w in words:
        extra.remove(w)
    assert extra == ["sb", "sb"]  # synonyms[0] of the only word that has synonyms
    assert E.random_insertion(["zzz"], 1, random.Random(0), fake) == ["zzz"]  # 10 tries, none


def test_rs_swaps_two_positions_n_times():
    for seed in range(20):
        out = E.random_swap(WORDS, 1, random.Random(seed))
        assert sorted(out) == sorted(WORDS)
        assert sum(a != b for a, b in zip(WORDS, out, strict=True)) == 2
    out = E.random_swap(WORDS, 3, random.Random(1))
    assert sorted(out) == sorted(WORDS) and out != WORDS
    assert E.random_swap(["one"], 2, random.Random(0)) == ["one"]


def test_rd_probabilities_and_edge_cases():
    rng = random.Random(0)
    assert E.random_deletion(WORDS, 0.0, rng) == WORDS
    for seed in range(5):
        kept = E.random_deletion(WORDS, 1.0, random.Random(seed))
        assert len(kept) == 1 and kept[0] in WORDS
    assert E.random_deletion(["solo"], 1.0, rng) == ["solo"]
    kept = E.random_deletion(WORDS * 50, 0.5, random.Random(0))
    assert 400 < len(kept) < 600


def test_counts_follow_the_alphas():
    sentence = " ".join(WORDS)  # n = 20
    out = E.eda(
        sentence,
        alpha_sr=0.25,
        alpha_ri=0,
        alpha_rs=0,
        p_rd=0,
        num_aug=3,
        rng=random.Random(0),
        synonyms=fake,
    )
    for s in out[:-1]:
        assert sum(a != b for a, b in zip(WORDS, s.split(), strict=True)) == 5  # ⌊0.25·20⌋
    out = E.eda(
        sentence,
        alpha_sr=0,
        alpha_ri=0.15,
        alpha_rs=0,
        p_rd=0,
        num_aug=2,
        rng=random.Random(0),
        synonyms=fake,
    )
    assert all(len(s.split()) == 23 for s in out[:-1])  # ⌊0.15·20⌋ = 3 insertions
    out = E.eda(
        sentence,
        alpha_sr=0.001,
        alpha_ri=0,
        alpha_rs=0,
        p_rd=0,
        num_aug=1,
        rng=random.Random(0),
        synonyms=fake,
    )
    assert sum(a != b for a, b in zip(WORDS, out[0].split(), strict=True)) == 1  # max(1, 0)


def test_eda_driver_shape_and_original_last():
    s = "A red car, near the wc house!"
    out = E.eda(s, num_aug=9, rng=random.Random(0), synonyms=fake)
    assert len(out) == 10 and out[-1] == "a red car near the wc house"
    assert all(s2 == E.clean_text(s2) for s2 in out)
    # per op ⌊9/4⌋+1 = 3 candidates: only RD enabled → 3 augmented + original
    only_rd = E.eda(
        s,
        alpha_sr=0,
        alpha_ri=0,
        alpha_rs=0,
        p_rd=0.5,
        num_aug=9,
        rng=random.Random(0),
        synonyms=fake,
    )
    assert len(only_rd) == 4
    # num_aug < 1: each candidate kept with probability num_aug / #candidates
    sizes = [
        len(E.eda(s, num_aug=0.5, rng=random.Random(i), synonyms=fake)) - 1 for i in range(200)
    ]
    assert 0.3 < sum(sizes) / len(sizes) < 0.7
    assert E.eda("Hello!", num_aug=4, rng=random.Random(0), synonyms=fake)[-1] == "hello"
    assert E.eda("?!", rng=random.Random(0), synonyms=fake) == [""]


def test_eda_is_deterministic_and_leaves_global_random_alone():
    s = "three red wa wb near the wc wd of a we wf"
    random.seed(123)
    state = random.getstate()
    a = E.eda(s, num_aug=8, rng=random.Random(7), synonyms=fake)
    assert random.getstate() == state
    random.seed(999)
    b = E.eda(s, num_aug=8, rng=random.Random(7), synonyms=fake)
    c = E.eda(s, num_aug=8, rng=random.Random(8), synonyms=fake)
    assert a == b and a != c


def test_options_validate():
    assert resolve_options("augmenter 'eda'", E.EdaOptions, {}).num_aug == 4
    with pytest.raises(OptionError, match="at least one"):
        resolve_options(
            "augmenter 'eda'",
            E.EdaOptions,
            {"alpha_sr": 0, "alpha_ri": 0, "alpha_rs": 0, "p_rd": 0},
        )
    with pytest.raises(OptionError, match="p_rd"):
        resolve_options("augmenter 'eda'", E.EdaOptions, {"p_rd": "2"})


# ----------------------------------------------------------------------------------------------
# WordNet
# ----------------------------------------------------------------------------------------------
def test_lexnames_file_has_the_45_lexicographer_files():
    lines = T.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2" and lines[44] == "44\tadj.ppl\t3"


def _hide_all(monkeypatch, tmp_path):
    monkeypatch.setattr(T, "SYSTEM_WORDNET_DIRS", [])
    monkeypatch.setattr(T, "NLTK_WORDNET_RESOURCES", [])
    monkeypatch.delenv("WNSEARCHDIR", raising=False)
    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "home"))


def test_missing_wordnet_is_a_one_line_error_with_the_fix(monkeypatch, tmp_path):
    _hide_all(monkeypatch, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("VLADV_WORDNET", str(empty))
    with pytest.raises(VladvError, match="VLADV_WORDNET") as err:
        T.load_wordnet()
    assert "apt-get install wordnet-base" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.delenv("VLADV_WORDNET")
    with pytest.raises(VladvError, match="nltk.downloader wordnet"):
        T.load_wordnet()
    ds = tiny_dataset(2)
    with pytest.raises(VladvError, match="wordnet-base"):
        E.EDA(E.EdaOptions(), vladv.Context(home=tmp_path / "home")).texts_for(ds)


def test_debian_wordnet_folder_recipe(monkeypatch, tmp_path):
    """A WordNet folder without ``lexnames`` is copied under VLADV_HOME with a generated one."""
    source = next((Path(d) for d in T.SYSTEM_WORDNET_DIRS if T._is_wordnet_dir(Path(d))), None)
    if source is None:
        pytest.skip("no system WordNet folder (Debian's wordnet-base)")
    _hide_all(monkeypatch, tmp_path)
    monkeypatch.setenv("VLADV_WORDNET", str(source))
    monkeypatch.setattr(T, "_READERS", {})
    wn = T.load_wordnet()
    managed = list((tmp_path / "home" / "wordnet").iterdir())
    assert len(managed) == 1 and (managed[0] / "lexnames").read_text() == T.lexnames_text()
    assert T.load_wordnet() is wn  # loaded once per process
    synonyms = E.get_synonyms("car", wn)
    assert "automobile" in synonyms and "car" not in synonyms
    assert E.get_synonyms("xqzv", wn) == []
    # a hard-linked copy of the home (cp -al) has multiply-linked files, which NLTK refuses to
    # read: the managed folder is rebuilt with files of its own
    twin = tmp_path / "twin"
    twin.mkdir()
    for f in managed[0].iterdir():
        os.link(f, twin / f.name)
    monkeypatch.setattr(T, "_READERS", {})
    assert E.get_synonyms("car", T.load_wordnet()) == synonyms
    assert all(f.stat().st_nlink == 1 for f in managed[0].iterdir())


def test_eda_with_wordnet_changes_words_for_synonyms(wordnet):
    syn = E.wordnet_synonyms()
    out = E.synonym_replacement("a big car on the road".split(), 1, random.Random(0), syn)
    assert out != "a big car on the road".split()
    assert E.random_insertion(["car"], 1, random.Random(0), syn) == [syn("car")[0], "car"]


# ----------------------------------------------------------------------------------------------
# Pools
# ----------------------------------------------------------------------------------------------
def test_dedupe_captions():
    out = P.dedupe_captions(
        ["A red car.", "a red car", "", "the blue car", "New one"],
        ground_truth=["The blue car!"],
        limit=2,
    )
    assert out == ["A red car.", "New one"]


def test_eda_pools_are_new_deterministic_and_cached(wordnet, tmp_path):
    ds = tiny_dataset(4)
    ctx = vladv.Context(home=tmp_path, seed=3, progress=False)
    aug = E.EDA(E.EdaOptions(), ctx)
    pools = aug.texts_for(ds)
    assert len(pools) == len(ds)
    for i, pool in enumerate(pools):
        gt = {P.caption_key(ds.captions[t]) for t in ds.img2txt[i]}
        keys = [P.caption_key(t) for t in pool]
        assert 0 < len(pool) <= 5 * 4 and len(set(keys)) == len(keys) and not gt & set(keys)
    path = aug.pool_path(ds)
    assert path.is_file() and path.parent == tmp_path / "pools"
    assert E.EDA(E.EdaOptions(), ctx).texts_for(ds) == pools  # cache
    path.unlink()
    assert E.EDA(E.EdaOptions(), ctx).texts_for(ds) == pools  # regenerated: same
    other = E.EDA(E.EdaOptions(seed=4), ctx)
    assert other.pool_path(ds) != path and other.texts_for(ds) != pools
    merged = P.build_text_pool([aug, other], ds)
    assert all(set(p) <= set(m) for p, m in zip(pools, merged, strict=True))
    assert all(len(set(map(P.caption_key, m))) == len(m) for m in merged)


def test_entry_points_and_specs():
    from importlib.metadata import entry_points

    from vladv_plugins import captioning, image_aug

    eps = {ep.name: ep.value for ep in entry_points(group="vladv")}
    assert eps["eda"] == "vladv_plugins.eda" and eps["image-aug"] == "vladv_plugins.image_aug"
    assert eps["caption"] == "vladv_plugins.captioning"
    specs = [*E.vladv_augmenters(), *image_aug.vladv_augmenters(), *captioning.vladv_augmenters()]
    assert [(s.name, s.modality) for s in specs] == [
        ("eda", "text"),
        ("image-aug", "image"),
        ("caption", "text"),
    ]
