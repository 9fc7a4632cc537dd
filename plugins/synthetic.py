"""Dataset plugin ``synthetic-aerial``: procedurally generated top-down scenes with five captions
each.

World v2 (docs/world.md). Scenes in the spirit of RSICD (16 scene types) with several independent
attributes — objects of a color, a count, a size and a position, a layout feature (a road, a
river, a lake, the sea, a runway ...), trees and the ground — and five captions per image that
each state their own subset of them. Two domains: ``real`` (the RSICD stand-in: camera effects,
human-style captions) and ``generated`` (the stand-in for a generator's images with
machine-written captions and a rate of image–caption mismatch, as in ARAS400k). Training sets of
either domain or a mix; the test split is real unless asked otherwise and has no near-duplicate
neighbours (every two test images differ in at least ``test_min_distance`` attributes).
Generation is deterministic by seed and byte-identical across processes; the result is cached
under ``VLADV_HOME/datasets/synthetic-aerial`` as safetensors (no pickle).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import vladv
from vladv.cache import build_once, config_hash
from vladv.checkpoints import save_state_dict
from vladv.data import TensorImageDataset
from vladv.errors import DatasetError
from vladv.options import options_to_dict
from vladv_plugins.aerial.captions import captions_for, contradicts
from vladv_plugins.aerial.domains import apply_domain
from vladv_plugins.aerial.render import render
from vladv_plugins.aerial.world import (
    ATTRIBUTES,
    COLORS,
    SCENES,
    Scene,
    attribute_codes,
    mutate_scene,
    sample_scene,
)

NAME = "synthetic-aerial"
GENERATOR_VERSION = 5  # world v2; bump when images or captions change, so caches are rebuilt
SPLITS = {"train": 1, "test": 2}
_ATTR_STREAM, _RENDER_STREAM, _DOMAIN_STREAM, _MISMATCH_STREAM = 0, 1, 2, 3
SCENE_TYPES = tuple(s.key for s in SCENES)
Domain = Literal["real", "generated", "mixed"]


@dataclass(frozen=True)
class SyntheticOptions:
    train_size: int = vladv.option(20000, "number of training images", min=1, max=1_000_000)
    test_size: int = vladv.option(1000, "number of test images", min=1, max=20_000)
    image_size: int = vladv.option(64, "image side in pixels", min=16, max=512)
    seed: int = vladv.option(0, "generator seed (train and test use disjoint streams)", min=0)
    captions_per_image: int = vladv.option(5, "distinct captions per image", min=1, max=8)
    train_domain: Domain = vladv.option("real", "training images: real, generated or mixed")
    test_domain: Literal["real", "generated"] = vladv.option(
        "real", "test images: real or generated"
    )
    mix_ratio: float = vladv.option(
        3.0, "mixed training set: generated images per real image", min=0, max=100
    )
    mismatch_rate: float = vladv.option(
        0.1,
        "generated images whose content contradicts their "
        "captions (a missing, extra or recolored object)",
        min=0,
        max=1,
    )
    test_min_distance: int = vladv.option(
        3,
        "test images differ in at least this many captioned "
        "attributes (2 or more: no near-duplicate neighbours)",
        min=0,
        max=4,
    )


def _check_split(split: str) -> int:
    if split not in SPLITS:
        raise DatasetError(f"dataset '{NAME}': unknown split {split!r} (accepted: train, test)")
    return SPLITS[split]


def _size(options: SyntheticOptions, split: str) -> int:
    return options.train_size if split == "train" else options.test_size


def _rng(options: SyntheticOptions, split: str, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([options.seed, _check_split(split), index, stream, 0x5EED])


def image_domains(options: SyntheticOptions, split: str) -> list[str]:
    """The domain of every image of ``split`` (a mixed set interleaves 1 real : mix_ratio
    generated)."""
    n = _size(options, split)
    if split == "test":
        return [options.test_domain] * n
    if options.train_domain != "mixed":
        return [options.train_domain] * n
    period = 1.0 + options.mix_ratio
    return ["real" if int((i + 1) / period) > int(i / period) else "generated" for i in range(n)]


def _draw_scenes(options: SyntheticOptions, split: str) -> list[tuple[int, Scene]]:
    """(draw index, scene) of every image; the test split rejects near-duplicate neighbours."""
    n = _size(options, split)
    if split == "train" or options.test_min_distance <= 1:
        return [(i, sample_scene(_rng(options, split, i, _ATTR_STREAM))) for i in range(n)]
    need = len(ATTRIBUTES) - options.test_min_distance + 1  # equal attributes that are too many
    kept: list[tuple[int, Scene]] = []
    table = np.empty((n, len(ATTRIBUTES)), dtype=np.int64)
    ids: dict[Any, int] = {}
    draw = 0
    while len(kept) < n:
        if draw > 200 * n + 10_000:
            raise DatasetError(
                f"dataset '{NAME}': cannot draw {n} test images that differ in "
                f"{options.test_min_distance} attributes; lower test_size or "
                f"test_min_distance"
            )
        s = sample_scene(_rng(options, split, draw, _ATTR_STREAM))
        row = attribute_codes([s], table=ids)[0][0]
        if not kept or int((table[: len(kept)] == row).sum(axis=1).max()) < need:
            table[len(kept)] = row
            kept.append((draw, s))
        draw += 1
    return kept


def scene_records(options: SyntheticOptions, split: str) -> tuple[list[Scene], list[list[str]]]:
    """The attribute record and the captions of every image of ``split`` (no rendering)."""
    scenes, captions = [], []
    for (draw, s), domain in zip(_draw_scenes(options, split), image_domains(options, split)):
        rng = _rng(options, split, draw, _ATTR_STREAM)
        sample_scene(rng)  # the captions continue the stream that drew the scene
        scenes.append(s)
        captions.append(
            captions_for(s, rng, options.captions_per_image, machine=domain == "generated")
        )
    return scenes, captions


def drawn_scenes(options: SyntheticOptions, split: str, scenes: list[Scene]) -> list[Scene]:
    """What each image shows: its captioned scene, or for a mismatched generated image another."""
    out = []
    for i, (s, domain) in enumerate(zip(scenes, image_domains(options, split))):
        rng = _rng(options, split, i, _MISMATCH_STREAM)
        out.append(
            mutate_scene(s, rng)
            if domain == "generated" and rng.random() < options.mismatch_rate
            else s
        )
    return out


PARALLEL_MIN_IMAGES = 2048  # below this, worker start-up costs more than it saves


def _render_range(
    options: SyntheticOptions, split: str, start: int, shown: list[Scene], domains: list[str]
) -> np.ndarray:
    """uint8 images (n, S, S, 3) of images ``start``, ``start + 1``, … (each from its own
    seeded streams, so a range renders the same bytes in any process)."""
    size = options.image_size
    out = np.empty((len(shown), size, size, 3), dtype=np.uint8)
    for j, (s, domain) in enumerate(zip(shown, domains)):
        i = start + j
        img = render(s, _rng(options, split, i, _RENDER_STREAM), size)
        out[j] = apply_domain(img, domain, _rng(options, split, i, _DOMAIN_STREAM))
    return out


def render_workers(n: int) -> int:
    """Processes to render ``n`` images with: torch's thread count (what vladv was given, e.g.
    ``OMP_NUM_THREADS``); one below :data:`PARALLEL_MIN_IMAGES` images, and one where processes
    cannot be forked (a spawned worker would re-run the user's script)."""
    import multiprocessing

    if n < PARALLEL_MIN_IMAGES or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, torch.get_num_threads())


