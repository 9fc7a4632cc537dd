"""Safe checkpoint I/O: safetensors by default, ``torch.load(weights_only=True)`` for .pt/.bin.

Pickle payloads are never executed; a corrupt, truncated or untrusted file gives a
:class:`~vladv.errors.CheckpointError` that names the file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from vladv.errors import CheckpointError, first_line


def save_state_dict(
    state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``state`` as safetensors, atomically (temporary file, then rename).

    The file's bytes are a function of ``state`` and ``metadata`` alone: safetensors writes its
    metadata table in the order of a Rust ``HashMap``, randomized per process (two keys: two
    different files half of the time), so the table is written here, in sorted key order.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if metadata is not None and not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise TypeError("safetensors metadata keys and values must be strings")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    raw = f"{tmp}.raw"
    try:
        if metadata:
            save_file(tensors, raw)  # no metadata: deterministic bytes
            _add_sorted_metadata(raw, tmp, metadata)
        else:
            save_file(tensors, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600 files; cached artifacts are shareable
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, raw):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return path


def _add_sorted_metadata(source: str, target: str, metadata: dict[str, str]) -> None:
    """Copy the safetensors file ``source`` to ``target`` with ``metadata`` (sorted by key) as
    its ``__metadata__``; the tensor data are streamed, never held in memory."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = int.from_bytes(src.read(8), "little")
        header = json.loads(src.read(size))
        header.pop("__metadata__", None)
        header = {"__metadata__": dict(sorted(metadata.items())), **header}
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        text += b" " * (-len(text) % 8)  # the data start 8-byte aligned, as safetensors writes
        dst.write(len(text).to_bytes(8, "little"))
        dst.write(text)
        shutil.copyfileobj(src, dst, 1 << 24)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a ``weights_only`` torch file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"corrupt safetensors checkpoint {path}: {exc}") from None
    obj = load_torch_file(path)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict of tensors")
    return obj


def load_torch_file(path: str | Path) -> object:
    """``torch.load(weights_only=True)`` of ``path``: a pickle payload is never executed, and any
    failure (random bytes, truncation, untrusted globals) is a one-line CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad or untrusted files
        raise CheckpointError(
            f"cannot load checkpoint {path} safely (only safetensors or weights-only torch files "
            f"are accepted): {first_line(exc, 300)}"
        ) from None


def atomic_torch_save(obj: object, path: str | Path) -> Path:
    """``torch.save`` through a temporary file unique to this process, then a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a safetensors header."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"corrupt safetensors checkpoint {path}: {exc}") from None


def load_into(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    path: str | Path,
    target: str,
    ignore_missing: tuple[str, ...] = (),
) -> None:
    """Load ``state`` (read from ``path``) into ``module``; every key must fit, else a one-line
    CheckpointError naming ``target`` (shape mismatches, missing and unexpected keys)."""
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or ["shape mismatch"]
        raise CheckpointError(
            f"checkpoint {path} does not fit {target}: {lines[-1][:300]}"
        ) from None
    missing = [k for k in missing if k not in ignore_missing]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit {target}: {len(missing)} missing keys "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
