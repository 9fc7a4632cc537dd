"""What MAT's 1:N pools hold on world v2 (docs/augmenters.md#measured-on-world-v2).

MAT trains on one caption per image drawn from the image's pool: its ground-truth captions plus
the text augmenters' new ones (EDA rewrites, the embedded captioner's captions). This probe
measures, for the first ``--images`` training images of each training set of the research grid
(real, generated, mixed), how those pools compare with the ground truth the undefended model was
pretrained on:

- ``share``: the pool's share of MAT's caption draws (the rest are ground truth);
- ``IR@1``: share of captions whose own image the undefended CLIP of that training set ranks
  first among the ``--images`` images (alignment as the model sees it);
- ``p1`` / ``p2``: clipped unigram / bigram precision against the image's ground truth (BLEU's);
- ``wrong``: share of captions naming an object color, a count, a size or a tree amount that the
  *image* does not show (a generated image may show another scene than its captions state);
- ``unk``: share of captions with a word outside the world's vocabulary (one ``unk`` token to the
  embedded CLIP, so the word carries nothing).

    python docs/world/pool_probe.py [--images 1000] [--threads 1] [--data real ...]
        [--caption-opt pretrain_steps=4000 ...]

The pools are built as MAT builds them (augmenter defaults, seed 0, the captioner of each
training set, trained on first use); the research grid's rows used the 1,000-step captioner, the
default until 2026-12-01: ``--caption-opt pretrain_steps=1000``. Prints one markdown table.
"""

from __future__ import annotations

import argparse

import torch

from vladv.experiment import make_context, resolve
from vladv.kit.pools import build_text_pool
from vladv.options import parse_assignments
from vladv_plugins.captioning import caption_quality
from vladv_plugins.synthetic import SyntheticAerialDataset


def first(ds: SyntheticAerialDataset, n: int) -> SyntheticAerialDataset:
    """The first ``n`` images of ``ds`` (pools depend only on seed and image index)."""
    caps = ds.image_captions()[:n]
    return SyntheticAerialDataset(ds.images[:n], caps, ds.scenes[:n], ds.split, ds.options)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", nargs="+", default=["real", "generated", "mixed"])
    p.add_argument("--caption-opt", action="append", default=[], help="KEY=VALUE, repeatable")
    a = p.parse_args()
    caption_opts = parse_assignments(a.caption_opt, "--caption-opt")
    torch.set_num_threads(a.threads)
    ctx = make_context("cpu", "fp32", seed=0, progress=False)
    print("| training set | pool | per image | share | IR@1 | p1 | p2 | wrong | unk |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for data in a.data:
        full = resolve("dataset", "synthetic-aerial", {"train_domain": data}).build(ctx, "train")
        ds = first(full, a.images)
        bb = resolve("backbone", "clip", {"pretrain_data": data}).build(ctx)
        pools = {"ground truth": ds.image_captions()}
        for name, opts in (("eda", {}), ("caption", {"pretrain_data": data, **caption_opts})):
            aug = resolve("augmenter", name, opts).build(ctx)
            pools[name] = build_text_pool([aug], ds)
        n_gt = len(ds.captions)
        for name, pool in pools.items():
            q = caption_quality(pool, ds, bb)
            texts = [(i, t) for i, ts in enumerate(pool) for t in ts]
            n = len(texts)
            ids = bb.tokenizer([t for _, t in texts])
            unk = float((ids == 1).any(1).float().mean())
            share = "—" if name == "ground truth" else f"{n / (n + n_gt):.0%}"
            print(
                f"| {data} | {name} | {q['per_image']:.1f} | {share} | {q['ir_r1']:.1%} "
                f"| {q['p1']:.2f} | {q['p2']:.2f} | {q['wrong']:.1%} | {unk:.1%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
