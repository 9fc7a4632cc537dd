"""SGA's text step, vladv against the SGA reference code's ``TextAttacker``, on the same captions.

    git clone https://github.com/Zoky-2020/SGA ~/SGA          # the reference (not shipped)
    python bench/sga_reference_text.py --sga-repo ~/SGA        # embedded CLIP, 8 images x 5
    python bench/sga_reference_text.py --sga-repo ~/SGA --backbone-opt model=ViT-B-16 --images 4

Both sides attack the first ``--images`` test images' captions of synthetic-aerial (5 each), guided
by the clean image embeddings (SGA's first text step), with one word, K = 10 and the same masked LM
(the embedded ``vladv-tiny-mlm``; its BERT weights and tokenizer are what the reference's
``ref_net`` and ``tokenizer`` get). The reference runs as SGA's evaluation scripts set it up
(``TextAttacker(ref_net, tokenizer, cls=False, max_length=77, number_perturbation=1, topk=10,
threshold_pred_score=0.3).img_guided_attack``); its victim is the same open_clip model behind SGA's
CLIP wrapper (BERT ids decoded to text, tokenized to the model's full context and encoded:
``inference_text``). vladv runs ``WordSubstitutionSearch.run`` with SGA's image-guided score — its
default (``vladv``) and with ``reference_compat`` (``vladv compat``: the reference's KL word
importance and MLM alignment). Printed per side: best-of-``--repeats`` seconds (sides
interleaved; vladv's MLM cache and word slots cleared every run, as on new captions),
text-encoder calls, the mean cosine of the adversarial captions to their images (lower: a
stronger attack), the share of captions identical to the
reference's, and the speed-up. Never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _machine import Meter, add_threads_argument, apply_threads, machine_line
from rich.console import Console
from rich.table import Table

from vladv.experiment import make_context, resolve
from vladv.kit.words import image_guided_score, load_search
from vladv.options import parse_assignments


class ReferenceVictim:
    """The backbone as SGA's CLIP wrapper serves it to ``TextAttacker``: BERT ids in, decoded,
    tokenized to the model's whole context, encoded (no truncation to the longest caption)."""

    def __init__(self, backbone: Any, bert_tokenizer: Any):
        self.backbone, self.tokenizer, self.calls = backbone, bert_tokenizer, 0

    def inference_text(self, text_input: Any) -> dict[str, torch.Tensor]:
        self.calls += 1
        texts = []
        for ids in text_input.input_ids:
            text = self.tokenizer.decode(ids)
            for special in ("[PAD]", "[CLS]", "[SEP]"):
                text = text.replace(special, "")
            texts.append(text.strip())
        with torch.no_grad():
            emb = self.backbone.model.encode_text(self.backbone.tokenize(texts)).float()
        return {"text_embed": emb, "text_feat": F.normalize(emb, dim=-1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sga-repo", type=Path, required=True, help="a clone of SGA's code")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backbone-opt", action="append", default=[], metavar="KEY=VALUE")
    add_threads_argument(parser)
    args = parser.parse_args()
    if not (args.sga_repo / "attacker.py").is_file():
        parser.error(f"{args.sga_repo} has no attacker.py (clone github.com/Zoky-2020/SGA)")
    apply_threads(args)
    sys.path.insert(0, str(args.sga_repo))
    from attacker import TextAttacker  # the reference's text attacker

    console = Console()
    ctx = make_context(None, "fp32", seed=0, progress=False)
    options = parse_assignments(args.backbone_opt, "--backbone-opt")
    backbone = resolve("backbone", "clip", options).build(ctx).eval()
    test = resolve("dataset", "synthetic-aerial").build(ctx, "test")
    console.print(machine_line(ctx, "fp32"))
    texts: list[str] = []
    owner: list[int] = []
    for i in range(args.images):
        texts += [test.captions[j] for j in test.img2txt[i]]
        owner += [i] * len(test.img2txt[i])
    images = torch.stack([test.load_image(i) for i in range(args.images)])
    with torch.no_grad():
        image_emb = F.normalize(backbone.encode_image(images).float(), dim=-1)
    guidance = image_emb[torch.tensor(owner)]

    searches = {
        "vladv": load_search("vladv-tiny-mlm", ctx, k=10, max_words=1),
        "vladv compat": load_search(
            "vladv-tiny-mlm", ctx, k=10, max_words=1, reference_compat=True
        ),
    }
    mlm = searches["vladv"].mlm
    victim = ReferenceVictim(backbone, mlm.tokenizer)
    reference = TextAttacker(
        mlm.model, mlm.tokenizer, cls=False, max_length=77, number_perturbation=1, topk=10,
        threshold_pred_score=0.3,
    )  # fmt: skip
    encode = backbone.encode_text
    meter = Meter()  # one encode_text call = one batched text-encoder forward
    backbone.encode_text = meter.wrap(encode)  # type: ignore[method-assign]

    def run(name: str) -> tuple[list[str], int]:
        with torch.no_grad():
            if name == "reference":
                victim.calls = 0
                return reference.img_guided_attack(victim, texts, img_embeds=guidance), victim.calls
            mlm.clear_cache()  # cold, as on new captions: no MLM results, no word slots
            searches[name].clear_cache()
            meter.reset()
            out = searches[name].run(list(texts), image_guided_score(backbone, guidance, ctx))
            return out, meter.calls

    names = ["reference", *searches]
    best = {n: float("inf") for n in names}
    outputs: dict[str, tuple[list[str], int]] = {}
    for _ in range(args.repeats):
        for name in names:
            start = time.perf_counter()
            outputs[name] = run(name)
            best[name] = min(best[name], time.perf_counter() - start)
    backbone.encode_text = encode  # type: ignore[method-assign]

    table = Table(title=f"SGA's text step on {len(texts)} captions (best of {args.repeats})")
    for col in ("side", "s", "text-encoder calls", "cos to image", "= reference", "speed-up"):
        table.add_column(col, justify="left" if col == "side" else "right")
    for name in names:
        adv, calls = outputs[name]
        with torch.no_grad():
            cos = (F.normalize(encode(adv).float(), dim=-1) * guidance).sum(-1).mean()
        same = sum(a == b for a, b in zip(adv, outputs["reference"][0])) / len(texts)
        table.add_row(
            name,
            f"{best[name]:.3f}",
            str(calls),
            f"{cos:.3f}",
            f"{same:.0%}",
            f"{best['reference'] / best[name]:.2f}×",
        )
    console.print(table)


if __name__ == "__main__":
    main()
