"""How the one-word text attack depends on what else the gallery holds (docs/world.md).

The default embedded CLIP, the published BERT-Attack setting (objective=kl), seed 0, on small
galleries cut from the real test split: the first N test images against N images chosen so that
no two share a scene type (``scene``) or a (scene type, object color) pair (``pair``), or as many
as can be chosen so that every two differ in at least two of scene type, color and count
(``salient``; N is then that number).

    python docs/world/gallery_probe.py 16 scene
    python docs/world/gallery_probe.py 80 pair
    python docs/world/gallery_probe.py 0 salient
"""

from __future__ import annotations

import sys

from vladv.data import TensorImageDataset
from vladv.evaluation import encode_clean, evaluate_attack
from vladv.experiment import make_context, resolve


def distinct(scenes: list, n: int, mode: str) -> list[int]:
    """The first ``n`` images whose scene type (``scene``) or (scene, color) (``pair``) is new;
    for ``salient``, every image that differs from all chosen ones in two of scene, color, count."""
    if mode == "salient":
        fields = ("scene", "color", "count")
        chosen: list[int] = []
        for i, s in enumerate(scenes):
            if all(
                sum(getattr(s, f) != getattr(scenes[j], f) for f in fields) >= 2 for j in chosen
            ):
                chosen.append(i)
        return chosen
    seen: set = set()
    chosen = []
    for i, s in enumerate(scenes):
        key = s.scene if mode == "scene" else (s.scene, s.color)
        if key not in seen:
            seen.add(key)
            chosen.append(i)
        if len(chosen) == n:
            break
    return chosen


def main(n: int, mode: str) -> None:
    ctx = make_context(None, "fp32", seed=0, progress=False)
    backbone = resolve("backbone", "clip").build(ctx).to(ctx.device).eval()
    test = resolve("dataset", "synthetic-aerial").build(ctx, "test")
    attack = resolve("attack", "bert-attack", {"objective": "kl"}).build(ctx)
    chosen = distinct(test.scenes, n, mode)
    for name, rows in (("first", list(range(len(chosen)))), (f"distinct {mode}", chosen)):
        gallery = TensorImageDataset(
            test.images[rows], [[test.captions[j] for j in test.img2txt[i]] for i in rows]
        )
        clean = encode_clean(backbone, gallery, ctx, 32)
        result = evaluate_attack(backbone, gallery, attack, "bert-attack", clean, ctx, 32)
        print(
            f"{name}: {len(rows)} images, clean TR/IR R@1 {clean.metrics['tr_r1']:.1f} / "
            f"{clean.metrics['ir_r1']:.1f}, ASR@1 {result.asr['tr_r1_conditional']:.1f} / "
            f"{result.asr['ir_r1_conditional']:.1f}"
        )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 16, sys.argv[2] if len(sys.argv) > 2 else "scene"
    )
