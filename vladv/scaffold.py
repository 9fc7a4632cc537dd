"""``vladv new-plugin``: write a plugin package (pyproject, module, passing test) to start from.

The package is a complete third-party plugin in the spirit of simonw/llm's plugin template: a
``pyproject.toml`` declaring the ``vladv`` entry point, a module implementing one hook with a small
working example of its kind, and a test using :mod:`vladv.testing` that passes both before and
after ``pip install -e``. See docs/plugins.md and docs/hooks.md.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from vladv.errors import VladvError
from vladv.types import KINDS, NAME_PATTERN

PYPROJECT = Template("""\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$summary"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["vladv"]

[project.optional-dependencies]
test = ["pytest"]

# This table is all vladv needs: it loads every entry point of group "vladv".
[project.entry-points.vladv]
$name = "$module"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
pythonpath = ["."]
""")

README = Template("""\
# $dist

$summary: a vladv $kind plugin.

```bash
pip install -e '.[test]'
vladv plugins                 # lists the $kind `$name`
python -m pytest
```

The hook reference is vladv's docs/hooks.md; testing helpers are in `vladv.testing`.
""")

HEADER = Template('''\
"""$dist: $summary (vladv $kind plugin ``$name``)."""

from __future__ import annotations

''')

MODULES = {
    "attack": Template('''\
from dataclasses import dataclass

import torch
import vladv


@dataclass(frozen=True)
class ${cls}Options:
    eps: float = vladv.option(2 / 255, "L-inf radius in [0, 1] pixel space", min=0, max=1)


class $cls(vladv.Attack):
    """One signed-gradient step that lowers each image's similarity to its own captions."""

    modality = "image"

    @property
    def threat_model(self) -> vladv.ThreatModel:
        return vladv.ThreatModel("image", "linf", self.options.eps)

    def perturb(self, backbone: vladv.Backbone, batch: vladv.PairBatch,
                generator: torch.Generator) -> vladv.AttackOutput:
        text_emb = batch.clean_text_embeddings(backbone)
        x = batch.images.detach().clone().requires_grad_(True)
        with self.ctx.autocast():
            own = (backbone.encode_image(x)[batch.txt2img.to(x.device)] * text_emb).sum()
        (grad,) = torch.autograd.grad(own, x)
        adv = (batch.images - self.options.eps * grad.sign()).clamp(0, 1)
        return vladv.AttackOutput(adv.detach(), list(batch.texts))


@vladv.hookimpl
def vladv_attacks():
    yield vladv.AttackSpec(
        name="$name",
        summary="$summary",
        options=${cls}Options,
        factory=$cls,
        modality="image",
    )
'''),
    "defense": Template('''\
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import vladv
from vladv.training import PairSampler, TrainBatch, TrainingOptions, contrastive_loss, train


@dataclass(frozen=True)
class ${cls}Options(TrainingOptions):
    tower: Literal["image", "both"] = vladv.option("image", "the towers to fine-tune")


class $cls(vladv.Defense):
    """Contrastive fine-tuning on clean pairs: replace ``loss_fn`` with your defense's loss."""

    def fit(self, backbone: vladv.Backbone, train_ds: vladv.ImageTextDataset,
            augmenters: Sequence[vladv.Augmenter]) -> vladv.Backbone:
        o = self.options

        def loss_fn(batch: TrainBatch) -> torch.Tensor:
            return contrastive_loss(backbone.encode_image(batch.images),
                                    backbone.encode_text(batch.texts), backbone.logit_scale)

        params = list(backbone.image_tower.parameters())
        if o.tower == "both":
            params += list(backbone.text_tower.parameters())
        sampler = PairSampler(train_ds, o.batch_size, self.ctx.seed,
                              num_workers=self.ctx.num_workers)
        train(backbone, params, sampler, loss_fn, o.schedule(), self.ctx, self.workdir,
              label="$name")
        return backbone


@vladv.hookimpl
def vladv_defenses():
    yield vladv.DefenseSpec(
        name="$name",
        summary="$summary",
        options=${cls}Options,
        factory=$cls,
    )
'''),
    "augmenter": Template('''\
from dataclasses import dataclass

import vladv


@dataclass(frozen=True)
class ${cls}Options:
    copies: int = vladv.option(1, "extra captions per caption", min=0, max=16)


