"""The projected-gradient engine: ascent on any objective inside an ε-ball, with views and momentum.

:func:`projected_gradient` is the one image-perturbation inner loop of vladv
(docs/algorithms.md#projected-gradient-descent-pgd): the ``pgd``, SGA and Co-Attack attacks and the
adversarial-training defenses (MAT, TeCoA, FARE) call it with their own objective, start, momentum
and input views. It works in [0, 1] pixel space, ascends the objective, and after every step
projects onto the ε-ball (L∞ or L2) around the clean images and onto the [0, 1] box. It never
touches the model: gradients are taken with :func:`torch.autograd.grad` with respect to the
adversarial images only, so no parameter ``.grad`` is populated and no weight or train/eval mode
changes.

:func:`caption_sums` and :func:`caption_set_loss` are SGA's set-level objective (an image against
its whole caption set), shared by the ``pgd`` and ``sga`` attacks. Guide: docs/kit.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Literal

import torch

__all__ = [
    "Norm",
    "Start",
    "View",
    "caption_set_loss",
    "caption_sums",
    "draw_random",
    "project",
    "projected_gradient",
    "random_delta",
]

Norm = Literal["linf", "l2"]
"""The ball's norm: ``"linf"`` (per-pixel bound) or ``"l2"`` (per-image Euclidean bound)."""
Start = Literal["uniform", "positive", "none"]
"""The random start: see :func:`random_delta`."""
View = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]
"""A differentiable input transform ``view(x, generator) -> x_view`` (same shape as ``x``)."""

_TINY = 1e-12


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) → (N, 1, 1, …) broadcastable against ``like``."""
    return values.view(-1, *[1] * (like.dim() - 1))


# ----------------------------------------------------------------------------------------------
# Randomness: always drawn from the caller's generator, on the generator's device
# ----------------------------------------------------------------------------------------------
def draw_random(
    kind: str, shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``rand``/``randn`` of ``shape`` from ``generator`` (drawn where it lives), on ``device``."""
    where = generator.device if generator is not None else torch.device("cpu")
    fn = torch.rand if kind == "rand" else torch.randn
    return fn(tuple(shape), generator=generator, device=where, dtype=torch.float32).to(device)


