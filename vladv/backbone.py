"""The backbone contract: a dual encoder that takes [0, 1] pixels and strings.

Subclasses implement :meth:`Backbone.image_features`, :meth:`Backbone.tokenize`,
:meth:`Backbone.text_features` and the two towers; preprocessing (resize, center crop, mean/std)
is a differentiable kornia module owned by the backbone, so attacks perturb raw pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from vladv.checkpoints import load_into, load_state_dict, save_state_dict


class PixelPreprocess(nn.Module):
    """[0, 1] pixels → resize shortest side, center crop, mean/std normalize (differentiable)."""

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        interpolation: str = "bicubic",
    ):
        super().__init__()
        self.image_size = int(image_size)
        self.interpolation = interpolation
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32), persistent=False
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        if images.shape[-2:] != (size, size):
            if min(images.shape[-2:]) != size:
                images = kornia.geometry.transform.resize(
                    images, size, interpolation=self.interpolation, side="short", antialias=True
                )
            if images.shape[-2:] != (size, size):
                images = kornia.geometry.transform.center_crop(images, (size, size))
        mean = self.mean.to(images.dtype).view(1, -1, 1, 1)
        std = self.std.to(images.dtype).view(1, -1, 1, 1)
        return (images - mean) / std


class Backbone(nn.Module, ABC):
    """A vision-language dual encoder mapping [0, 1] images and strings into one space."""

    name: str = "backbone"

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        interpolation: str = "bicubic",
    ):
        super().__init__()
        self.preprocess = PixelPreprocess(image_size, mean, std, interpolation)

    # -- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unnormalized image embeddings of *preprocessed* pixels (B, D)."""

    @abstractmethod
    def tokenize(self, texts: Sequence[str]) -> Any:
        """Token tensor (or dict of tensors) for ``texts`` on the CPU."""

    @abstractmethod
    def text_features(self, tokens: Any) -> torch.Tensor:
        """Unnormalized text embeddings (T, D) of tokens on the backbone's device."""

    @property
    @abstractmethod
    def image_tower(self) -> nn.Module:
        """The module holding the image encoder's parameters."""

    @property
    @abstractmethod
    def text_tower(self) -> nn.Module:
        """The module holding the text encoder's parameters."""

    @property
    @abstractmethod
    def logit_scale_param(self) -> nn.Parameter:
        """The learnable log temperature (CLIP's ``logit_scale``)."""

    def identity(self) -> dict[str, Any]:
        """What identifies these weights in records and cache keys."""
        return {"name": self.name}

    @property
    def token_embedding(self) -> nn.Module | None:
        """Optional: the text tower's input embedding module (token ids → vectors), whose output
        gradient ranks words by importance cheaply (``vladv.kit.words``, ``importance=
        "gradient"``). None (the default) when the backbone does not expose it."""
        return None

    def text_rows_independent_from(self) -> int | None:
        """Optional: the smallest text batch from which :meth:`encode_text` gives every text the
        same bits in any batch of at least that size (under the current device, grad mode and
        autocast), or None (the default) when a text's bits may depend on its batch.

        Attacks that embed many overlapping candidate sets (SGA's two text rounds) use it to
        reuse each text's embedding exactly (``vladv.kit.words.TextEmbeddingCache``)."""
        return None

    # -- the shared API -----------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def logit_scale(self) -> torch.Tensor:
        """exp(log temperature), clamped to ≤ 100 as CLIP does."""
        return self.logit_scale_param.exp().clamp(max=100.0)

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embed [0, 1] images (B, 3, H, W); differentiable with respect to the pixels."""
        feats = self.image_features(self.preprocess(images))
        return F.normalize(feats.float(), dim=-1) if normalize else feats

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """Embed strings; batched in one forward."""
        tokens = self.tokenize(list(texts))
        device = self.device
        if isinstance(tokens, dict):
            tokens = {k: v.to(device) for k, v in tokens.items()}
        else:
            tokens = tokens.to(device)
        feats = self.text_features(tokens)
        return F.normalize(feats.float(), dim=-1) if normalize else feats

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
        """Write the weights as safetensors (atomically)."""
        return save_state_dict(self.state_dict(), path, metadata)

    def load_weights(self, path: str | Path, strict: bool = True) -> None:
        """Load weights from a safetensors (or ``weights_only`` torch) checkpoint."""
        state = load_state_dict(path)
        if strict:
            load_into(self, state, path, self.name)
        else:
            self.load_state_dict(state, strict=False)