class $cls(vladv.Augmenter):
    """Extra captions per image: each caption with one word dropped (a 1:N text augmenter)."""

    modality = "text"

    def texts_for(self, dataset: vladv.ImageTextDataset) -> list[list[str]]:
        out = []
        for ids in dataset.img2txt:
            extra = []
            for t in ids:
                words = dataset.captions[t].split()
                for k in range(self.options.copies):
                    drop = (t + k) % len(words) if len(words) > 1 else len(words)
                    extra.append(" ".join(words[:drop] + words[drop + 1:]))
            out.append(extra)
        return out


@vladv.hookimpl
def vladv_augmenters():
    yield vladv.AugmenterSpec(
        name="$name",
        summary="$summary",
        options=${cls}Options,
        factory=$cls,
        modality="text",
    )
'''),
    "backbone": Template('''\
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import vladv
from torch import nn


@dataclass(frozen=True)
class ${cls}Options:
    image_size: int = vladv.option(32, "input resolution", min=8)
    embed_dim: int = vladv.option(32, "embedding size", min=2)
    seed: int = vladv.option(0, "initialization seed")


class _Text(nn.Module):
    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab, dim, mode="mean", padding_idx=0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed(tokens)


class $cls(vladv.Backbone):
    """A small dual encoder: replace the towers and ``tokenize`` with your model's."""

    vocab = 1024
    context = 32

    def __init__(self, o: ${cls}Options):
        super().__init__(o.image_size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                         interpolation="bilinear")
        self.seed = o.seed
        with torch.random.fork_rng(devices=[]):  # seeded weights, global RNG untouched
            torch.manual_seed(o.seed)
            self.visual = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.GELU(),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                        nn.Linear(16, o.embed_dim))
            self.text = _Text(self.vocab, o.embed_dim)
        self.scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), CLIP's initial value

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.context, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [1 + zlib.crc32(w.encode()) % (self.vocab - 1) for w in text.lower().split()]
            out[i, :len(ids[:self.context])] = torch.tensor(ids[:self.context], dtype=torch.long)
        return out

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens.to(self.scale.device))

    @property
    def image_tower(self) -> nn.Module:
        return self.visual

    @property
    def text_tower(self) -> nn.Module:
        return self.text

    @property
    def logit_scale_param(self) -> nn.Parameter:
        return self.scale

    def identity(self) -> dict:
        return {"name": "$name", "seed": self.seed}


@vladv.hookimpl
def vladv_backbones():
    yield vladv.BackboneSpec(
        name="$name",
        summary="$summary",
        options=${cls}Options,
        factory=lambda o, ctx: $cls(o),
    )
'''),
    "dataset": Template('''\
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import vladv
from PIL import Image


@dataclass(frozen=True)
class ${cls}Options:
    root: str = vladv.option("", "folder with train.jsonl / test.jsonl and the images")
    image_size: int = vladv.option(64, "images are resized to this square size", min=8)


class $cls(vladv.ImageTextDataset):
    """One JSON object per line: {"image": "relative/path.png", "captions": ["...", ...]}."""

    name = "$name"

    def __init__(self, o: ${cls}Options, split: str):
        self.root, self.size, self.split = Path(o.root), o.image_size, split
        rows = [json.loads(line) for line in
                (self.root / f"{split}.jsonl").read_text().splitlines() if line.strip()]
        self.files = [r["image"] for r in rows]
        captions, img2txt = [], []
        for r in rows:
            img2txt.append(list(range(len(captions), len(captions) + len(r["captions"]))))
            captions.extend(r["captions"])
        super().__init__(captions, img2txt)

    def load_image(self, index: int) -> torch.Tensor:
        with Image.open(self.root / self.files[index]) as img:
            img = img.convert("RGB").resize((self.size, self.size))
            array = np.asarray(img, dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@vladv.hookimpl
def vladv_datasets():
    yield vladv.DatasetSpec(
        name="$name",
        summary="$summary",
        options=${cls}Options,
        factory=lambda o, ctx, split: $cls(o, split),
    )
'''),
}

TEST_HEADER = Template('''\
"""$name: runs in vladv's tiny test world (vladv.testing); installed or not, same result."""

import pytest
$imports

import $module


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "vladv-home"))  # caches stay in tmp

