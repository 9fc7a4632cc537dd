"""Tests of the `karpathy` dataset plugin (ALBEF/SGA list and Karpathy JSON on disk)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from vladv.data import pair_loader
from vladv.errors import DatasetError
from vladv.options import resolve_options
from vladv.types import Context, DatasetSpec, PairBatch
from vladv_plugins import karpathy
from vladv_plugins.karpathy import KarpathyOptions, load_karpathy, pre_caption

CTX = Context()


def _image(path: Path, size=(40, 30), color=(200, 30, 60), fmt=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)


def _json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _load(role="test", **opts):
    return load_karpathy(resolve_options("dataset 'karpathy'", KarpathyOptions, opts), CTX, role)


def _caps(prefix: str, n: int) -> list[str]:
    return [f"{prefix} caption {k}." for k in range(n)]


@pytest.fixture
def albef(tmp_path):
    """ALBEF/SGA test list: 3 images with 5, 6, 5 captions (COCO-like) under flickr30k-images/."""
    counts = [5, 6, 5]
    data = []
    for i, n in enumerate(counts):
        rel = f"flickr30k-images/{i}.{'jpg' if i % 2 else 'png'}"
        _image(tmp_path / rel, size=(40 + 10 * i, 30), color=(50 * i, 100, 150))
        data.append({"image": rel, "caption": _caps(f"Image-{i}", n)})
    return _json(tmp_path / "flickr30k_test.json", data), counts


@pytest.fixture
def kfile(tmp_path):
    """Karpathy file (RSICD-like): splits train/val/test/restval, filepath on some entries."""
    root = tmp_path / "imgs"
    entries = []
    spec = [("train", 5), ("test", 6), ("restval", 5), ("val", 5), ("test", 5), ("train", 6)]
    for i, (split, n) in enumerate(spec):
        entry = {
            "filename": f"scene_{i}.jpg",
            "split": split,
            "imgid": i,
            "sentences": [{"raw": f"There is a Scene {i}, number {k} ."} for k in range(n)],
        }
        if i % 2:
            entry["filepath"] = "sub"
            _image(root / "sub" / f"scene_{i}.jpg")
        else:
            _image(root / f"scene_{i}.jpg")
        entries.append(entry)
    entries[4]["sentences"][1] = dict(entries[4]["sentences"][0])  # a duplicate caption, kept
    return _json(tmp_path / "dataset_rsicd.json", {"images": entries, "dataset": "rsicd"}), root


# ------------------------------------------------------------------------------------------------
def test_pre_caption_matches_sga():
    assert pre_caption("A Man's dog, running!  Fast.") == "a mans dog running fast"
    assert (
        pre_caption('  a well-known t-shirt/hat (red) "x" *#:;~? ')
        == "a well known t shirt hat red x"
    )
    assert pre_caption("two   spaces\t\tand\n\nnew lines\n") == "two spaces and new lines"
    assert pre_caption("A <PERSON> sits") == "a person sits"
    assert (
        pre_caption("many green trees are around a church .")
        == "many green trees are around a church"
    )
    assert pre_caption(" ".join(f"w{k}" for k in range(40))) == " ".join(f"w{k}" for k in range(30))
    assert pre_caption("a b c d", max_words=2) == "a b"
    assert pre_caption("...") == ""
    # single non-space whitespace is not collapsed (SGA parity: only runs of 2+ are)
    assert pre_caption("a\tb") == "a\tb"


def test_list_ids_follow_file_order(albef):
    path, counts = albef
    ds = _load(path=str(path))
    assert len(ds) == 3 and len(ds.captions) == sum(counts) == 16
    assert ds.img2txt == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]
    assert ds.txt2img == [0] * 5 + [1] * 6 + [2] * 5
    assert ds.captions[5] == "image 1 caption 0" and ds.captions[10] == "image 1 caption 5"
    assert ds.name == "karpathy:flickr30k_test" and ds.split == "test"
    assert ds.image_paths[1] == str(path.parent / "flickr30k-images" / "1.jpg")
    d = ds.describe()
    assert d["path"] == str(path) and d["format"] == "list" and d["texts"] == 16


def test_image_resize_center_crop(albef, tmp_path):
    path, _ = albef
    ds = _load(path=str(path), image_size=24)
    for i in range(len(ds)):
        img, idx = ds[i]
        assert idx == i and img.shape == (3, 24, 24) and img.dtype == torch.float32
        assert 0.0 <= img.min() and img.max() <= 1.0
    # Resize(shortest side) + center crop: a left/right split image keeps both halves at the sides
    im = Image.new("RGB", (60, 20), (255, 0, 0))
    im.paste((0, 0, 255), (30, 0, 60, 20))
    out = karpathy.preprocess_image(im, 10)
    assert out.shape == (3, 10, 10)
    assert out[0, 5, 0] > 0.9 and out[2, 5, 9] > 0.9
    # grayscale and RGBA files come out as 3 channels
    Image.new("L", (16, 16), 128).save(tmp_path / "flickr30k-images" / "0.png")
    assert _load(path=str(path), image_size=8).load_image(0).shape == (3, 8, 8)


def test_karpathy_split_selection_and_restval(kfile):
    path, root = kfile
    test = _load(path=str(path), image_root=str(root))
    assert test.entry_indices == [1, 4] and test.split == "test"
    assert test.img2txt == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10]]
    assert test.captions[6] == test.captions[7] == "there is a scene 4 number 0"  # duplicates kept
    assert test.image_paths[0] == str(root / "sub" / "scene_1.jpg")
    assert test.image_paths[1] == str(root / "scene_4.jpg")
    assert test.describe()["source_split"] == "test"

    train = _load("train", path=str(path), image_root=str(root))
    assert train.entry_indices == [0, 2, 5] and train.split == "train"  # restval joins train
    assert train.txt2img == [0] * 5 + [1] * 5 + [2] * 6
    assert train.describe()["source_split"] == "restval+train"

    val = _load(path=str(path), image_root=str(root), split="val")
    assert val.entry_indices == [3]
    only_rest = _load("train", path=str(path), image_root=str(root), train_split="restval")
    assert only_rest.entry_indices == [2]
    # a separate train file may be given for the Karpathy format too
    assert _load(
        "train", path="unused.json", train_path=str(path), image_root=str(root)
    ).entry_indices == [0, 2, 5]


def test_karpathy_unknown_split_lists_present(kfile):
    path, root = kfile
    with pytest.raises(DatasetError, match=r"no images with split 'tset'.*restval 1, test 2"):
        _load(path=str(path), image_root=str(root), split="tset")


def test_list_train_file_groups_pairs(tmp_path, albef):
    path, _ = albef
    pairs = [
        ("flickr30k-images/1.jpg", "B one"),
        ("flickr30k-images/0.png", "A one"),
        ("flickr30k-images/1.jpg", "B two"),
        ("flickr30k-images/2.png", "C one"),
        ("flickr30k-images/0.png", "A two"),
        ("flickr30k-images/1.jpg", "B three"),
    ]
    train = _json(
        tmp_path / "flickr30k_train.json",
        [{"image": p, "caption": c, "image_id": p.split("/")[1]} for p, c in pairs],
    )
    ds = _load("train", path=str(path), train_path=str(train))
    assert ds.split == "train" and ds.name == "karpathy:flickr30k_train"
    assert [Path(p).name for p in ds.image_paths] == ["1.jpg", "0.png", "2.png"]
    assert ds.entry_indices == [0, 1, 3]
    assert ds.captions == ["b one", "b two", "b three", "a one", "a two", "c one"]
    assert ds.img2txt == [[0, 1, 2], [3, 4], [5]] and ds.txt2img == [0, 0, 0, 1, 1, 2]


def test_list_train_role_needs_train_path(albef):
    path, _ = albef
    with pytest.raises(DatasetError, match=r"flickr30k_test\.json.*train_path="):
        _load("train", path=str(path))


def test_pair_loader_with_workers(albef):
    path, counts = albef
    ds = _load(path=str(path), image_size=16)
    batches = list(pair_loader(ds, batch_size=2, num_workers=2))
    assert len(batches) == 2 and all(isinstance(b, PairBatch) for b in batches)
    b0, b1 = batches
    assert b0.images.shape == (2, 3, 16, 16) and b1.images.shape == (1, 3, 16, 16)
    assert b0.image_ids.tolist() == [0, 1] and b1.image_ids.tolist() == [2]
    assert b0.text_ids.tolist() == list(range(11)) and b1.text_ids.tolist() == list(range(11, 16))
    assert b0.txt2img.tolist() == [0] * 5 + [1] * 6 and b1.txt2img.tolist() == [0] * 5
    assert b0.texts == ds.captions[:11] and b1.texts == ds.captions[11:]


def test_limit(kfile, albef):
    path, root = kfile
    ds = _load("train", path=str(path), image_root=str(root), limit=2)
    assert ds.entry_indices == [0, 2] and ds.img2txt == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    lpath, _ = albef
    assert len(_load(path=str(lpath), limit=1)) == 1
    assert len(_load(path=str(lpath), limit=99)) == 3


def test_missing_image_only_checked_for_selected(kfile):
    path, root = kfile
    (root / "scene_3.jpg").unlink(missing_ok=True)
    (root / "sub" / "scene_3.jpg").unlink()  # a val image: the test role does not need it
    _load(path=str(path), image_root=str(root))
    with pytest.raises(DatasetError) as err:
        _load(path=str(path), image_root=str(root), split="val")
    msg = str(err.value)
    assert "dataset_rsicd.json" in msg and "entry 3" in msg and "scene_3.jpg" in msg
    assert "\n" not in msg


def test_missing_image_default_root(albef):
    path, _ = albef
    (path.parent / "flickr30k-images" / "1.jpg").unlink()
    (path.parent / "flickr30k-images" / "2.png").unlink()
    with pytest.raises(
        DatasetError,
        match=r"flickr30k_test\.json: entry 1: image not found: "
        r".*1\.jpg \(and 1 more missing\)",
    ):
        _load(path=str(path))


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_at_load_time(albef, workers):
    path, _ = albef
    (path.parent / "flickr30k-images" / "2.png").write_bytes(b"not an image at all")
    ds = _load(path=str(path), image_size=8)
    with pytest.raises(DatasetError) as err:
        list(pair_loader(ds, batch_size=1, num_workers=workers))
    msg = str(err.value)
    assert "flickr30k_test.json" in msg and "entry 2" in msg and "2.png" in msg
    assert "\n" not in msg and "Traceback" not in msg


MALFORMED = {
    "json_syntax": ('[{"image": "a.png",\n "caption": ["x"],}]', r"invalid JSON at line 2, column"),
    "top_level": ('"just a string"', r"expected a JSON list .* got str"),
    "dict_no_images": ('{"annotations": []}', r"object without an 'images' list"),
    "empty_list": ("[]", r"holds no entries"),
    "entry_not_object": (
        '[{"image": "a.png", "caption": ["x"]}, 3]',
        r"entry 1: expected an object",
    ),
    "missing_image": (
        '[{"image": "a.png", "caption": ["x"]}, {"caption": ["y"]}]',
        r"entry 1: missing key 'image'",
    ),
    "missing_caption": ('[{"image": "a.png"}]', r"entry 0: missing key 'caption'"),
    "empty_captions": (
        '[{"image": "a.png", "caption": ["x"]}, {"image": "a.png", "caption": []}]',
        r"entry 1: empty caption list",
    ),
    "non_string_caption": (
        '[{"image": "a.png", "caption": ["x", 5]}]',
        r"entry 0: caption 1 is not a string",
    ),
    "caption_number": (
        '[{"image": "a.png", "caption": 7}]',
        r"entry 0: 'caption' must be a string",
    ),
    "image_not_str": ('[{"image": 12, "caption": ["x"]}]', r"entry 0: 'image' must be a non-empty"),
    "k_missing_filename": (
        '{"images": [{"split": "test", "sentences": [{"raw": "x"}]}]}',
        r"entry 0: missing key 'filename'",
    ),
    "k_missing_sentences": (
        '{"images": [{"filename": "a.png", "split": "test"}]}',
        r"entry 0: missing key 'sentences'",
    ),
    "k_missing_split": (
        '{"images": [{"filename": "a.png", "sentences": [{"raw": "x"}]}]}',
        r"entry 0: missing key 'split'",
    ),
    "k_empty_sentences": (
        '{"images": [{"filename": "a.png", "split": "test", "sentences": []}]}',
        r"entry 0: empty 'sentences' list",
    ),
    "k_raw_not_str": (
        '{"images": [{"filename": "a.png", "split": "test", '
        '"sentences": [{"raw": "x"}, {"raw": null}]}]}',
        r"entry 0: sentence 1",
    ),
    "k_sentence_no_raw": (
        '{"images": [{"filename": "a.png", "split": "test", "sentences": [{"tokens": ["x"]}]}]}',
        r"entry 0: sentence 0",
    ),
    "k_entry_not_object": ('{"images": [[]]}', r"entry 0: expected an object"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_annotations(tmp_path, case):
    text, pattern = MALFORMED[case]
    _image(tmp_path / "a.png")
    path = tmp_path / f"bad_{case}.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=pattern) as err:
        _load(path=str(path))
    msg = str(err.value)
    assert f"bad_{case}.json" in msg and "\n" not in msg


def test_path_errors(tmp_path):
    for opts in ({}, {"path": "  "}):
        with pytest.raises(DatasetError, match=r"needs option path=") as err:
            _load(**opts)
        assert "\n" not in str(err.value)
    with pytest.raises(DatasetError, match=r"annotation file not found: .*nope\.json"):
        _load(path=str(tmp_path / "nope.json"))
    with pytest.raises(DatasetError, match=r"cannot read annotation file"):
        _load(path=str(tmp_path))
    (tmp_path / "latin1.json").write_bytes(b'[{"image": "\xe9"}]')
    with pytest.raises(DatasetError, match=r"latin1\.json: not UTF-8"):
        _load(path=str(tmp_path / "latin1.json"))
    with pytest.raises(DatasetError, match=r"split role"):
        load_karpathy(KarpathyOptions(path="x.json"), CTX, "val")


def test_registered_spec():
    (spec,) = list(karpathy.vladv_datasets())
    assert isinstance(spec, DatasetSpec) and spec.name == "karpathy"
    assert spec.options is KarpathyOptions and spec.factory is load_karpathy
    opts = resolve_options(
        "dataset 'karpathy'", KarpathyOptions, {"image_size": "32", "limit": "5"}
    )
    assert (opts.image_size, opts.limit, opts.max_words, opts.split) == (32, 5, 30, "test")