def render_images(
    options: SyntheticOptions, split: str, scenes: list[Scene], workers: int | None = None
) -> torch.Tensor:
    """uint8 images (N, 3, S, S) of the captioned ``scenes``, in each image's domain.

    Rendering is pure NumPy/PIL per image, so large splits are drawn by ``workers`` processes
    (default :func:`render_workers`) in contiguous ranges; the bytes do not depend on it.
    """
    shown = drawn_scenes(options, split, scenes)
    domains = image_domains(options, split)
    workers = render_workers(len(scenes)) if workers is None else max(1, workers)
    if workers == 1:
        out = _render_range(options, split, 0, shown, domains)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        chunk = -(-len(shown) // (4 * workers))  # a few ranges per worker evens out the load
        starts = range(0, len(shown), chunk)
        # fork: the workers run NumPy/PIL only (never torch, whose thread pool a fork would
        # not carry), and unlike spawn it does not re-import the user's __main__
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            ranges = [
                pool.submit(
                    _render_range, options, split, a, shown[a : a + chunk], domains[a : a + chunk]
                )
                for a in starts
            ]
            out = np.concatenate([r.result() for r in ranges])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def scene_captions(options: SyntheticOptions, split: str) -> list[list[str]]:
    """Each image's captions of ``split`` (no rendering): the spec's ``captions`` reader."""
    return scene_records(options, split)[1]


def caption_corpus(options: SyntheticOptions | None = None) -> list[str]:
    """All captions of the train split (in dataset order), e.g. to train a masked language model."""
    _, captions = scene_records(options or SyntheticOptions(), "train")
    return [c for caps in captions for c in caps]


def generate(
    options: SyntheticOptions, split: str
) -> tuple[torch.Tensor, list[list[str]], list[Scene]]:
    """Images, captions and attribute records of ``split``, generated from scratch."""
    scenes, captions = scene_records(options, split)
    return render_images(options, split, scenes), captions, scenes


class SyntheticAerialDataset(TensorImageDataset):
    """The generated split; ``scenes`` holds the attribute record behind each image."""

    def __init__(
        self,
        images: torch.Tensor,
        captions: list[list[str]],
        scenes: list[Scene],
        split: str,
        options: SyntheticOptions,
    ):
        super().__init__(images, captions, name=NAME, split=split)
        self.scenes = scenes
        self.options = options

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["options"] = options_to_dict(self.options)
        out["generator_version"] = GENERATOR_VERSION
        out["domain"] = (
            self.options.test_domain if self.split == "test" else self.options.train_domain
        )
        return out

    @property
    def domains(self) -> list[str]:
        """The domain of each image ("real" or "generated")."""
        return image_domains(self.options, self.split)

    @property
    def color_words(self) -> tuple[str, ...]:
        """The object colors the captions name (``caption_quality``'s color accuracy)."""
        return tuple(COLORS)

    @property
    def shown_scenes(self) -> list[Scene]:
        """What each image shows (differs from ``scenes`` for mismatched generated images)."""
        return drawn_scenes(self.options, self.split, self.scenes)

    def contradictions(self, texts: list[tuple[int, str]]) -> list[bool]:
        """For each (image index, caption): whether the caption names an object color, count,
        size or tree amount that the image does not show (``captions.contradicts``; the
        ``wrong`` share of ``caption_quality``)."""
        shown = self.shown_scenes
        return [contradicts(shown[i], t) for i, t in texts]

    def pair_attributes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(what each image shows, what its captions state) as integer attribute codes, each
        (N, len(ATTRIBUTES)); equal codes mean equal values, so the Hamming distance between a
        row of the first and a row of the second is the images' attribute distance."""
        shown, stated = attribute_codes(self.shown_scenes, self.scenes)
        return torch.from_numpy(shown), torch.from_numpy(stated)


def cache_path(options: SyntheticOptions, ctx: vladv.Context, split: str) -> Path:
    key = config_hash(
        {
            "name": NAME,
            "version": GENERATOR_VERSION,
            "split": split,
            "options": options_to_dict(options),
        }
    )
    return ctx.cache_dir("datasets", NAME) / f"{split}-{key}.safetensors"


def _save(
    path: Path,
    images: torch.Tensor,
    captions: list[list[str]],
    scenes: list[Scene],
    options: SyntheticOptions,
) -> None:
    meta = {
        "captions": json.dumps(captions),
        "options": json.dumps(options_to_dict(options)),
        "scenes": json.dumps([dataclasses.astuple(s) for s in scenes]),
        "version": str(GENERATOR_VERSION),
    }
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


def load_synthetic(
    options: SyntheticOptions, ctx: vladv.Context | None, split: str
) -> SyntheticAerialDataset:
    """The ``split`` ("train" or "test") of synthetic-aerial, from the cache or generated."""
    _check_split(split)
    ctx = ctx or vladv.Context()
    path = cache_path(options, ctx, split)

    def build() -> tuple[torch.Tensor, list[list[str]], list[Scene]]:
        made = generate(options, split)
        _save(path, *made, options)
        return made

    images, captions, scenes = build_once(
        path, lambda: _load(path) if path.is_file() else None, build
    )
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
        summary="procedurally generated aerial scenes (world v2: real and generated domains, "
        "5 captions each); offline",
        options=SyntheticOptions,
        factory=load_synthetic,
        prepare=prepare_synthetic,
        captions=scene_captions,
        version=GENERATOR_VERSION,
    )
