"""Attack plugin ``sga``: Set-level Guidance Attack (Lu et al., ICCV 2023).

Algorithm and differences from the reference: docs/algorithms.md#sga-set-level-guidance-attack.

One adversarial image per image against its *whole* caption set, plus one changed word per
caption. For a batch (X, T, txt2img):

1. clean image guidance g_j = f_I(x_{txt2img[j]}) (unscaled clean image only, as the code does);
2. T¹ = image-guided word substitution of T against g (lowest cos(f_T(t'), g_j));
3. c_j = f_T(t¹_j) (with ``reference_compat``: T¹ BERT-truncated to 30 tokens and decoded first);
4. set-level PGD: X' from X + U[−ε, ε]; each step evaluates X' and, per scale s, the view
   resize(clamp(resize(X' + N(0, σ²), s·H), 0, 1), H) — all 1 + |scales| views in ONE
   forward — and ascends −Σ_views mean_i Σ_{j∈C(i)} cos(e_{v,i}, c_j) (sign steps, ε-ball, box);
5. adversarial guidance a_j = f_I(x'_{txt2img[j]});
6. T_final = a FRESH substitution of the CLEAN captions T guided by a (T¹ is discarded).

Returns (X', T_final). Resizes are bicubic without antialiasing (torchvision's tensor
``Resize`` of the reference's era), computed as separable matrix products; views draw their
noise from the attack's generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

import vladv
from vladv.kit.gradient import View, caption_set_loss, caption_sums, draw_random, projected_gradient
from vladv.kit.words import TextEmbeddingCache
from vladv.options import MAX_STEPS, option
from vladv.types import Attack, AttackOutput, AttackSpec, Context, PairBatch, ThreatModel

__all__ = ["SGA", "SGAOptions", "bicubic_resize", "scale_views", "vladv_attacks"]


def _identity(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return x


_MATRICES: dict[tuple[int, int, str], torch.Tensor] = {}


def _resize_matrix(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    """(n_out, n_in) matrix of 1-D bicubic resizing (``F.interpolate``, align_corners=False)."""
    key = (n_in, n_out, str(device))
    if key not in _MATRICES:
        eye = torch.eye(n_in, dtype=torch.float64).view(n_in, 1, n_in, 1)
        rows = F.interpolate(eye, size=(n_out, 1), mode="bicubic", align_corners=False)
        _MATRICES[key] = rows[:, 0, :, 0].T.float().contiguous().to(device)
    return _MATRICES[key]


def bicubic_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bicubic", align_corners=False)`` as two matrix products.

    Bicubic resizing is separable, so it equals A_h · x · A_wᵀ with the 1-D resize matrices; the
    matmuls' backward is much faster than ``upsample_bicubic2d``'s (CPU) and deterministic (CUDA).
    """
    (h, w), (oh, ow) = x.shape[-2:], size
    a_h = _resize_matrix(h, oh, x.device).to(x.dtype)
    a_w = _resize_matrix(w, ow, x.device).to(x.dtype)
    return a_h @ x @ a_w.T


