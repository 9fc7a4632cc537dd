"""Is the one-word text attack's success the world's doing or the model's? (docs/world.md)

A different world, built only for this question: every image is a ground (grass, sand, snow,
soil, concrete) with a *bag of objects* on it, each object kind a distinct shape and colour with
its own noun, and every caption names several of the objects ("a hotel, a court and an antenna
on a beach"). A match then rests on several nouns at once, as in Flickr30k or COCO captions,
instead of on attribute words of one scene. The script trains the same tiny CLIP architecture
as ``vladv-tiny-aerial`` with the same recipe (1,350 steps of 128 pairs, pixel noise), a tiny
masked LM on the probe's captions, and then measures, on 1,000 test images x 5 captions (no two
test images sharing all but one of their objects and ground):

- clean R@1, and the model's geometry: the cosine between a caption's embedding and the same
  caption with one object noun swapped, and the median TR margin (the image's best own caption
  minus its best other caption);
- conditional ASR@1 of PGD, the published-style BERT-Attack (objective=kl, reference_compat),
  Co-Attack and SGA (published settings), white-box, vladv's default budgets.

    python docs/world/objects_probe.py OUT                        # 24 kinds, 3-4 objects per image
    python docs/world/objects_probe.py OUT --kinds 60 --objects 4 5 --grid 3 --min-named 3
    python docs/world/objects_probe.py --embedded   # the same geometry for world v2's CLIP

OUT keeps the trained CLIP and masked LM, so a second call only evaluates. One thread, CPU.
The masked LM's WordPiece vocabulary is trained too (not bit-reproducible across processes), so
the attacks' figures can move by a little between fresh runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from vladv.data import TensorImageDataset
from vladv.evaluation import encode_clean, evaluate_attack
from vladv.experiment import make_context, resolve
from vladv.kit.mlm import TinyMLMConfig, train_tiny_mlm
from vladv_plugins import clip_pretrain
from vladv_plugins.clip import ClipOptions
from vladv_plugins.clip_backbone import ClipBackbone

SIZE = 64
COLORS = {
    "red": (0.85, 0.12, 0.1),
    "blue": (0.12, 0.3, 0.9),
    "yellow": (0.97, 0.85, 0.15),
    "orange": (0.97, 0.5, 0.07),
    "purple": (0.55, 0.18, 0.75),
    "black": (0.06, 0.06, 0.07),
    "cyan": (0.1, 0.8, 0.85),
    "pink": (0.97, 0.45, 0.7),
}
SHAPES = (
    "square", "circle", "triangle", "ring", "cross", "bar", "frame", "diamond", "stripes", "dots"
)  # fmt: skip
NOUNS = (
    "pool pond court tank silo barn house church tent umbrella boat ship car truck bus plane "
    "helicopter tower bridge garden stadium fountain container greenhouse crane windmill "
    "warehouse kiosk school hospital factory mill dam pier lighthouse castle temple mosque "
    "hangar depot station market mall hotel villa cottage cabin shed stable farm orchard "
    "vineyard quarry mine pipeline chimney antenna satellite radar railway tunnel ferry "
    "yacht canoe tractor trailer van jeep bicycle scooter"
).split()
GROUNDS = {
    "grass": ((0.25, 0.55, 0.2), ("a grassy area", "green grass", "a lawn", "a meadow")),
    "sand": ((0.85, 0.75, 0.5), ("the sand", "a sandy area", "sandy ground", "a beach")),
    "snow": ((0.93, 0.94, 0.97), ("snow", "a snowy field", "snowy ground", "a snow cover")),
    "soil": ((0.45, 0.3, 0.18), ("bare soil", "a dirt field", "brown earth", "dry land")),
    "concrete": ((0.55, 0.55, 0.56), ("concrete", "a paved lot", "a concrete yard", "asphalt")),
}
TEMPLATES = (
    "an aerial view of {objs}",
    "{objs} on {ground}",
    "there is {objs}",
    "{ground} with {objs}",
    "we can see {objs} here",
    "{objs} can be seen from above",
)
Kind = tuple[str, str, str]  # noun, shape, colour


def object_kinds(n: int) -> list[Kind]:
    """``n`` object kinds: the first ``n`` nouns, each with its own (shape, colour)."""
    pairs = [(s, c) for s in SHAPES for c in COLORS]
    order = np.random.default_rng(123).permutation(len(pairs))[:n]
    return [(NOUNS[i], *pairs[j]) for i, j in enumerate(order)]


def draw(canvas: np.ndarray, shape: str, color: np.ndarray, cx: float, cy: float, r: float) -> None:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    ax, ay = np.abs(dx), np.abs(dy)
    box = (ax < r) & (ay < r)
    masks = {
        "square": lambda: box,
        "circle": lambda: dx**2 + dy**2 < r**2,
        "triangle": lambda: (ay < r) & (ax < (dy + r) / 2),
        "ring": lambda: (np.hypot(dx, dy) < r) & (np.hypot(dx, dy) > r * 0.55),
        "cross": lambda: ((ax < r * 0.33) & (ay < r)) | ((ay < r * 0.33) & (ax < r)),
        "bar": lambda: (ax < r * 1.2) & (ay < r * 0.4),
        "frame": lambda: box & ~((ax < r * 0.55) & (ay < r * 0.55)),
        "diamond": lambda: ax + ay < r * 1.2,
        "stripes": lambda: box & (np.floor((dy + r) / (r * 0.5)) % 2 == 0),
        "dots": lambda: (
            box
            & (np.floor((dx + r) / (r * 0.66)) % 2 == 0)
            & (np.floor((dy + r) / (r * 0.66)) % 2 == 0)
        ),
    }
    canvas[masks[shape]()] = color


def render(objects: list[int], ground: str, kinds: list[Kind], grid: int, rng) -> np.ndarray:
    """One image: the ground's colour with noise, each object in its own cell of a grid."""
    canvas = np.array(GROUNDS[ground][0], np.float32) + rng.normal(0, 0.04, (SIZE, SIZE, 3))
    if grid == 3:
        cells, jitter, radius = [(x, y) for y in (11, 32, 53) for x in (11, 32, 53)], 2, (5, 7.5)
    else:
        cells, jitter, radius = [(16, 16), (48, 16), (16, 48), (48, 48)], 5, (6, 9)
    for obj, cell in zip(objects, rng.permutation(len(cells))):
        _, shape, colour = kinds[obj]
        cx, cy = cells[cell]
        draw(
            canvas,
            shape,
            np.array(COLORS[colour], np.float32) * rng.uniform(0.85, 1.05),
            cx + rng.uniform(-jitter, jitter),
            cy + rng.uniform(-jitter, jitter),
            rng.uniform(*radius),
        )
    canvas = canvas * rng.uniform(0.8, 1.15) + rng.normal(0, 0.03, (SIZE, SIZE, 3))
    return (np.clip(canvas, 0, 1) * 255).astype(np.uint8)


