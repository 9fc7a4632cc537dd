"""World v2 of synthetic-aerial: attributes, caption subsets, the test split, domains, models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

import vladv
from vladv_plugins import synthetic
from vladv_plugins.aerial.captions import captions_for
from vladv_plugins.aerial.world import ATTRIBUTES, SCENE_BY_KEY, attribute_distance, sample_scene
from vladv_plugins.synthetic import SyntheticOptions, image_domains, scene_records


def _attribute_table(scenes):
    ids: dict = {}
    return np.array(
        [[ids.setdefault((f, getattr(s, f)), len(ids)) for f in ATTRIBUTES] for s in scenes]
    )


def test_default_test_split_has_no_near_duplicate_neighbours():
    opts = SyntheticOptions()
    assert opts.test_size == 1000 and opts.captions_per_image == 5 and opts.test_min_distance == 3
    scenes, captions = scene_records(opts, "test")
    assert len(scenes) == 1000 and all(len(c) == 5 for c in captions)
    table = _attribute_table(scenes)
    same = (table[:, None, :] == table[None, :, :]).sum(-1)
    np.fill_diagonal(same, 0)
    assert same.max() <= len(ATTRIBUTES) - 3  # every two test images differ in ≥ 3 attributes
    # the train split is drawn freely: near duplicates occur there, so the check is not vacuous
    train = _attribute_table(scene_records(SyntheticOptions(train_size=1000), "train")[0])
    same = (train[:, None, :] == train[None, :, :]).sum(-1)
    np.fill_diagonal(same, 0)
    assert same.max() >= len(ATTRIBUTES) - 1


def test_scenes_have_several_independent_attributes_and_captions_state_subsets():
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(400)]
    for field in ("size", "trees", "ground", "color", "count", "region", "layout"):
        assert len({getattr(s, field) for s in scenes}) >= 3 or field == "size"
    stated = {"color": 0, "size": 0, "trees": 0}
    total = {"color": 0, "size": 0, "trees": 0}
    words = {"size": ("small", "little", "tiny", "large", "big", "huge"), "trees": ("tree",)}
    for s in scenes:
        caps = captions_for(s, rng, 5)
        assert len(set(caps)) == 5
        noun_sg, noun_pl = SCENE_BY_KEY[s.scene].noun
        for c in caps:
            low = c.lower()
            assert noun_sg.split()[-1][:4] in low or "roof" in low or "house" in low
            total["color"] += 1
            stated["color"] += s.color in low
            if s.size:
                total["size"] += 1
                stated["size"] += any(w in low.split() for w in words["size"])
            if s.trees:
                total["trees"] += 1
                stated["trees"] += "tree" in low
    for k in stated:  # every optional attribute is stated by some captions, not all
        assert 0.25 < stated[k] / total[k] < 0.995, (k, stated[k] / total[k])
    # most human captions are detailed ones (every attribute); the rest state their own subset
    partial = [
        c
        for s in scenes
        if s.size and s.trees
        for c in captions_for(s, rng, 5)
        if not (any(w in c.lower().split() for w in words["size"]) and "tree" in c.lower())
    ]
    n = sum(5 for s in scenes if s.size and s.trees)
    assert 0.1 < len(partial) / n < 0.5, len(partial) / n


def test_mismatch_rate_as_configured_and_only_in_generated_images():
    opts = SyntheticOptions(train_size=600, train_domain="generated", mismatch_rate=0.3)
    scenes, _ = scene_records(opts, "train")
    shown = synthetic.drawn_scenes(opts, "train", scenes)
    rate = np.mean([a != b for a, b in zip(scenes, shown)])
    assert 0.24 < rate < 0.36
    assert all(attribute_distance(a, b) == 1 for a, b in zip(scenes, shown) if a != b)
    real = SyntheticOptions(train_size=200, mismatch_rate=0.5)
    sc = scene_records(real, "train")[0]
    assert synthetic.drawn_scenes(real, "train", sc) == sc
    none = SyntheticOptions(train_size=200, train_domain="generated", mismatch_rate=0.0)
    sc = scene_records(none, "train")[0]
    assert synthetic.drawn_scenes(none, "train", sc) == sc


def test_mixed_training_set_ratio():
    doms = image_domains(SyntheticOptions(train_size=400, train_domain="mixed"), "train")
    assert doms.count("real") == 100 and doms.count("generated") == 300
    doms = image_domains(
        SyntheticOptions(train_size=400, train_domain="mixed", mix_ratio=1), "train"
    )
    assert doms.count("real") == 200
    assert set(image_domains(SyntheticOptions(train_domain="mixed"), "test")) == {"real"}
    assert set(image_domains(SyntheticOptions(test_domain="generated"), "test")) == {"generated"}


def _stats(images: torch.Tensor) -> tuple[float, float]:
    x = images.float() / 255
    chroma = (x.amax(1) - x.amin(1)).mean().item()
    lap = (
        4 * x[..., 1:-1, 1:-1]
        - x[..., :-2, 1:-1]
        - x[..., 2:, 1:-1]
        - x[..., 1:-1, :-2]
        - x[..., 1:-1, 2:]
    )
    return chroma, lap.abs().mean().item()


def test_domains_differ_measurably_on_the_same_scenes():
    real = synthetic.generate(SyntheticOptions(train_size=64), "train")
    gen = synthetic.generate(
        SyntheticOptions(train_size=64, train_domain="generated", mismatch_rate=0.0), "train"
    )
    assert real[2] == gen[2]  # the same scenes, drawn by the two domains
    (chroma_r, hf_r), (chroma_g, hf_g) = _stats(real[0]), _stats(gen[0])
    assert chroma_g > 1.15 * chroma_r  # the generator's saturated palette
    assert hf_g < 0.8 * hf_r  # smoother textures, no sensor noise or JPEG blocks
    # machine-written captions: a few fixed openings; human ones: many
    starts = lambda caps: {" ".join(c.split()[:2]) for cs in caps for c in cs}  # noqa: E731
    assert len(starts(gen[1])) <= 6 < len(starts(real[1]))


_HASH = """
import hashlib, json
from vladv_plugins.synthetic import SyntheticOptions, generate
h = hashlib.sha256()
for split, dom in (("train", "mixed"), ("test", "real")):
    img, caps, scenes = generate(SyntheticOptions(train_size=24, test_size=12, \
train_domain=dom), split)
    h.update(img.numpy().tobytes()); \
