"""Dataset plugin ``synthetic-aerial``: procedurally generated top-down scenes with five captions each.

Scenes in the spirit of RSICD (farmland, forest, river, lake, beach, desert, dense and sparse
residential, industrial, storage tanks, parking, airport, bridge, playground, port, railway
station) with objects of a color, a count and a position, and a layout feature (a road, a river,
a lake, the sea, a runway ...). Images carry exactly what the captions state. Generation is
deterministic by seed, train and test are disjoint draws, and the result is cached under
``VLADV_HOME/datasets/synthetic-aerial`` as safetensors (no pickle).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from vladv_plugins.synthetic_captions import captions_for
from vladv_plugins.synthetic_render import render
from vladv_plugins.synthetic_world import SCENES, Scene, sample_scene

import vladv
from vladv.cache import config_hash
from vladv.checkpoints import save_state_dict
from vladv.data import TensorImageDataset
from vladv.errors import DatasetError
from vladv.options import options_to_dict

NAME = "synthetic-aerial"
GENERATOR_VERSION = 3  # bump when images or captions change, so caches are rebuilt
SPLITS = {"train": 1, "test": 2}
_ATTR_STREAM, _RENDER_STREAM = 0, 1
SCENE_TYPES = tuple(s.key for s in SCENES)


@dataclass(frozen=True)
class SyntheticOptions:
    train_size: int = vladv.option(5000, "number of training images", min=1, max=1_000_000)
    test_size: int = vladv.option(500, "number of test images", min=1, max=1_000_000)
    image_size: int = vladv.option(64, "image side in pixels", min=16, max=512)
    seed: int = vladv.option(0, "generator seed (train and test use disjoint streams)", min=0)
    captions_per_image: int = vladv.option(5, "distinct captions per image", min=1, max=8)


def _check_split(split: str) -> int:
    if split not in SPLITS:
        raise DatasetError(f"dataset '{NAME}': unknown split {split!r} (accepted: train, test)")
    return SPLITS[split]


def _size(options: SyntheticOptions, split: str) -> int:
    return options.train_size if split == "train" else options.test_size


def _rng(options: SyntheticOptions, split: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([options.seed, _check_split(split), index, stream, 0x5EED])


def scene_records(options: SyntheticOptions, split: str) -> tuple[list[Scene], list[list[str]]]:
    """The attribute record and the captions of every image of ``split`` (no rendering)."""
    scenes, captions = [], []
    for i in range(_size(options, split)):
        rng = _rng(options, split, i, _ATTR_STREAM)
        s = sample_scene(rng)
        scenes.append(s)
        captions.append(captions_for(s, rng, options.captions_per_image))
    return scenes, captions


def render_images(options: SyntheticOptions, split: str, scenes: list[Scene]) -> torch.Tensor:
    """uint8 images (N, 3, S, S) of ``scenes``."""
    size = options.image_size
    out = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
    for i, s in enumerate(scenes):
        out[i] = render(s, _rng(options, split, i, _RENDER_STREAM), size)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def caption_corpus(options: SyntheticOptions | None = None) -> list[str]:
    """All captions of the train split (in dataset order), e.g. to train a masked language model."""
    _, captions = scene_records(options or SyntheticOptions(), "train")
    return [c for caps in captions for c in caps]


def generate(options: SyntheticOptions, split: str) -> tuple[torch.Tensor, list[list[str]], list[Scene]]:
    """Images, captions and attribute records of ``split``, generated from scratch."""
    scenes, captions = scene_records(options, split)
    return render_images(options, split, scenes), captions, scenes


class SyntheticAerialDataset(TensorImageDataset):
    """The generated split; ``scenes`` holds the attribute record behind each image."""

    def __init__(self, images: torch.Tensor, captions: list[list[str]], scenes: list[Scene],
                 split: str, options: SyntheticOptions):
        super().__init__(images, captions, name=NAME, split=split)
        self.scenes = scenes
        self.options = options

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["options"] = options_to_dict(self.options)
        return out


def cache_path(options: SyntheticOptions, ctx: vladv.Context, split: str) -> Path:
    key = config_hash({"name": NAME, "version": GENERATOR_VERSION, "split": split,
                       "options": options_to_dict(options)})
    return ctx.cache_dir("datasets", NAME) / f"{split}-{key}.safetensors"


def _save(path: Path, images: torch.Tensor, captions: list[list[str]], scenes: list[Scene],
          options: SyntheticOptions) -> None:
    meta = {"captions": json.dumps(captions), "options": json.dumps(options_to_dict(options)),
            "scenes": json.dumps([dataclasses.astuple(s) for s in scenes]),
            "version": str(GENERATOR_VERSION)}
    save_state_dict({"images": images}, path, meta)


def _load(path: Path) -> tuple[torch.Tensor, list[list[str]], list[Scene]] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            images = f.get_tensor("images")
        captions = json.loads(meta["captions"])
        scenes = [Scene(*row) for row in json.loads(meta["scenes"])]
    except Exception:  # noqa: BLE001 - a broken cache file is simply regenerated
        return None
    if images.dtype != torch.uint8 or not len(captions) == images.shape[0] == len(scenes):
        return None
    return images, captions, scenes


def load_synthetic(options: SyntheticOptions, ctx: vladv.Context | None, split: str) -> SyntheticAerialDataset:
    """The ``split`` ("train" or "test") of synthetic-aerial, from the cache or generated."""
    _check_split(split)
    ctx = ctx or vladv.Context()
    path = cache_path(options, ctx, split)
    loaded = _load(path) if path.is_file() else None
    if loaded is None:
        loaded = generate(options, split)
        _save(path, *loaded, options)
    images, captions, scenes = loaded
    return SyntheticAerialDataset(images, captions, scenes, split, options)


def prepare_synthetic(options: SyntheticOptions, ctx: vladv.Context, force: bool = False) -> None:
    """Generate and cache both splits ahead of time (``vladv pretrain``; cached data is
    deterministic, so ``force`` has nothing to rebuild)."""
    for split in SPLITS:
        load_synthetic(options, ctx, split)


@vladv.hookimpl
def vladv_datasets():
    yield vladv.DatasetSpec(
        name=NAME,
        summary="procedurally generated aerial scenes (16 scene types) with 5 captions each; offline",
        options=SyntheticOptions,
        factory=load_synthetic,
        prepare=prepare_synthetic,
    )