def random_delta(
    shape: Sequence[int],
    eps: float,
    norm: Norm,
    start: Start,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """A random start δ (fp32) of ``shape`` inside the ε-ball.

    ``uniform``: U[−ε, ε] per pixel (L∞) or uniform in the L2 ball (Gaussian direction, radius
    ε·U^(1/d)); ``positive``: U[0, ε] per pixel (Co-Attack; for L2 the absolute value of a uniform
    L2-ball sample); ``none``: zeros.
    """
    if start == "none" or eps == 0:
        return torch.zeros(tuple(shape), dtype=torch.float32, device=device)
    if norm == "linf":
        u = draw_random("rand", shape, generator, device)
        return u * eps if start == "positive" else (2 * u - 1) * eps
    n = shape[0]
    d = 1
    for s in shape[1:]:
        d *= int(s)
    direction = draw_random("randn", shape, generator, device)
    direction = direction / _per_sample(
        direction.flatten(1).norm(dim=1).clamp_min(_TINY), direction
    )
    radius = draw_random("rand", (n,), generator, device).double().pow(1.0 / d).float() * eps
    delta = direction * _per_sample(radius, direction)
    return delta.abs() if start == "positive" else delta


def project(adv: torch.Tensor, clean: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project ``adv`` onto the ε-ball around ``clean``, then onto the [0, 1] box (fp32)."""
    delta = adv - clean
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = delta.flatten(1).norm(dim=1)
        factor = (eps / norms.clamp_min(_TINY)).clamp(max=1.0)
        delta = delta * _per_sample(factor, delta)
    return (clean + delta).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# The primitive
# ----------------------------------------------------------------------------------------------
def projected_gradient(
    objective: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    norm: Norm = "linf",
    random_start: Start = "uniform",
    momentum: float = 0.0,
    views: Sequence[View] | None = None,
    generator: torch.Generator | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> torch.Tensor:
    """Projected gradient *ascent* on ``objective`` around ``images`` (B, C, H, W) in [0, 1].

    ``objective(x)`` receives the adversarial images, or with ``views`` the concatenation
    ``cat([view(x, generator) for view in views])`` of shape (V·B, C, H, W) — row ``r`` belongs
    to image ``r % B`` — evaluated in one batched forward, and returns a scalar to maximize.
    Include an identity view (``lambda x, g: x``) if the unmodified image should count.

    Each step: g = ∇/mean|∇| per sample; with ``momentum`` μ > 0, g ← μ·g_prev + g; the step is
    ``step_size·sign(g)`` (L∞) or ``step_size·g/‖g‖₂`` (L2); then project onto the ε-ball and
    the [0, 1] box. ``random_start``: see :func:`random_delta` (the start is projected too).

    Perturbation, gradient and projection are fp32; the objective runs under ``autocast()``
    (pass ``ctx.autocast``). Randomness comes only from ``generator`` (a CPU generator draws on
    the CPU and the values are moved to the images' device). Returns detached adversarial images
    on the images' device and dtype.
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2'; got {norm!r}")
    if random_start not in ("uniform", "positive", "none"):
        raise ValueError(f"random_start must be uniform, positive or none; got {random_start!r}")
    if eps < 0 or step_size < 0 or steps < 0:
        raise ValueError("eps, step_size and steps must be non-negative")
    clean = images.detach().float()
    shape, device = clean.shape, clean.device
    adv = clean + random_delta(shape, eps, norm, random_start, generator, device)
    adv = project(adv, clean, eps, norm)
    velocity = torch.zeros_like(clean) if momentum > 0 else None
    with torch.enable_grad():
        for _ in range(steps):
            adv.requires_grad_(True)
            with autocast():
                batch = adv if not views else torch.cat([v(adv, generator) for v in views])
                loss = objective(batch)
            (grad,) = torch.autograd.grad(loss.float().sum(), adv, allow_unused=True)
            with torch.no_grad():
                grad = torch.zeros_like(clean) if grad is None else grad.float()
                if velocity is not None:  # without momentum the scaling cannot change the step
                    mean_abs = grad.abs().flatten(1).mean(1).clamp_min(_TINY)
                    velocity = momentum * velocity + grad / _per_sample(mean_abs, grad)
                    grad = velocity
                if norm == "linf":
                    direction = grad.sign()
                else:
                    l2 = grad.flatten(1).norm(dim=1).clamp_min(_TINY)
                    direction = grad / _per_sample(l2, grad)
                adv = project(adv.detach() + step_size * direction, clean, eps, norm)
    return adv.detach().to(images.dtype)


# ----------------------------------------------------------------------------------------------
# Set-level similarity objective (shared with SGA)
# ----------------------------------------------------------------------------------------------
def caption_sums(text_emb: torch.Tensor, txt2img: torch.Tensor, n_images: int) -> torch.Tensor:
    """Σ_{j ∈ C(i)} c_j for each image i: (n_images, D) from caption embeddings (T, D)."""
    sums = torch.zeros(n_images, text_emb.shape[1], dtype=torch.float32, device=text_emb.device)
    return sums.index_add_(0, txt2img.to(text_emb.device), text_emb.float())


def caption_set_loss(image_emb: torch.Tensor, sums: torch.Tensor) -> torch.Tensor:
    """SGA's image loss −Σ_views mean_i Σ_{j∈C(i)} cos(e_{v,i}, c_j).

    ``image_emb`` (V·B, D) normalized embeddings of V views of B images; ``sums`` (B, D) from
    :func:`caption_sums`.
    """
    n = sums.shape[0]
    emb = image_emb.float().view(-1, n, image_emb.shape[-1])
    return -(emb * sums.unsqueeze(0)).sum() / n