h.update(json.dumps([caps, [list(map(str, s.__dict__.values())) for s in scenes]]).encode())
print(h.hexdigest())
"""


def test_generation_is_byte_identical_across_processes_and_hash_seeds():
    outs = set()
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        res = subprocess.run(
            [sys.executable, "-c", _HASH], capture_output=True, text=True, env=env, check=True
        )
        outs.add(res.stdout.strip())
    assert len(outs) == 1 and len(next(iter(outs))) == 64


def test_parallel_rendering_draws_the_same_bytes(monkeypatch):
    """Large splits render in worker processes (by torch's thread count); the bytes do not
    depend on how many."""
    opts = SyntheticOptions(train_size=40, train_domain="mixed")
    scenes, _ = scene_records(opts, "train")
    one = synthetic.render_images(opts, "train", scenes, workers=1)
    assert torch.equal(one, synthetic.render_images(opts, "train", scenes, workers=3))
    monkeypatch.setattr(synthetic, "PARALLEL_MIN_IMAGES", 10)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert synthetic.render_workers(40) == 2 and synthetic.render_workers(9) == 1


def test_records_name_the_world(tmp_path, monkeypatch):
    monkeypatch.setenv("VLADV_HOME", str(tmp_path))
    ds = synthetic.load_synthetic(
        SyntheticOptions(train_size=8, test_size=4), vladv.Context(), "test"
    )
    desc = ds.describe()
    assert desc["generator_version"] == synthetic.GENERATOR_VERSION >= 4
    assert desc["domain"] == "real" and desc["options"]["test_domain"] == "real"
    assert set(ds.domains) == {"real"}


def test_compact_tokenizer():
    from vladv_plugins.clip_pretrain import DEFAULT_MODEL, get_tokenizer, tiny_config

    tok = get_tokenizer(DEFAULT_MODEL)
    ids = tok(["A snowy farmland with three red houses.", "quantum xylophone"])
    vocab = tiny_config()["text_cfg"]["vocab_size"]
    assert tok.vocab_size == vocab < 600
    assert ids.shape == (2, 64) and int(ids.max()) == vocab - 1  # end token: the largest id
    assert (ids[0, 1:9] > 1).all()  # every word of the world is known
    assert (ids[1, 1:3] == 1).all()  # unknown words share one embedding
    assert int((ids[0] == vocab - 1).nonzero()[0, 0]) > int((ids[0] == vocab - 2).nonzero()[0, 0])


def test_align_style_model_trains_and_evaluates_through_the_runner(tmp_path, monkeypatch):
    from vladv_plugins.mlm import save_random_mlm

    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "home"))
    corpus = synthetic.caption_corpus(SyntheticOptions(train_size=60))
    mlm = save_random_mlm(corpus, tmp_path / "bert", vocab_size=250)
    records = vladv.run(
        backbone="clip",
        dataset="synthetic-aerial",
        attack="pgd",
        seed=0,
        progress=False,
        output=tmp_path / "runs",
        backbone_options={
            "model": "vladv-tiny-align",
            "pretrain_text_init": str(mlm),
            "pretrain_steps": 3,
            "pretrain_images": 32,
            "pretrain_batch_size": 8,
            "pretrain_warmup": 1,
        },
        dataset_options={"train_size": 16, "test_size": 8},
        attack_options={"steps": 1},
    )
    (rec,) = records
    assert rec["model"]["model"] == "vladv-tiny-align"
    assert rec["model"]["weights"].startswith("vladv-tiny-align-")
    assert rec["metrics"]["clean"]["tr_r1"] >= 0 and "adversarial" in rec["metrics"]
    assert rec["data"]["generator_version"] == synthetic.GENERATOR_VERSION
    saved = json.loads((tmp_path / "runs" / f"{rec['run_id']}.json").read_text())
    assert saved["metrics"] == json.loads(json.dumps(rec["metrics"]))


def test_text_encoding_cut_after_the_longest_caption_is_exact():
    import open_clip

    from vladv_plugins.clip_pretrain import (
        DEFAULT_MODEL,
        encode_text,
        get_tokenizer,
        register_tiny_config,
    )

    register_tiny_config()
    torch.manual_seed(0)
    model = open_clip.create_model(DEFAULT_MODEL).eval()
    tokens = get_tokenizer(DEFAULT_MODEL)(["two planes", "a snowy farmland with three red houses"])
    with torch.no_grad():
        full, cut = model.encode_text(tokens), encode_text(model, tokens)
    assert torch.allclose(full, cut, atol=1e-6)
    calls = []
    model.positional_embedding.register_hook(lambda g: calls.append(g.shape))
    encode_text(model.train(), tokens).sum().backward()  # gradients flow through the cut path
    assert calls and calls[0][0] == 64


def test_compact_tokenizer_fast_path_gives_open_clips_ids():
    from vladv_plugins.clip_pretrain import DEFAULT_MODEL, get_tokenizer, register_tiny_config

    register_tiny_config()
    tok = get_tokenizer(DEFAULT_MODEL)
    texts = [
        "A red House, near two planes.",
        "",
        "  spaced   out  ",
        "don't it's we'll [UNK] #1",
        "A&amp;B &lt;x&gt;",
        "café",
        "Ã©t",
        "x<start_of_text>y <END_OF_TEXT>",
        "tab\there",
        "a\r\nb",
        "“quoted”",
        "ﬁne ＡＢＣ",
        "!!! a!b 3.5 (a) x'y",
        " ".join(["farmland"] * 80),
    ]
    for length in (None, 8, 77):
        want = tok.table[tok.base(texts, length or tok.context_length)]
        assert torch.equal(tok(texts, length), want) and torch.equal(tok(texts, length), want)
    assert torch.equal(tok(texts[0]), tok.table[tok.base(texts[0], tok.context_length)])


def test_large_no_grad_text_batches_run_in_exact_row_blocks():
    import open_clip

    from vladv_plugins import clip_backbone as B
    from vladv_plugins import clip_pretrain as C

    C.register_tiny_config()
    torch.manual_seed(0)
    model = open_clip.create_model(C.DEFAULT_MODEL).eval()
    words = ["two", "red", "planes", "a", "snowy", "farmland", "with", "three", "houses", "near"]
    g = torch.Generator().manual_seed(0)
    texts = [
        " ".join(words[int(i)] for i in torch.randint(0, 10, (int(k),), generator=g))
        for k in torch.randint(1, 20, (150,), generator=g)
    ]
    tokens = C.get_tokenizer(C.DEFAULT_MODEL)(texts)
    calls, blocks = [], []
    real, real_cut = B._row_blocks, B._cut
    with torch.no_grad():
        B._row_blocks = lambda m, t, enc: (calls.append(tuple(t.shape)), real(m, t, enc))[1]
        try:
            first = B.encode_text(model, tokens)
            B._cut = lambda m, t, n: (
                blocks.append((t.shape[0], n, torch.get_num_threads())),
                real_cut(m, t, n),
            )[1]
            again = B.encode_text(model, tokens)
        finally:
            B._row_blocks, B._cut = real, real_cut
        shuffled = torch.randperm(150, generator=g)
        other = B.encode_text(model, torch.cat([tokens[shuffled], tokens[:40]]))
        full = model.encode_text(tokens)
    lengths = B._cut_lengths(tokens)
    distinct = {
        n: len({tuple(r) for r in tokens[lengths == n].tolist()}) for n in set(lengths.tolist())
    }
    groups = sorted((k, n) for n, k in distinct.items())
    assert sum(distinct.values()) < 150  # repeated texts are computed once
    assert len(groups) > 1 and sorted(calls[: len(groups)]) == groups  # one call per length
    assert all(B._BLOCKS_EXACT[model].values())
    # the second call cuts each group's last block to its exact-checked multiple of TAIL_STEP
    # where it checked exact (here: every shape on the project's CPUs; kernels decide)
    tails = B._TAILS_EXACT[model]
    assert tails and all(b == B.ROW_BLOCK or tails[(n, threads, b)] for b, n, threads in blocks)
    if all(tails.values()):
        assert sum(b for b, _, _ in blocks) < sum(
            -(-k // B.ROW_BLOCK) * B.ROW_BLOCK for k, _ in groups
        )
    assert torch.equal(first, again) and torch.allclose(first, full, atol=1e-5)
    # a text's embedding depends on the text, not on the batch it came in with
    assert torch.equal(other[:150], first[shuffled]) and torch.equal(other[150:], first[:40])

    def batch_dependent(rows):  # a kernel whose rows depend on the batch: blocks are refused
        return rows[:, :1].float() + len(rows)

    big = torch.ones(200, 3, dtype=torch.long)
    with torch.no_grad():
        for _ in range(2):
            assert torch.equal(
                B._row_blocks(torch.nn.Identity(), big, batch_dependent), batch_dependent(big)
            )

    def small_blocks_differ(rows):  # exact in full blocks, other bits in short ones
        return rows[:, :1].float() + (len(rows) < B.ROW_BLOCK)

    model_b, tall = torch.nn.Identity(), torch.ones(130, 3, dtype=torch.long)
    with torch.no_grad():
        for _ in range(2):  # the tail shape is checked once, refused, and filled up to a block
            got = B._row_blocks(model_b, tall, small_blocks_differ)
            assert torch.equal(got, small_blocks_differ(tall))
    assert B._TAILS_EXACT[model_b] == {(3, torch.get_num_threads(), B.TAIL_STEP): False}


def test_docs_world_calibration_table_is_the_committed_records_report():
    import importlib.util
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs"
    spec = importlib.util.spec_from_file_location("gen_world", docs / "gen_world.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    page = (docs / "world.md").read_text()
    for records in (gen.RECORDS, gen.ONEHOT_RECORDS):  # graded targets (default), one-hot
        table = gen.calibration_table(records)
        assert table.count("\n") == 10  # header, rule, 9 attack settings
        assert table in page
