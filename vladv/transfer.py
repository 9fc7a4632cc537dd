"""Transfer attacks: craft adversarial examples on a source model, evaluate them on targets.

A *source* is a model spec (backbone, its options, defense, its options, augmenters; see
:mod:`vladv.modelspec`) trained, when defended, on the target's dataset with the cell's seed.
Crafted examples live in pixel space and as strings, so a target of another resolution or
tokenizer encodes them with its own preprocessing. They are crafted once per (source, attack,
dataset, seed, precision, batch size) and cached under ``VLADV_HOME/transfer/`` — the image
perturbation δ = x′ − x as float16 (its rounding error is below 10⁻⁵, about 0.002/255) and the
adversarial captions as strings — so every further target, grid or rerun reuses them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vladv import distributed
from vladv.backbone import Backbone
from vladv.cache import atomic_write_json, config_hash
from vladv.console import track
from vladv.data import pair_loader
from vladv.errors import CheckpointError
from vladv.grid import (
    NONE,
    GridSpec,
    ModelKey,
    Resolver,
    _freeze,
    _is_sweep,
    model_names,
    options_for,
    typed,
)
from vladv.modelspec import SELF, parse_model
from vladv.types import Attack, AttackOutput, Context, ImageTextDataset, PairBatch

FORMAT = 1
"""Version of the crafted-examples cache layout (part of its key)."""


def _fixed(kind: str, name: str, given: Mapping[str, Any], res: Resolver) -> dict[str, Any]:
    """The grid's options for plugin ``name`` without sweeps: a source takes fixed values only."""
    return {
        k: v for k, v in given.items() if not _is_sweep(kind, name, k.rpartition(".")[2], v, res)
    }


def source_keys(
    grid: GridSpec, key: ModelKey, res: Resolver | None = None
) -> list[ModelKey | None]:
    """The sources of the target ``key``'s cells, in grid order; None is white-box.

    A source takes the grid's fixed (not swept) options for its plugins, its inline options on
    top, the target's dataset and seed. A source equal to the target is the white-box ``None``.
    """
    if not grid.sources:
        return [None]
    res = res or Resolver()
    names = model_names(grid)
    opts = grid.options
    out: list[ModelKey | None] = []
    for entry in grid.sources:
        if entry == SELF:
            out.append(None)
            continue
        spec = parse_model(entry)

        def chosen(kind: str, name: str, inline: Sequence[tuple[str, Any]]) -> dict[str, Any]:
            given = _fixed(kind, name, opts.get(kind, {}), res)
            return {
                **options_for(kind, name, given, names[kind], res)[0],
                **typed(kind, name, inline, res),
            }

        augs: dict[str, tuple] = {}
        if spec.defense != NONE:
            for a, o in spec.augmenters + tuple((a, ()) for a in grid.augment):
                augs.setdefault(a, o)
        src = ModelKey(
            spec.backbone,
            _freeze(chosen("backbone", spec.backbone, spec.backbone_options)),
            key.dataset,
            key.dataset_options,
            spec.defense,
            _freeze(chosen("defense", spec.defense, spec.defense_options)),
            tuple((a, _freeze(chosen("augmenter", a, o))) for a, o in augs.items()),
            key.seed,
        )
        out.append(None if src == key else src)
    return list(dict.fromkeys(out))


@dataclass
class Crafted:
    """Adversarial examples of a whole test split, crafted on one source.

    ``delta``: (N, 3, H, W) float16 image perturbations (None when no image changed);
    ``texts``: one adversarial caption per caption of the split; ``meta``: the source's identity,
    the data it was crafted on and the seconds crafting took.
    """

    delta: torch.Tensor | None
    texts: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def output(self, batch: PairBatch) -> AttackOutput:
        """The cached adversarial batch for ``batch`` (images = clean + δ, clamped to [0, 1])."""
        images = batch.images
        if self.delta is not None:
            delta = self.delta[batch.image_ids.cpu()].to(images.device, torch.float32)
            images = (images + delta).clamp(0, 1)
        return AttackOutput(images, [self.texts[int(t)] for t in batch.text_ids])