def article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def listing(nouns: list[str]) -> str:
    items = [article(n) for n in nouns]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def captions(nouns: list[str], ground: str, min_named: int, rng, k: int = 5) -> list[str]:
    """``k`` captions, each naming its own random subset (at least ``min_named``) of the objects."""
    out = []
    for _ in range(k):
        n = int(rng.integers(min(min_named, len(nouns)), len(nouns) + 1))
        named = [nouns[i] for i in rng.permutation(len(nouns))[:n]]
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        if "{ground}" not in template and rng.random() < 0.4:
            template += " on {ground}"
        where = GROUNDS[ground][1][int(rng.integers(4))]
        out.append(template.format(objs=listing(named), ground=where))
    return out


def split(n: int, args, kinds: list[Kind], seed: int, distinct: bool):
    """``n`` images and captions; ``distinct``: no two share all but one of objects and ground."""
    rng = np.random.default_rng(seed)
    images, texts, seen = [], [], []
    while len(images) < n:
        objects = sorted(rng.choice(len(kinds), int(rng.integers(*args.objects)), replace=False))
        ground = list(GROUNDS)[int(rng.integers(len(GROUNDS)))]
        key = frozenset(int(o) for o in objects) | {ground}
        if distinct and any(len(key & other) >= len(key) - 1 for other in seen):
            continue
        seen.append(key)
        images.append(render(list(objects), ground, kinds, args.grid, rng))
        texts.append(captions([kinds[o][0] for o in objects], ground, args.min_named, rng))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), texts


def geometry(backbone, gallery, clean, swap, what: str) -> str:
    """The cosine between a caption and ``swap(caption)`` (first captions of the first 200
    images), and the median TR margin: an image's best own caption minus its best other one."""
    before = [gallery.captions[rows[0]] for rows in gallery.img2txt[:200]]
    after = [swap(text) for text in before]
    with torch.no_grad():
        a = F.normalize(backbone.encode_text(before).float(), dim=-1)
        b = F.normalize(backbone.encode_text(after).float(), dim=-1)
    sims = clean.image_emb.float() @ clean.text_emb.float().T
    own = torch.zeros_like(sims, dtype=torch.bool)
    for i, rows in enumerate(gallery.img2txt):
        own[i, rows] = True
    margin = sims.masked_fill(~own, -9).max(1).values - sims.masked_fill(own, -9).max(1).values
    return (
        f"cosine after one {what} swap {(a * b).sum(-1).mean():.3f}, "
        f"median TR margin {margin.median():.3f}"
    )


def noun_swap(kinds: list[Kind]):
    """Replace the first object a caption names by a random object kind it does not name."""
    rng = np.random.default_rng(5)
    nouns = [k[0] for k in kinds]

    def swap(text: str) -> str:
        present = [n for n in nouns if article(n) in text]
        absent = [n for n in nouns if n not in present]
        return text.replace(article(present[0]), article(rng.choice(absent)), 1)

    return swap


