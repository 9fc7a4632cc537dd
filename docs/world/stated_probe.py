"""Graded pretraining targets by what each *caption* states (docs/world.md#embedded-models).

The default graded targets (``pretrain_graded``) count every attribute in which two scenes differ;
this probe counts only the attributes a caption states (detected from the caption's phrases), so
a caption that does not mention, say, the trees is never graded as far from an image for them.
It trains the default embedded CLIP's architecture and recipe with those targets and measures
clean R@1 and the published-style BERT-Attack and PGD on the real test split.

    python docs/world/stated_probe.py OUT [--beta 1] [--steps 1350] [--threads 1]

OUT keeps the trained weights, so a second call only evaluates.
"""

import argparse
import re
import time
from pathlib import Path

import numpy as np
import open_clip
import torch

from vladv.evaluation import encode_clean, evaluate_attack
from vladv.experiment import make_context, resolve
from vladv_plugins import clip_pretrain
from vladv_plugins.aerial.captions import GROUND_ADJ, GROUND_CLAUSES, SIZE_WORDS, TREE_PHRASES
from vladv_plugins.aerial.world import (
    ATTRIBUTES,
    COUNT_WORDS,
    MANY,
    POSITIONS,
    layout_phrases,
    relation_phrases,
)
from vladv_plugins.clip import ClipOptions
from vladv_plugins.clip_backbone import ClipBackbone

p = argparse.ArgumentParser()
p.add_argument("out", type=Path)
p.add_argument("--beta", type=float, default=1.0)
p.add_argument(
    "--steps", type=int, default=clip_pretrain.DEFAULT_STEPS[clip_pretrain.DEFAULT_MODEL]
)
p.add_argument("--test", type=int, default=1000)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)


def has(text: str, phrases) -> bool:
    """Whether any of ``phrases`` occurs in ``text`` as whole words."""
    return any(
        re.search(r"(?<![a-z])" + re.escape(ph.lower()) + r"(?![a-z])", text)
        for ph in phrases
        if ph
    )


def stated(s, cap: str) -> list[bool]:
    """Which attributes of record ``s`` the caption ``cap`` states (colour and its second colour
    together; a count of one is implied by the singular noun)."""
    t = cap.lower()
    col = s.color in t.split() or has(t, [s.color])
    out = {
        "scene": True,
        "layout": has(t, layout_phrases(s.layout)) or has(t, relation_phrases(s)),
        "color": col,
        "color2": col,
        "count": (s.count == 1) or has(t, COUNT_WORDS.get(s.count, ()) if s.count else MANY),
        "region": s.region is not None and has(t, POSITIONS[s.region]),
        "size": s.size is not None and has(t, SIZE_WORDS[s.size]),
        "trees": s.trees is not None and has(t, TREE_PHRASES[s.trees]),
        "ground": s.ground is not None and has(t, GROUND_ADJ[s.ground] + GROUND_CLAUSES[s.ground]),
    }
    return [out[f] for f in ATTRIBUTES]


ctx = make_context(None, "fp32", seed=0, progress=False)
train = resolve("dataset", "synthetic-aerial").build(ctx, "train")
k = min(len(c) for c in train.img2txt)
img_t, txt_t = train.pair_attributes()  # what each image shows, what its captions state
mask = np.array(
    [
        [stated(s, train.captions[ids[j]]) for j in range(k)]
        for s, ids in zip(train.scenes, train.img2txt)
    ]
)
print("stated share per attribute", dict(zip(ATTRIBUTES, mask.mean((0, 1)).round(2))), flush=True)
cap_t = torch.where(torch.from_numpy(mask), txt_t[:, None, :], -1)  # -1: not stated
name = clip_pretrain.DEFAULT_MODEL
clip_pretrain.register_embedded(name, ctx, "")
tok = clip_pretrain.get_tokenizer(name)
torch.manual_seed(0)
with clip_pretrain.quiet_open_clip():
    model = open_clip.create_model(name, pretrained=None)
pre = clip_pretrain.model_preprocess(model)
tokens = clip_pretrain.caption_tokens(train, tok)
w = a.out / "clip.pt"
a.out.mkdir(parents=True, exist_ok=True)
if w.exists():
    model.load_state_dict(torch.load(w, weights_only=True))
else:
    t0 = time.time()
    clip_pretrain.train_clip(
        model,
        pre,
        train.images,
        tokens,
        steps=a.steps,
        **clip_pretrain.recipe(ClipOptions()),  # the embedded CLIP's recipe
        graded=a.beta,
        attributes=(img_t, cap_t),
    )
    torch.save(model.state_dict(), w)
    print("trained", round(time.time() - t0), "s", flush=True)
model.eval()
bb = ClipBackbone(model, tok).eval()
test = resolve("dataset", "synthetic-aerial", {"test_size": a.test}).build(ctx, "test")
clean = encode_clean(bb, test, ctx, 32)
m = clean.metrics
print(f"clean TR/IR R@1 {m['tr_r1']:.1f} / {m['ir_r1']:.1f}", flush=True)
for nm, opts in (("bert-attack", {"objective": "kl", "reference_compat": True}), ("pgd", {})):
    att = resolve("attack", nm, opts).build(ctx)
    asr = evaluate_attack(bb, test, att, nm, clean, ctx, 32).asr
    print(
        f"{nm}: ASR@1 {asr['tr_r1_conditional']:.1f} / {asr['ir_r1_conditional']:.1f}", flush=True
    )
