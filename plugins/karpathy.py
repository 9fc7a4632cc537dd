"""Dataset plugin ``karpathy``: real image-caption data on disk.

Two annotation formats are detected automatically (docs/algorithms.md#data-formats-and-ids):

* ALBEF/SGA list — ``[{"image": "flickr30k-images/1.jpg", "caption": ["...", ...]}, ...]``
  (test/val files: one image per entry), or one pair per entry with ``"caption": "..."`` (ALBEF
  train files: entries are grouped by image path in first-appearance order).
* Karpathy — ``{"images": [{"filename", "filepath"?, "split", "sentences": [{"raw"}, ...]}, ...]}``
  (Flickr30k/COCO Karpathy files, RSICD, RSITMD); entries whose ``split`` matches are kept, and
  ``restval`` joins the train role when ``train_split`` is ``train``.

Ids follow file order exactly as SGA's ``paired_dataset``: images in file order, caption ids
consecutive. Captions are normalized with SGA's ``pre_caption``; duplicates are kept. Images are
streamed from disk (PIL) and resized (shortest side, bicubic) + center-cropped like SGA's loader.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

import vladv
from vladv.errors import DatasetError
from vladv.options import option
from vladv.types import Context, ImageTextDataset

__all__ = [
    "ImageReadError",
    "KarpathyDataset",
    "KarpathyOptions",
    "load_karpathy",
    "pre_caption",
    "preprocess_image",
    "read_annotations",
    "vladv_datasets",
]

_LABEL = "dataset 'karpathy'"
_PUNCT = re.compile(r"([,.'!?\"()*#:;~])")
_SPACES = re.compile(r"\s{2,}")


def pre_caption(caption: str, max_words: int = 30) -> str:
    """SGA/ALBEF caption normalization, character for character (``dataset.py: pre_caption``).

    Lower-case; delete ``,.'!?"()*#:;~``; ``-`` and ``/`` become spaces; ``<person>`` becomes
    ``person``; runs of two or more whitespace characters become one space; strip spaces; keep
    the first ``max_words`` space-separated words.
    """
    caption = _PUNCT.sub("", caption.lower())
    caption = caption.replace("-", " ").replace("/", " ").replace("<person>", "person")
    caption = _SPACES.sub(" ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    if len(words) > max_words:
        caption = " ".join(words[:max_words])
    return caption


def preprocess_image(image: Image.Image, image_size: int) -> torch.Tensor:
    """SGA's test transform: Resize(shortest side, bicubic) → CenterCrop → ToTensor (3, S, S) in
    [0, 1]."""
    image = TF.resize(image.convert("RGB"), image_size, interpolation=InterpolationMode.BICUBIC)
    image = TF.center_crop(image, [image_size, image_size])
    return TF.to_tensor(image)


class ImageReadError(DatasetError):
    """An image file that cannot be decoded (one line even when raised in a DataLoader worker)."""


@dataclass(frozen=True)
class KarpathyOptions:
    """Options of the ``karpathy`` dataset."""

    path: str = option("", "annotation JSON (ALBEF/SGA list or Karpathy 'images' file); required")
    image_root: str = option(
        "", "folder the image paths are relative to (default: the JSON's folder)"
    )
    split: str = option("test", "Karpathy split used for the test role (test, val, ...)")
    train_split: str = option(
        "train", "Karpathy split used for the train role ('train' adds restval)"
    )
    train_path: str = option(
        "",
        "annotation JSON for the train role (default: path; required for "
        "ALBEF/SGA list files, which hold one split each)",
    )
    image_size: int = option(
        224, "images are resized (shortest side, bicubic) and center-cropped to this size", min=1
    )
    max_words: int = option(30, "captions are truncated to this many words (pre_caption)", min=1)
    limit: int = option(0, "keep only the first N images (0 = all)", min=0)


@dataclass
class _Record:
    """One image: its entry index in the JSON, its path relative to image_root, raw captions."""

    entry: int
    path: str
    captions: list[str]


# ----------------------------------------------------------------------------------------------
# Annotation parsing
# ----------------------------------------------------------------------------------------------
def read_annotations(file: str | os.PathLike) -> Any:
    """Load an annotation JSON; every failure is a one-line :class:`DatasetError` naming the
    file."""
    try:
        with open(file, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"{_LABEL}: annotation file not found: {file}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{_LABEL}: {file}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{_LABEL}: {file}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DatasetError(
            f"{_LABEL}: cannot read annotation file {file}: {exc.strerror or exc}"
        ) from None


def _detect_format(data: Any, file: str) -> str:
    if isinstance(data, list):
        return "list"
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        return "karpathy"
    got = "an object without an 'images' list" if isinstance(data, dict) else type(data).__name__
    raise DatasetError(
        f"{_LABEL}: {file}: expected a JSON list (ALBEF/SGA format) or an object "
        f"with an 'images' list (Karpathy format); got {got}"
    )


def _entry_error(file: str, index: int, what: str) -> DatasetError:
    return DatasetError(f"{_LABEL}: {file}: entry {index}: {what}")


def _get_str(entry: dict, key: str, file: str, index: int) -> str:
    if key not in entry:
        raise _entry_error(file, index, f"missing key '{key}'")
    value = entry[key]
    if not isinstance(value, str) or not value:
        raise _entry_error(file, index, f"'{key}' must be a non-empty string; got {value!r:.60}")
    return value


def _parse_list(data: list, file: str) -> list[_Record]:
    """ALBEF/SGA list: one image per entry, or one pair per entry grouped by image path."""
    parsed: list[tuple[int, str, list[str], bool]] = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise _entry_error(
                file,
                i,
                f"expected an object with 'image' and 'caption'; got {type(entry).__name__}",
            )
        path = _get_str(entry, "image", file, i)
        if "caption" not in entry:
            raise _entry_error(file, i, "missing key 'caption'")
        caption = entry["caption"]
        if isinstance(caption, str):
            parsed.append((i, path, [caption], True))
            continue
        if not isinstance(caption, list):
            raise _entry_error(
                file,
                i,
                f"'caption' must be a string or a list of strings; got {type(caption).__name__}",
            )
        if not caption:
            raise _entry_error(file, i, "empty caption list")
        for j, text in enumerate(caption):
            if not isinstance(text, str):
                raise _entry_error(file, i, f"caption {j} is not a string: {text!r:.60}")
        parsed.append((i, path, list(caption), False))
    if not any(pair for *_, pair in parsed):  # test/val file: SGA's one image per entry
        return [_Record(i, path, caps) for i, path, caps, _ in parsed]
    by_path: dict[str, _Record] = {}  # train file: group pairs by image, first appearance order
    for i, path, caps, _ in parsed:
        record = by_path.setdefault(path, _Record(i, path, []))
        record.captions.extend(caps)
    return list(by_path.values())


def _parse_karpathy(data: dict, file: str, wanted: set[str]) -> tuple[list[_Record], Counter]:
    """Karpathy ``images`` list: entries whose split is in ``wanted``, plus counts of all splits."""
    records: list[_Record] = []
    counts: Counter = Counter()
    for i, entry in enumerate(data["images"]):
        if not isinstance(entry, dict):
            raise _entry_error(
                file,
                i,
                f"expected an object with 'filename' and 'sentences'; got {type(entry).__name__}",
            )
        filename = _get_str(entry, "filename", file, i)
        filepath = entry.get("filepath", "")
        if not isinstance(filepath, str):
            raise _entry_error(file, i, f"'filepath' must be a string; got {filepath!r:.60}")
        split = _get_str(entry, "split", file, i)
        if "sentences" not in entry:
            raise _entry_error(file, i, "missing key 'sentences'")
        sentences = entry["sentences"]
        if not isinstance(sentences, list):
            raise _entry_error(
                file, i, f"'sentences' must be a list; got {type(sentences).__name__}"
            )
        if not sentences:
            raise _entry_error(file, i, "empty 'sentences' list")
        captions = []
        for j, sentence in enumerate(sentences):
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if not isinstance(raw, str):
                raise _entry_error(
                    file, i, f"sentence {j} needs a string 'raw'; got {sentence!r:.60}"
                )
            captions.append(raw)
        counts[split] += 1
        if split in wanted:
            records.append(
                _Record(i, os.path.join(filepath, filename) if filepath else filename, captions)
            )
    return records, counts


# ----------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------
class KarpathyDataset(ImageTextDataset):
    """Images streamed from disk with their pre_caption-normalized captions, in file order."""

    def __init__(
        self,
        records: list[_Record],
        *,
        annotation_path: str,
        image_root: str,
        image_size: int = 224,
        max_words: int = 30,
        split: str = "test",
        source_split: str | None = None,
        fmt: str = "karpathy",
    ):
        captions: list[str] = []
        img2txt: list[list[int]] = []
        for record in records:
            img2txt.append(list(range(len(captions), len(captions) + len(record.captions))))
            captions.extend(pre_caption(c, max_words) for c in record.captions)
        super().__init__(captions, img2txt)
        self.annotation_path = str(annotation_path)
        self.image_root = str(image_root)
        self.image_paths = [os.path.join(self.image_root, r.path) for r in records]
        self.entry_indices = [r.entry for r in records]
        self.image_size = image_size
        self.format = fmt
        self.source_split = source_split
        self.name = f"karpathy:{Path(annotation_path).stem}"
        self.split = split
        self._check_files()

    def _check_files(self) -> None:
        root = os.path.normpath(os.path.abspath(self.image_root))
        for k, path in enumerate(self.image_paths):
            full = os.path.normpath(os.path.abspath(path))
            if os.path.commonpath([root, full]) != root:
                raise DatasetError(
                    f"{_LABEL}: {self.annotation_path}: entry {self.entry_indices[k]}: image path "
                    f"{path} resolves outside image_root={self.image_root}; paths must be relative "
                    f"and stay inside it"
                )
        missing = [k for k, p in enumerate(self.image_paths) if not os.path.isfile(p)]
        if missing:
            k = missing[0]
            more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
            raise DatasetError(
                f"{_LABEL}: {self.annotation_path}: entry {self.entry_indices[k]}: "
                f"image not found: {self.image_paths[k]}{more}; image paths are relative to "
                f"image_root={self.image_root}"
            )

    def load_image(self, index: int) -> torch.Tensor:
        path = self.image_paths[index]
        try:
            with Image.open(path) as image:
                return preprocess_image(image, self.image_size)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a data error
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ImageReadError(
                f"{_LABEL}: {self.annotation_path}: entry {self.entry_indices[index]}: cannot read "
                f"image {path}: {reason}"
            ) from None

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            {
                "path": self.annotation_path,
                "format": self.format,
                "source_split": self.source_split,
                "image_size": self.image_size,
            }
        )
        return out


def load_karpathy(options: KarpathyOptions, ctx: Context | None, split: str) -> KarpathyDataset:
    """Factory: the ``split`` role ("train" or "test") of the annotation file(s) in ``options``."""
    if split not in ("train", "test"):
        raise DatasetError(f"{_LABEL}: unknown split role {split!r} (expected train or test)")
    if not options.path or not options.path.strip():
        raise DatasetError(
            f"{_LABEL} needs option path=<annotation JSON>, e.g. "
            f"path=data/flickr30k_test.json or path=RSICD/dataset_rsicd.json"
        )
    if split == "train":
        file, wanted = (options.train_path or options.path), options.train_split
    else:
        file, wanted = options.path, options.split
    data = read_annotations(file)
    fmt = _detect_format(data, file)
    if fmt == "list":
        if split == "train" and not options.train_path:
            raise DatasetError(
                f"{_LABEL}: {file} is an ALBEF/SGA list file holding one split; set "
                f"train_path=<train JSON> (e.g. flickr30k_train.json) for the train role"
            )
        records = _parse_list(data, file)
        source_split = None
        if not records:
            raise DatasetError(f"{_LABEL}: {file}: the list holds no entries")
    else:
        accepted = {wanted} | ({"restval"} if split == "train" and wanted == "train" else set())
        records, counts = _parse_karpathy(data, file, accepted)
        source_split = "+".join(sorted(accepted))
        if not records:
            present = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
            option_name = "train_split" if split == "train" else "split"
            raise DatasetError(
                f"{_LABEL}: {file}: no images with split '{wanted}' "
                f"(splits present: {present}); set {option_name}=..."
            )
    if options.limit > 0:
        records = records[: options.limit]
    image_root = options.image_root or os.path.dirname(os.path.abspath(file))
    return KarpathyDataset(
        records,
        annotation_path=file,
        image_root=image_root,
        image_size=options.image_size,
        max_words=options.max_words,
        split=split,
        source_split=source_split,
        fmt=fmt,
    )


@vladv.hookimpl
def vladv_datasets():
    yield vladv.DatasetSpec(
        name="karpathy",
        summary="Image-caption data on disk: ALBEF/SGA list or Karpathy-split JSON "
        "(Flickr30k, COCO, RSICD, RSITMD)",
        options=KarpathyOptions,
        factory=load_karpathy,
    )
