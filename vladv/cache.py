"""VLADV_HOME and content-addressed artifacts (pretrained models, defended checkpoints, pools)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from vladv.errors import StorageError, os_error_message


def vladv_home() -> Path:
    """``$VLADV_HOME``, else ``$XDG_CACHE_HOME/vladv``, else ``~/.cache/vladv``."""
    env = os.environ.get("VLADV_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vladv"


def ensure_dir(path: str | Path, what: str = "folder") -> Path:
    """Create the folder ``path`` (and its parents); a one-line StorageError if impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(os_error_message(exc, f"create the {what}", path)) from None
    return path


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace variation) for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any, length: int = 16) -> str:
    """A short sha256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def file_sha256(path: str | Path, length: int = 16) -> str:
    """A short sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def parameters_sha256(module: Any, length: int = 16) -> str:
    """A short sha256 of a module's parameters and buffers (names, dtypes, shapes and bytes, in
    ``state_dict`` order): two records with the same value evaluated bit-identical weights."""
    import torch

    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:length]


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a unique temporary file and a rename: readers never see
    half a file, concurrent writers never share a temporary file, and a failure (a file in the
    way, no permission, a full disk) is a one-line StorageError that leaves ``path`` as it was."""
    path = Path(path)
    ensure_dir(path.parent)
    if path.is_dir():
        raise StorageError(f"cannot write {path}: it is a folder")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(os_error_message(exc, "write", path)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextlib.contextmanager
def build_lock(target: str | Path, notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the exclusive right to build ``target`` (a model, a dataset, crafted examples) among
    the processes sharing this VLADV_HOME: a lock file ``<target>.lock`` beside it.

    A process that finds the lock taken says so through ``notify`` and waits; on entering, check
    the cache again — the holder has usually just built ``target``. So two runs that need the same
    artifact (a grid split over processes, a transfer experiment beside a grid) build it once.
    Not taken under torch.distributed, whose ranks build together (filelock, as the Hugging Face
    hub uses it).
    """
    from filelock import FileLock, Timeout

    from vladv.distributed import is_distributed

    if is_distributed():
        yield
        return
    target = Path(target)
    ensure_dir(target.parent, "cache folder")
    lock = FileLock(str(target) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if notify is not None:
            notify(f"waiting for another process that is building {target.name}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


T = TypeVar("T")


def build_once(
    target: str | Path,
    load: Callable[[], T | None],
    build: Callable[[], T],
    notify: Callable[[str], None] | None = None,
    prebuilt: bool = False,
    prebuilt_name: str | None = None,
) -> T:
    """``load()`` the cached artifact at ``target``, else ``build()`` it under
    :func:`build_lock` — loading again once the lock is ours, since the process we waited for
    has usually just built it. ``load`` returns None when there is nothing usable (or when the
    caller forces a rebuild). With ``prebuilt`` (pass ``not force``), a copy of ``target`` that
    ships with vladv (:func:`seed_prebuilt`; shipped as ``prebuilt_name``, default the target's
    own name) is put in the cache instead of building it."""
    got = load()
    if got is not None:
        return got
    with build_lock(target, notify):
        got = load()
        if got is None and prebuilt and seed_prebuilt(target, notify, prebuilt_name):
            got = load()
        return got if got is not None else build()


PREBUILT_DIR = Path(__file__).with_name("prebuilt")
"""Artifacts that ship with vladv under their cache names (docs/world.md#prebuilt-models): the
default embedded models, built by vladv's own recipe; ``MANIFEST.json`` lists each one's sha256
and how it was built."""


PREBUILT_MAT_RUN: dict[str, Any] = {
    "backbone": "clip",
    "defense": "mat",
    "attack": "pgd",
    "attack_options": {"steps": "0"},
    "output": False,
}
"""``vladv.run`` arguments whose defense is the shipped default MAT (README command 1's) and whose
zero-step PGD leaves the clean metrics: how docs/world/ship_prebuilt.py builds it and the tests
check it."""


def prebuilt_manifest() -> dict[str, Any]:
    """``{cache name: {"sha256", "bytes", "built", ...}}`` of the shipped artifacts ({} if none)."""
    try:
        data = json.loads((PREBUILT_DIR / "MANIFEST.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("artifacts", {}) if isinstance(data, dict) else {}


def tree_sha256(path: str | Path, length: int = 16) -> str:
    """A short sha256 of a file, or of a folder's files (relative names and bytes, sorted)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path, length)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path).as_posix()}:{file_sha256(f, 64)};".encode())
    return h.hexdigest()[:length]


def seed_prebuilt(
    target: str | Path, notify: Callable[[str], None] | None = None, name: str | None = None
) -> bool:
    """Copy the shipped artifact named like ``target`` (a file or a folder; or shipped as
    ``name``) into the cache.

    False when vladv ships none of that name, when ``VLADV_PREBUILT=0`` asks to build everything
    here, or when the shipped copy does not match its manifest (then ``notify`` says so and the
    caller builds it). A name is a content hash of the artifact's whole recipe, so a shipped
    copy is only ever used for exactly the configuration it was built with.
    """
    target = Path(target)
    name = name or target.name
    entry = prebuilt_manifest().get(name)
    src = PREBUILT_DIR / name
    if os.environ.get("VLADV_PREBUILT", "1") == "0" or entry is None or not src.exists():
        return False
    if tree_sha256(src) != entry.get("sha256"):
        if notify is not None:
            notify(f"the prebuilt {name} shipped with vladv is damaged; building it here")
        return False
    copy_artifact(src, target)
    if notify is not None:
        notify(
            f"using the prebuilt {name} that ships with vladv ({entry.get('built', '')}); "
            "VLADV_PREBUILT=0 builds it on this machine"
        )
    return True


def copy_artifact(src: str | Path, target: str | Path) -> Path:
    """Copy a file or folder ``src`` to ``target`` through a scratch path and one rename
    (readers see all of it or nothing); a failure is a one-line StorageError."""
    src, target = Path(src), Path(target)
    ensure_dir(target.parent, "folder")
    tmp = scratch_dir(target)
    try:
        if src.is_dir():
            shutil.copytree(src, tmp)
            publish_dir(tmp, target, lambda p: p.is_dir(), replace=True)
        else:
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
    except OSError as exc:
        raise StorageError(os_error_message(exc, "copy to", target)) from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return target


def scratch_dir(final: str | Path) -> Path:
    """Where to build the folder ``final`` before :func:`publish_dir`: ``.NAME.tmp-PID`` beside it,
    private to this process and emptied of a crashed attempt's leftovers (not created)."""
    final = Path(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def publish_dir(
    tmp: str | Path, final: str | Path, complete: Callable[[Path], bool], replace: bool = False
) -> Path:
    """Move the folder ``tmp``, built aside (:func:`scratch_dir`), to ``final`` with one rename:
    readers see all of it or nothing.

    A ``final`` already there is kept when ``complete(final)`` says so (another process finished
    first: ``tmp`` is dropped) unless ``replace``; an incomplete one (a crashed build) is removed
    first. The one way vladv publishes a folder (embedded models, managed data copies).
    """
    tmp, final = Path(tmp), Path(final)
    if final.exists() and (replace or not complete(final)):
        shutil.rmtree(final, ignore_errors=True)
    try:
        os.replace(tmp, final)
    except OSError:  # a folder appeared at final meanwhile: keep it if complete, else replace it
        if not complete(final):
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def finite_json(obj: Any, where: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every NaN or infinite float replaced by None, and the dotted paths replaced.

    The one place that makes vladv's JSON strict: :func:`strict_json` and every record use it.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        return None, [f"{where or 'value'} = {obj}"]
    if isinstance(obj, dict):
        out, bad = {}, []
        for k, v in obj.items():
            out[k], sub = finite_json(v, f"{where}.{k}" if where else str(k))
            bad += sub
        return out, bad
    if isinstance(obj, list | tuple):
        items = [finite_json(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return [v for v, _ in items], [p for _, sub in items for p in sub]
    return obj, []


def strict_json(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON text (no NaN/Infinity: those become null; other objects via ``str``)."""
    return json.dumps(finite_json(obj)[0], indent=indent, allow_nan=False, default=str)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (see :func:`strict_json`), atomically."""
    return atomic_write_text(path, strict_json(obj) + "\n")
