"""vladv's BERT-Attack search against TextAttack's BERT-Attack machinery, side by side.

    .venv-textattack/bin/python bench/textattack_bert_attack.py        # 40 captions, k 10, 1 word
    .venv-textattack/bin/python bench/textattack_bert_attack.py --max-words 2 --repeats 5

Both attack the same captions (8 images × 5 synthetic-aerial captions, 40 in all) against the same
victim: vladv's ``TinyBackbone`` text tower against the batch's clean image embeddings, which the
benchmark sets (``PairBatch.image_emb``) to each image's normalized mean caption embedding, so that
clean captions rank their own image first (the tiny model's random image tower would leave most
captions misranked before any attack, and TextAttack's rules would skip them); with the same
masked LM (the embedded ``vladv-tiny-mlm``, built into ``VLADV_HOME`` on first use), budget
(``--max-words``), candidate count (``--k``) and MLM truncation (77 sub-tokens), under both rule
sets:

* ``textattack``: TextAttack's untargeted goal — success when the paired image leaves the top-1 of
  the batch's images; score 1 − softmax(s·cos)[paired]; skip captions already misranked; stop at
  success;
* ``sga``: SGA's — score −cos(paired image), best improving swap per word, no early stop.

vladv: ``WordSubstitutionSearch.run`` (``max_rounds=0``, ``early_stop`` for TextAttack's rules)
with :class:`vladv_plugins.textattack_plugin.RetrievalScore`. TextAttack: the ``textattack``
attack plugin, ``recipe=bert-attack`` (``WordSwapMaskedLM(method="bert-attack")``,
``GreedyWordSwapWIR("unk")``, repeat/stop-word constraints, ``MaxNumWordsModified``). Timings are
the best of ``--repeats`` runs, vladv and TextAttack interleaved (MLM caches cleared). Printed:
seconds and texts encoded per 40 captions, success (paired image out of the top-1), mean cosine
to the paired image, and the share of identical adversarial captions (ignoring case: TextAttack's
MLM swaps do not restore a capital initial, vladv's do). Never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from vladv.data import TensorImageDataset, pair_loader
from vladv.testing import TinyBackbone, tiny_dataset
from vladv.types import Context


def _captions(n_images: int, per_image: int) -> list[list[str]]:
    """Synthetic-aerial training captions (the tiny MLM's corpus), ``per_image`` per image."""
    from vladv_plugins.synthetic import SyntheticOptions, caption_corpus

    corpus = caption_corpus(SyntheticOptions())
    step = max(1, len(corpus) // (n_images * per_image))
    picked = corpus[::step][: n_images * per_image]
    return [picked[i * per_image : (i + 1) * per_image] for i in range(n_images)]


def _outcome(
    backbone: Any, image_emb: torch.Tensor, paired: torch.Tensor, texts: list[str]
) -> tuple[float, float]:
    """(share with the paired image out of the top-1, mean cosine to the paired image)."""
    with torch.no_grad():
        sims = backbone.encode_text(texts).float() @ image_emb.T
    own = sims.gather(1, paired.view(-1, 1)).squeeze(1)
    return float((sims.argmax(-1) != paired).float().mean()), float(own.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--captions-per-image", type=int, default=5)
    parser.add_argument("--k", type=int, default=10, help="MLM candidates per word")
    parser.add_argument("--max-words", type=int, default=1)
    parser.add_argument("--mlm", default="vladv-tiny-mlm")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--home", default=os.environ.get("VLADV_HOME", "/tmp/vladv-ta-home"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from vladv.kit.mlm import get_mlm
    from vladv.kit.words import WordSubstitutionSearch
    from vladv_plugins.textattack_plugin import (
        RetrievalScore,
        TextAttackAttack,
        TextAttackOptions,
        load_textattack,
    )

    console = Console(width=max(Console().width, 120))
    ctx = Context(progress=False, home=Path(args.home))
    ta = load_textattack(ctx)
    load = os.getloadavg()
    console.print(
        f"[bold]machine[/]: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {load[0]:.1f}/{load[1]:.1f}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), "
        f"textattack {ta.__version__ if hasattr(ta, '__version__') else '0.3.x'}"
    )
    base = tiny_dataset(n_images=args.images)
    ds = TensorImageDataset(
        base.images, _captions(args.images, args.captions_per_image), name="bench", split="test"
    )
    [batch] = list(pair_loader(ds, args.images))
    backbone = TinyBackbone().eval()
    mlm = get_mlm(args.mlm, ctx)
    with torch.no_grad():  # the "images": each image's mean caption embedding (see --victim)
        text = backbone.encode_text(batch.texts).float()
        classes = torch.zeros(args.images, text.shape[1]).index_add_(0, batch.txt2img, text)
        batch.image_emb = torch.nn.functional.normalize(classes, dim=-1)
        image_emb = batch.clean_image_embeddings(backbone).float()
    paired = batch.txt2img.long()
    n = len(batch.texts)
    clean_success, clean_cos = _outcome(backbone, image_emb, paired, batch.texts)
    console.print(
        f"{n} captions, {args.images} images; clean: {100 * clean_success:.1f}% already "
        f"misranked, mean cos {clean_cos:.4f}; k={args.k}, max_words={args.max_words}, "
        f"MLM {args.mlm}"
    )

    rows = []
    for rules in ("sga", "textattack"):
        search = WordSubstitutionSearch(mlm, k=args.k, max_words=args.max_words, max_rounds=0)
        attack = TextAttackAttack(
            TextAttackOptions(
                recipe="bert-attack", rules=rules, k=args.k, max_words=args.max_words, mlm=args.mlm
            ),
            ctx,
        )
        _, wrapper = attack.build(backbone)
        best = {"vladv": float("inf"), "textattack": float("inf")}
        out: dict[str, list[str]] = {}
        encoded: dict[str, int] = {}
        calls: dict[str, int] = {}
        for _ in range(args.repeats):  # interleaved, so load drift hits both alike
            mlm.clear_cache()
            score = RetrievalScore(backbone, image_emb, paired, rules, ctx)
            start = time.perf_counter()
            out["vladv"] = search.run(batch.texts, score, early_stop=rules == "textattack")
            best["vladv"] = min(best["vladv"], time.perf_counter() - start)
            encoded["vladv"], calls["vladv"] = score.encoded, search.last_stats["score_calls"]
            wrapper.calls = wrapper.encoded = 0
            start = time.perf_counter()
            out["textattack"] = attack.perturb(
                backbone, batch, torch.Generator().manual_seed(0)
            ).texts
            best["textattack"] = min(best["textattack"], time.perf_counter() - start)
            encoded["textattack"], calls["textattack"] = wrapper.encoded, wrapper.calls
        same = (
            sum(
                a.lower() == b.lower()  # TextAttack's MLM swaps do not restore capitals
                for a, b in zip(out["vladv"], out["textattack"], strict=True)
            )
            / n
        )
        for who in ("vladv", "textattack"):
            success, cos = _outcome(backbone, image_emb, paired, out[who])
            rows.append(
                (
                    rules,
                    who,
                    best[who] * 40 / n,
                    encoded[who] * 40 / n,
                    calls[who] * 40 / n,
                    success,
                    cos,
                    same,
                )
            )

    table = Table(
        title=f"BERT-Attack per 40 captions (k={args.k}, {args.max_words} word(s), "
        f"best of {args.repeats})"
    )
    for col in (
        "rules",
        "implementation",
        "s / 40 captions",
        "texts encoded / 40",
        "encoder calls / 40",
        "success",
        "mean cos(paired)",
        "identical",
        "speed-up",
    ):
        table.add_column(col, justify="left" if col in ("rules", "implementation") else "right")
    for i, (rules, who, sec, enc, calls_, success, cos, same) in enumerate(rows):
        speed = "" if who == "textattack" else f"{rows[i + 1][2] / sec:.1f}×"
        table.add_row(
            rules,
            who,
            f"{sec:.3f}",
            f"{enc:.0f}",
            f"{calls_:.0f}",
            f"{100 * success:.1f}%",
            f"{cos:.4f}",
            f"{100 * same:.1f}%",
            speed,
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