def craft_key(
    source: Mapping[str, Any],
    attack: Mapping[str, Any],
    dataset: Mapping[str, Any],
    seed: int,
    precision: str,
    batch_size: int,
) -> str:
    """Content address of the examples of one (source, attack, dataset, seed) under a setting."""
    return config_hash(
        {
            "format": FORMAT,
            "source": source,
            "attack": attack,
            "dataset": dataset,
            "seed": seed,
            "precision": precision,
            "batch_size": batch_size,
        }
    )


def craft_folder(ctx: Context, attack_name: str, key: str) -> Path:
    return ctx.cache_dir("transfer", f"{attack_name}-{key}")


def craft(
    model: Backbone,
    dataset: ImageTextDataset,
    attack: Attack,
    attack_name: str,
    clean: Any,
    ctx: Context,
    batch_size: int,
) -> Crafted:
    """Attack every batch of ``dataset`` on ``model`` (the source), as a white-box run would.

    The batches, the clean embeddings the attack sees and its generators are those of
    :func:`vladv.evaluation.evaluate_attack`, so a source equal to the target gives the white-box
    examples. Under torch.distributed each rank crafts its share; rows are gathered.
    """
    start = time.perf_counter()
    n_img, n_txt = len(dataset), len(dataset.captions)
    deltas, img_ids, texts, txt_ids = [], [], [], []
    loader = pair_loader(
        dataset, batch_size, ctx.num_workers, indices=distributed.batch_shards(n_img, batch_size)
    )
    for batch in track(loader, f"craft {attack_name}", ctx, total=len(loader)):
        batch = PairBatch(
            batch.images,
            batch.texts,
            batch.txt2img,
            batch.image_ids,
            batch.text_ids,
            clean.image_emb[batch.image_ids],
            clean.text_emb[batch.text_ids],
        ).to(ctx.device)
        out = attack.perturb(
            model, batch, ctx.generator("attack", attack_name, int(batch.image_ids[0]))
        )
        deltas.append((out.images.detach().float() - batch.images).cpu().half())
        img_ids.append(batch.image_ids)
        texts.extend(out.texts)
        txt_ids.extend(int(t) for t in batch.text_ids)
    delta = distributed.gather_rows(torch.cat(deltas), torch.cat(img_ids), n_img)
    all_texts = [""] * n_txt
    for ids, strings in distributed.gather_objects((txt_ids, texts)):
        for t, s in zip(ids, strings, strict=True):
            all_texts[t] = s
    changed = bool(delta.ne(0).any()) or not torch.isfinite(delta).all()
    return Crafted(
        delta if changed else None, all_texts, {"seconds": round(time.perf_counter() - start, 3)}
    )


def save_crafted(folder: Path, crafted: Crafted) -> None:
    """Write δ (safetensors) then the index (JSON, the completion marker), atomically."""
    from vladv.checkpoints import save_state_dict

    if crafted.delta is not None:
        save_state_dict({"delta": crafted.delta}, folder / "delta.safetensors")
    atomic_write_json(
        folder / "crafted.json",
        {
            **crafted.meta,
            "format": FORMAT,
            "images": crafted.delta is not None,
            "texts": crafted.texts,
        },
    )


def load_crafted(folder: Path) -> Crafted | None:
    """The cached examples in ``folder``, or None when absent or unusable (they are recrafted)."""
    from vladv.checkpoints import load_state_dict

    try:
        meta = json.loads((folder / "crafted.json").read_text())
        delta = load_state_dict(folder / "delta.safetensors")["delta"] if meta["images"] else None
        texts = meta.pop("texts")
    except (OSError, ValueError, KeyError, TypeError, CheckpointError):
        return None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return None
    return Crafted(delta, texts, meta)


def check_fits(crafted: Crafted, dataset: ImageTextDataset) -> bool:
    """Whether cached examples belong to this split (data identity, caption count, image shape)."""
    if (
        len(crafted.texts) != len(dataset.captions)
        or crafted.meta.get("data") != dataset.describe()
    ):
        return False
    return crafted.delta is None or (
        crafted.delta.shape[0] == len(dataset)
        and crafted.delta.shape[1:] == dataset.load_image(0).shape
    )