def embedded_geometry() -> None:
    """The same geometry for the default embedded CLIP on world v2 (one colour word swapped)."""
    from vladv_plugins.aerial.world import COLORS as WORLD_COLORS

    ctx = make_context(None, "fp32", seed=0, progress=False)
    backbone = resolve("backbone", "clip").build(ctx).eval()
    test = resolve("dataset", "synthetic-aerial").build(ctx, "test")
    clean = encode_clean(backbone, test, ctx, 32)
    rng = np.random.default_rng(5)
    colours = list(WORLD_COLORS)

    def swap(text: str) -> str:
        words = text.split()
        at = [j for j, w in enumerate(words) if w in colours]
        if at:
            words[at[0]] = rng.choice([c for c in colours if c != words[at[0]]])
        return " ".join(words)

    m = clean.metrics
    shape = geometry(backbone, test, clean, swap, "colour")
    print(f"world v2: clean TR / IR R@1 {m['tr_r1']:.1f} / {m['ir_r1']:.1f}; {shape}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, nargs="?", help="folder for the probe's models")
    p.add_argument(
        "--embedded", action="store_true", help="only the geometry of vladv-tiny-aerial on world v2"
    )
    p.add_argument("--kinds", type=int, default=24, help="object kinds (<= 70)")
    p.add_argument("--objects", type=int, nargs=2, default=(3, 4), help="objects per image")
    p.add_argument("--grid", type=int, choices=(2, 3), default=2, help="object cells per side")
    p.add_argument("--min-named", type=int, default=2, help="fewest objects a caption names")
    p.add_argument(
        "--steps", type=int, default=clip_pretrain.DEFAULT_STEPS[clip_pretrain.DEFAULT_MODEL]
    )
    p.add_argument("--test", type=int, default=1000)
    args = p.parse_args()
    if args.embedded:
        return embedded_geometry()
    if args.out is None:
        p.error("OUT is required (unless --embedded)")
    if not 2 <= args.kinds <= len(NOUNS):
        p.error(f"--kinds must be between 2 and {len(NOUNS)}")
    if not 1 <= args.objects[0] <= args.objects[1] <= min(args.kinds, args.grid**2):
        p.error("--objects LO HI: 1 <= LO <= HI <= min(kinds, grid cells)")
    args.objects = (args.objects[0], args.objects[1] + 1)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    kinds = object_kinds(args.kinds)
    train_x, train_texts = split(20000, args, kinds, 1, distinct=False)
    test_x, test_texts = split(args.test, args, kinds, 2, distinct=True)

    flat = [c for caps in train_texts for c in caps]
    vocabulary = clip_pretrain.caption_vocabulary(flat + [c for caps in test_texts for c in caps])
    tokenizer = clip_pretrain.CompactTokenizer(vocabulary, context_length=64)
    config = json.loads(json.dumps(clip_pretrain.TINY_CONFIG))
    config["text_cfg"]["vocab_size"] = tokenizer.vocab_size
    clip_pretrain._register("objects-probe", config)
    torch.manual_seed(0)
    with clip_pretrain.quiet_open_clip():
        model = open_clip.create_model("objects-probe", pretrained=None)
    weights = args.out / "clip.pt"
    if weights.exists():
        model.load_state_dict(torch.load(weights, weights_only=True))
    else:
        clip_pretrain.train_clip(
            model,
            clip_pretrain.model_preprocess(model),
            train_x,
            tokenizer(flat).view(len(train_texts), 5, -1),
            steps=args.steps,
            **clip_pretrain.recipe(ClipOptions()),  # the embedded CLIP's recipe, one-hot targets
        )
        torch.save(model.state_dict(), weights)
    ctx = make_context(None, "fp32", seed=0, progress=False)
    mlm = args.out / "mlm"
    if not (mlm / "config.json").exists():
        train_tiny_mlm(flat, mlm, TinyMLMConfig(), ctx)
    backbone = ClipBackbone(model.eval(), tokenizer).eval()
    gallery = TensorImageDataset(test_x, test_texts)
    clean = encode_clean(backbone, gallery, ctx, 32)
    m = clean.metrics
    shape = geometry(backbone, gallery, clean, noun_swap(kinds), "noun")
    print(f"clean TR / IR R@1 {m['tr_r1']:.1f} / {m['ir_r1']:.1f}; {shape}")
    published = {"reference_compat": True, "mlm": str(mlm)}
    for name, opts in (
        ("pgd", {}),
        ("bert-attack", {"objective": "kl", **published}),
        ("co-attack", published),
        ("sga", published),
    ):
        attack = resolve("attack", name, opts).build(ctx)
        asr = evaluate_attack(backbone, gallery, attack, name, clean, ctx, 32).asr
        print(f"{name}: ASR@1 {asr['tr_r1_conditional']:.1f} / {asr['ir_r1_conditional']:.1f}")


if __name__ == "__main__":
    main()
