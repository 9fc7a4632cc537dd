"""Attack plugin ``bert-attack``: BERT-Attack word substitution against a dual encoder.

Built on the kit's word-substitution search (:class:`vladv.kit.words.WordSubstitutionSearch`,
docs/kit.md; docs/algorithms.md#bert-attack-word-substitution, where the deliberate differences
from the reference code are listed) with the image-guided (SGA's) or KL (Co-Attack's) objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

import vladv

# Re-exported for code written before the kit (tests, older scripts); new code imports vladv.kit.
from vladv.kit.mlm import (
    EMBEDDED_MLM,
    ensure_mlm,
    get_mlm,  # noqa: F401, E402
)
from vladv.kit.words import (  # noqa: F401, E402
    FILTER_WORDS,
    ImageGuidedScore,
    KLScore,
    TextScore,
    WordSubstitutionSearch,
    image_guided_score,
    kl_score,
    load_search,
)
from vladv.options import option
from vladv.types import Attack, AttackOutput, Context, PairBatch, ThreatModel

__all__ = ["BertAttack", "BertAttackOptions", "vladv_attacks"]


# ----------------------------------------------------------------------------------------------
# The plugin
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BertAttackOptions:
    k: int = option(10, "masked-LM candidates per word (top-K)", min=1, max=1000)
    max_words: int = option(1, "words changed per caption at most", min=0, max=1000)
    mlm: str = option(EMBEDDED_MLM, "masked LM: 'vladv-tiny-mlm', a Hugging Face name or a folder")
    objective: Literal["image", "kl"] = option(
        "image",
        "image: lower the similarity to the caption's clean image (SGA); "
        "kl: move the text embedding away from the clean one (Co-Attack)",
    )
    reference_compat: bool = option(
        False, "reproduce the SGA/Co-Attack code: MLM off-by-one, 30 tokens, KL importance"
    )
    max_rounds: int = option(5, "scoring rounds over words by importance (0: no limit)", min=0)
    max_length: int = option(77, "masked-LM truncation in sub-tokens", min=4, max=512)


class BertAttack(Attack):
    """Text-only attack: image-guided (SGA's text step) or KL (Co-Attack) BERT-Attack."""

    modality = "text"

    def __init__(self, options: BertAttackOptions, ctx: Context):
        super().__init__(options, ctx)
        self._search: WordSubstitutionSearch | None = None

    @property
    def threat_model(self) -> ThreatModel:
        return ThreatModel("text", max_words=self.options.max_words)

    @property
    def search(self) -> WordSubstitutionSearch:
        if self._search is None:
            o = self.options
            self._search = load_search(
                o.mlm,
                self.ctx,
                k=o.k,
                max_words=o.max_words,
                reference_compat=o.reference_compat,
                max_length=o.max_length,
                max_rounds=o.max_rounds,
            )
        return self._search

    def perturb(self, backbone: Any, batch: PairBatch, generator: torch.Generator) -> AttackOutput:
        with torch.no_grad(), self.ctx.autocast():
            if self.options.objective == "image":
                emb = batch.clean_image_embeddings(backbone).to(backbone.device)
                guidance = emb[batch.txt2img.to(emb.device)]
                score: TextScore = image_guided_score(backbone, guidance, self.ctx)
            else:
                score = kl_score(backbone, batch.clean_text_embeddings(backbone), self.ctx)
        texts = self.search.run(batch.texts, score)
        return AttackOutput(images=batch.images, texts=texts)


def _prepare(options: BertAttackOptions, ctx: Context, force: bool = False) -> None:
    ensure_mlm(options.mlm, ctx, force)


@vladv.hookimpl
def vladv_attacks():
    yield vladv.AttackSpec(
        name="bert-attack",
        summary="BERT-Attack word substitution (image-guided as in SGA, or KL as in Co-Attack)",
        options=BertAttackOptions,
        factory=BertAttack,
        modality="text",
        prepare=_prepare,
    )