def scale_views(scales: tuple[float, ...], noise_std: float) -> list[View]:
    """SGA's image set: the image itself, then per scale ``s`` a noisy bicubic down/up copy.

    View ``s`` maps x ↦ resize(clamp(resize(x + N(0, σ²), ⌊s·H⌋×⌊s·W⌋), 0, 1), H×W), in the
    reference's order (noise, resize, clamp, resize back; bicubic, no antialiasing, as
    torchvision's tensor ``Resize`` of the reference's era). Noise comes from the generator.
    """

    def make(scale: float) -> View:
        def view(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
            h, w = x.shape[-2:]
            size = (max(1, int(scale * h)), max(1, int(scale * w)))
            noisy = x
            if noise_std:
                noisy = x + noise_std * draw_random("randn", x.shape, generator, x.device)
            return bicubic_resize(bicubic_resize(noisy, size).clamp(0.0, 1.0), (h, w))

        return view

    return [_identity] + [make(s) for s in scales]


@dataclass(frozen=True)
class SGAOptions:
    eps: float = option(2 / 255, "L∞ radius in [0, 1] pixel space", min=0, max=1)
    step_size: float = option(0.5 / 255, "PGD step size", min=0, max=1)
    steps: int = option(10, "PGD iterations", min=0, max=MAX_STEPS)
    scales: tuple[float, ...] = option(
        (0.5, 0.75, 1.25, 1.5),
        "resize factors of the image set (the image itself is always in)",
        min=0.05,
        max=8,
    )
    noise_std: float = option(0.05, "std of the Gaussian noise added before each resize", min=0)
    k: int = option(10, "MLM candidates per word", min=1)
    max_words: int = option(1, "words changed per caption", min=0)
    mlm: str = option(
        "vladv-tiny-mlm", "masked LM for candidates (built-in name, HF name or folder)"
    )
    reference_compat: bool = option(
        False,
        "reproduce the reference code's quirks (MLM offset, 30-BERT-token truncation of "
        "the guidance captions)",
    )


class SGA(Attack):
    """Set-level Guidance Attack: image-guided text ↔ set-level multi-scale image PGD."""

    modality = "multimodal"

    def __init__(self, options: SGAOptions, ctx: Context):
        super().__init__(options, ctx)
        self._search: Any = None
        self._mlm: Any = None

    @property
    def threat_model(self) -> ThreatModel:
        return ThreatModel("multimodal", "linf", self.options.eps, self.options.max_words)

    # -- text side (vladv.kit.words) --------------------------------------------------------------
    def _build_search(self) -> None:
        """Load the MLM and the word-substitution search on first use (factories stay cheap)."""
        if self._search is None:
            from vladv.kit.words import load_search

            o = self.options
            self._search = load_search(
                o.mlm, self.ctx, k=o.k, max_words=o.max_words, reference_compat=o.reference_compat
            )
            self._mlm = self._search.mlm

    @property
    def search(self) -> Any:
        self._build_search()
        return self._search

    @property
    def mlm(self) -> Any:
        self._build_search()
        return self._mlm

    def _text_attack(
        self, backbone, texts: list[str], guidance: torch.Tensor, cache: TextEmbeddingCache | None
    ) -> list[str]:
        if self.options.max_words == 0:
            return list(texts)
        from vladv.kit.words import image_guided_score  # looked up per call (tests patch it)

        # the score embeds candidates under no_grad and ctx.autocast itself
        score = image_guided_score(backbone, guidance, self.ctx, cache)
        return self.search.run(list(texts), score)

    def _guidance_texts(self, texts: list[str]) -> list[str]:
        """§2.2.3 with ``reference_compat``: BERT-truncate to 30 tokens and decode (else as is)."""
        if not self.options.reference_compat or self.options.max_words == 0:
            return texts
        tok = self.mlm.tokenizer
        ids = tok(texts, truncation=True, max_length=30)["input_ids"]
        return [tok.decode(i, skip_special_tokens=True) for i in ids]

    # -- the attack ----------------------------------------------------------------------------
    def perturb(self, backbone, batch: PairBatch, generator: torch.Generator) -> AttackOutput:
        o = self.options
        images, texts = batch.images, list(batch.texts)
        n = images.shape[0]
        txt2img = batch.txt2img.to(images.device)
        texts_1 = texts
        # text embeddings shared by both text rounds: step 6 repeats step 2's word importance
        # (the same [UNK]-masked clean captions; only the guidance differs), and most of its
        # candidate captions were step 2's too
        cache = text_cache()
        if o.max_words > 0:
            with self.ctx.autocast():  # 1. clean guidance
                clean_emb = batch.clean_image_embeddings(backbone).to(images.device)
            texts_1 = self._text_attack(backbone, texts, clean_emb[txt2img], cache)  # 2.
        with torch.no_grad(), self.ctx.autocast():  # 3. caption-set embeddings
            adv_text_emb = backbone.encode_text(self._guidance_texts(texts_1)).float()
        sums = caption_sums(adv_text_emb, txt2img, n)

        def objective(x: torch.Tensor) -> torch.Tensor:  # 4. set-level PGD
            return caption_set_loss(backbone.encode_image(x), sums)

        adv = projected_gradient(
            objective,
            images,
            eps=o.eps,
            step_size=o.step_size,
            steps=o.steps,
            norm="linf",
            random_start="uniform",
            views=scale_views(o.scales, o.noise_std),
            generator=generator,
            autocast=self.ctx.autocast,
        )
        if o.max_words == 0:
            return AttackOutput(adv, texts)
        with torch.no_grad(), self.ctx.autocast():  # 5. adversarial guidance
            adv_emb = backbone.encode_image(adv).float()
        final = self._text_attack(backbone, texts, adv_emb[txt2img], cache)  # 6. fresh, on clean T
        return AttackOutput(adv, final)


def text_cache() -> TextEmbeddingCache | None:
    """The text-embedding cache of one ``perturb`` (the backbone does not change within it)."""
    return TextEmbeddingCache()


def _prepare(options, ctx: Context, force: bool = False) -> None:
    """``vladv pretrain``: build (or load) the masked LM ahead of the first attack."""
    from vladv.kit.mlm import ensure_mlm

    if options.max_words > 0:
        ensure_mlm(options.mlm, ctx, force)


@vladv.hookimpl
def vladv_attacks():
    yield AttackSpec(
        name="sga",
        modality="multimodal",
        options=SGAOptions,
        factory=SGA,
        prepare=_prepare,
        summary="Set-level Guidance Attack: multi-scale set-level image PGD + image-guided "
        "BERT-Attack",
    )