''')

TEST_IMPORTS = {
    "attack": "from vladv.experiment import run\n"
    "from vladv.testing import registered_plugin, tiny_plugin",
    "augmenter": "from vladv.plugins import get_registry\n"
    "from vladv.testing import registered_plugin, tiny_dataset\n"
    "from vladv.types import Context",
}
DEFAULT_TEST_IMPORTS = (
    "from vladv.experiment import run\n"
    "from vladv.testing import noise_plugin, registered_plugin, tiny_plugin"
)

TESTS = {
    "attack": Template("""
def test_attack_stays_within_eps_and_lowers_recall():
    with registered_plugin(tiny_plugin), registered_plugin($module):
        [rec] = run(backbone="tiny", dataset="tiny", attack="$name", progress=False,
                    output=False, attack_options={"eps": "8/255"})
    m = rec["metrics"]
    assert m["budget"]["max_linf"] <= 8 / 255 + 1e-6
    assert m["adversarial"]["tr_r1"] <= m["clean"]["tr_r1"]
"""),
    "defense": Template("""
def test_defense_trains_and_is_evaluated():
    with (registered_plugin(tiny_plugin), registered_plugin(noise_plugin),
          registered_plugin($module)):
        [rec] = run(backbone="tiny", dataset="tiny", defense="$name", attack="noise",
                    defense_options={"steps": "3", "batch_size": "4"}, progress=False,
                    output=False)
    assert rec["config"]["defense"]["name"] == "$name"
    assert 0 <= rec["metrics"]["adversarial"]["tr_r1"] <= 100
"""),
    "augmenter": Template("""
def test_augmenter_adds_captions_per_image():
    with registered_plugin($module):
        spec = get_registry().get("augmenter", "$name")
    data = tiny_dataset(n_images=3, captions_per_image=2)
    texts = spec.factory(spec.options(copies=2), Context()).texts_for(data)
    assert [len(t) for t in texts] == [4, 4, 4]
    assert all(len(t.split()) == len(data.captions[0].split()) - 1 for t in texts[0])
"""),
    "backbone": Template("""
def test_backbone_runs_clean_and_attacked():
    with (registered_plugin(tiny_plugin), registered_plugin(noise_plugin),
          registered_plugin($module)):
        [rec] = run(backbone="$name", dataset="tiny", attack="noise", progress=False,
                    output=False)
    assert rec["config"]["backbone"]["name"] == "$name"
    assert 0 <= rec["metrics"]["clean"]["tr_r1"] <= 100
"""),
    "dataset": Template("""
def test_dataset_loads_and_runs(tmp_path):
    import json

    from PIL import Image

    for split in ("train", "test"):
        rows = []
        for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
            Image.new("RGB", (40, 40), color).save(tmp_path / f"{split}{i}.png")
            rows.append({"image": f"{split}{i}.png", "captions": [f"picture {i}", f"image {i}"]})
        (tmp_path / f"{split}.jsonl").write_text("\\n".join(json.dumps(r) for r in rows))
    with (registered_plugin(tiny_plugin), registered_plugin(noise_plugin),
          registered_plugin($module)):
        [rec] = run(backbone="tiny", dataset="$name", attack="noise", progress=False,
                    output=False, dataset_options={"root": str(tmp_path), "image_size": "16"})
    assert rec["data"]["images"] == 3 and rec["data"]["texts"] == 6
"""),
}


def _class_name(name: str) -> str:
    return "".join(
        part.capitalize() for part in name.replace("_", "-").replace(".", "-").split("-")
    )


def new_plugin(
    name: str, kind: str, directory: str | Path = ".", summary: str | None = None
) -> Path:
    """Write the package ``vladv-<name>`` under ``directory`` and return its folder.

    It holds ``pyproject.toml`` (entry point ``<name> = "vladv_<name>"``), the module
    ``vladv_<name>/__init__.py`` implementing one ``kind`` and ``tests/test_<name>.py``.
    """
    if kind not in KINDS:
        raise VladvError(f"unknown plugin kind {kind!r}; use one of {', '.join(KINDS)}")
    if not NAME_PATTERN.match(name) or "_" in name or "." in name:
        raise VladvError(
            f"invalid plugin name {name!r}: use lower-case letters, digits and '-' (e.g. my-attack)"
        )
    slug = name.replace("-", "_")
    values = {
        "name": name,
        "imports": TEST_IMPORTS.get(kind, DEFAULT_TEST_IMPORTS),
        "kind": kind,
        "dist": f"vladv-{name}",
        "module": f"vladv_{slug}",
        "cls": _class_name(name),
        "summary": summary or f"The {kind} {name}".replace('"', "'"),
    }
    folder = Path(directory) / values["dist"]
    if folder.exists() and any(folder.iterdir()):
        raise VladvError(f"{folder} already exists and is not empty")
    files = {
        "pyproject.toml": PYPROJECT.substitute(values),
        "README.md": README.substitute(values),
        f"{values['module']}/__init__.py": HEADER.substitute(values)
        + MODULES[kind].substitute(values),
        f"tests/test_{slug}.py": TEST_HEADER.substitute(values) + TESTS[kind].substitute(values),
    }
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
