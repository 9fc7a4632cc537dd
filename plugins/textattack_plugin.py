"""Plugin ``textattack``: TextAttack's attacks and augmenters inside vladv, offline.

* Attack ``textattack``: any TextAttack search method, transformation and constraints against a
  retrieval model. The "classes" of TextAttack's goal function are the batch's images (their clean
  embeddings, as the batch carries them); a caption's label is its paired image. Two rule sets:
  ``rules=textattack`` — TextAttack's untargeted goal (succeed when the paired image leaves the
  top-1; score 1 − softmax(s·cos)[paired]; captions already misranked are skipped; the search
  stops at success) — and ``rules=sga`` — SGA's: maximize the distance to the paired image
  (score −cos), no early stop, no skipping. Every query of TextAttack is one batched text-encoder
  forward of vladv's backbone.
* Augmenter ``textattack``: any ``textattack.augmentation`` augmenter by class name
  (``EasyDataAugmenter`` by default) as a vladv pool augmenter (MAT's 1:N pools).

TextAttack is an optional extra installed in its own environment (it pins ``transformers<5``
through flair); this module imports without it and says how to install it when used.
:func:`load_textattack` makes its import offline: it provides the NLTK data TextAttack reads
(``stopwords``, generated under ``VLADV_HOME/nltk_data`` from vladv's EDA stop words; WordNet is
the reader vladv's EDA uses), marks TextAttack's post-install step (an NLTK download) as done,
and turns ``nltk.download`` into a local lookup.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
import torch.nn.functional as F

import vladv
from vladv.cache import atomic_write_text
from vladv.errors import VladvError, first_line
from vladv.kit.mlm import EMBEDDED_MLM, ensure_mlm, get_mlm
from vladv.kit.pools import PoolAugmenter, image_seed
from vladv.kit.text import STOP_WORDS, load_wordnet
from vladv.kit.words import FILTER_WORDS, WORD_PATTERN, TextScore
from vladv.options import option
from vladv.types import (
    Attack,
    AttackOutput,
    Context,
    ImageTextDataset,
    PairBatch,
    ThreatModel,
)

__all__ = [
    "INSTALL_HINT",
    "OFFLINE_RECIPES",
    "RetrievalScore",
    "TextAttackAttack",
    "TextAttackAugmenter",
    "TextAttackAugmenterOptions",
    "TextAttackOptions",
    "build_component",
    "load_textattack",
    "nltk_data_dir",
]

INSTALL_HINT = (
    "install the textattack extra in a second environment: python -m venv "
    "--system-site-packages .venv-textattack && .venv-textattack/bin/pip install "
    "-c constraints-textattack.txt -e '.[textattack]' (docs/attacks.md#installing-the-extra)"
)
OFFLINE_RECIPES = ("bert-attack", "pwws", "deepwordbug", "pruthi", "custom")


# ----------------------------------------------------------------------------------------------
# Offline import
# ----------------------------------------------------------------------------------------------
def nltk_data_dir(ctx: Context | None = None) -> Path:
    """``VLADV_HOME/nltk_data`` with the NLTK ``stopwords`` corpus TextAttack reads at import
    (English only: vladv's EDA stop words, the NLTK list eda_nlp uses). Built once."""
    root = (ctx or Context()).cache_dir("nltk_data")
    stop = root / "corpora" / "stopwords" / "english"
    if not stop.is_file():
        atomic_write_text(stop, "".join(f"{w}\n" for w in sorted(STOP_WORDS) if w))
    return root


def _use_vladv_wordnet(ctx: Context) -> None:
    """Point TextAttack's WordNet users at vladv's reader (:func:`vladv.kit.text.load_wordnet`:
    Debian's ``wordnet-base`` or an NLTK download), loaded on first use."""
    import importlib

    class _Lazy:
        def __getattr__(self, name: str) -> Any:
            return getattr(load_wordnet(ctx), name)

    for module in (
        "textattack.transformations.word_swaps.word_swap_wordnet",
        "textattack.transformations.word_insertions.word_insertion_random_synonym",
    ):
        importlib.import_module(module).wordnet = _Lazy()


@contextlib.contextmanager
def _offline_nltk() -> Iterator[None]:
    """``nltk.download(name)`` only reports whether ``name`` is installed; it never downloads."""
    import nltk

    def download(info_or_id: Any = None, *args: Any, **kwargs: Any) -> bool:
        for kind in ("corpora", "taggers", "tokenizers", "misc"):
            for suffix in ("", ".zip"):
                with contextlib.suppress(LookupError, ValueError):
                    nltk.data.find(f"{kind}/{info_or_id}{suffix}")
                    return True
        return False

    saved = nltk.download
    nltk.download = download
    try:
        yield
    finally:
        nltk.download = saved


@contextlib.contextmanager
def _quiet_textattack() -> Iterator[None]:
    """Hide TextAttack's INFO/WARNING log lines (goal-function/model compatibility notes)."""
    logger = logging.getLogger("textattack.shared.utils.install")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_textattack(ctx: Context | None = None) -> ModuleType:
    """Import TextAttack offline (see the module docstring); a one-line error without it."""
    import importlib.util
    import sys

    ctx = ctx or Context()
    if "textattack.attack" not in sys.modules:
        if importlib.util.find_spec("textattack") is None:
            raise VladvError(f"TextAttack is not installed; {INSTALL_HINT}")
        _prepare_import(ctx)
    try:
        with _offline_nltk(), _quiet_textattack():
            import textattack
    except ImportError as exc:
        raise VladvError(f"TextAttack cannot be imported ({exc}); {INSTALL_HINT}") from None
    except LookupError as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if "not found" in ln), str(exc))
        raise VladvError(f"TextAttack needs NLTK data that is missing: {first}") from None
    textattack.shared.utils.device = ctx.device
    _use_vladv_wordnet(ctx)
    return textattack


def _prepare_import(ctx: Context) -> None:
    """NLTK data on the path, TextAttack's post-install marker written, half-imports forgotten."""
    import sys

    import nltk

    root = str(nltk_data_dir(ctx))
    if root not in nltk.data.path:
        nltk.data.path.append(root)
    cache = Path(os.environ.get("TA_CACHE_DIR", os.path.expanduser("~/.cache/textattack")))
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "post_install_check_3").touch()  # TextAttack's "NLTK data downloaded" marker
    for name in [m for m in sys.modules if m == "textattack" or m.startswith("textattack.")]:
        del sys.modules[name]  # a failed earlier import left partial modules


# ----------------------------------------------------------------------------------------------
# The retrieval goal (shared by TextAttack's goal function and vladv's search in the benchmark)
# ----------------------------------------------------------------------------------------------
def retrieval_values(
    sims: torch.Tensor, paired: torch.Tensor, rules: str, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(score, succeeded) of candidates from their cosines to the batch's images ``sims`` (N, B).

    ``rules="sga"``: score −cos(paired); ``"textattack"``: 1 − softmax(scale·cos)[paired].
    Succeeded: the paired image is not the top-1.
    """
    own = sims.gather(1, paired.view(-1, 1)).squeeze(1)
    if rules == "sga":
        score = -own
    else:
        score = 1 - (scale * sims).softmax(-1).gather(1, paired.view(-1, 1)).squeeze(1)
    return score, sims.argmax(-1) != paired


class RetrievalScore(TextScore):
    """A :class:`~vladv.kit.words.TextScore` returning ``(score, succeeded)`` for
    :meth:`WordSubstitutionSearch.run` under either rule set (see :func:`retrieval_values`)."""

    def __init__(
        self,
        backbone: Any,
        image_emb: torch.Tensor,
        paired: torch.Tensor,
        rules: str = "sga",
        ctx: Context | None = None,
    ):
        super().__init__(backbone, ctx)
        self.image_emb = F.normalize(image_emb.detach().float(), dim=-1)
        self.paired = paired.long()
        self.rules = rules
        self.scale = float(backbone.logit_scale.detach())
        self.encoded = 0

    def __call__(self, candidates: list[str], owner: torch.Tensor) -> Any:
        emb = self.embed(candidates)
        self.encoded += len(candidates)
        sims = emb @ self.image_emb.to(emb.device).T
        paired = self.paired.to(emb.device)[owner.to(emb.device)]
        return retrieval_values(sims, paired, self.rules, self.scale)


def _retrieval_classes(ta: ModuleType) -> tuple[type, type]:
    """TextAttack model wrapper and goal function for retrieval (built after the import)."""
    from textattack.goal_functions.classification import ClassificationGoalFunction
    from textattack.models.wrappers import ModelWrapper

    class RetrievalModelWrapper(ModelWrapper):
        """Texts → cosines to the current batch's clean image embeddings (one forward a call)."""

        def __init__(self, backbone: Any, ctx: Context):
            self.model = backbone
            self.score = TextScore(backbone, ctx, chunk_size=4096)
            self.image_emb: torch.Tensor | None = None
            self.calls = self.encoded = 0

        def __call__(self, text_input_list: list[str]) -> torch.Tensor:
            assert self.image_emb is not None, "set image_emb before attacking"
            emb = self.score.embed(list(text_input_list))
            self.calls += 1
            self.encoded += len(text_input_list)
            return (emb @ self.image_emb.to(emb.device).T).cpu()

    class RetrievalGoalFunction(ClassificationGoalFunction):
        """Untargeted retrieval goal over the batch's images (see the module docstring)."""

        def __init__(
            self,
            model_wrapper: Any,
            rules: str = "textattack",
            scale: float = 100.0,
            query_budget: float = float("inf"),
        ):  # an int when finite (it slices)
            with _quiet_textattack():
                super().__init__(
                    model_wrapper,
                    maximizable=rules == "sga",
                    allow_skip=rules == "textattack",
                    query_budget=query_budget,
                    model_batch_size=1 << 20,
                )
            self.rules, self.scale = rules, scale

        def _process_model_outputs(self, inputs: list[Any], outputs: Any) -> torch.Tensor:
            return torch.as_tensor(outputs).float().reshape(len(inputs), -1)

        def _values(self, model_output: torch.Tensor) -> tuple[float, bool]:
            score, ok = retrieval_values(
                model_output.view(1, -1),
                torch.tensor([int(self.ground_truth_output)]),
                self.rules,
                self.scale,
            )
            return float(score[0]), bool(ok[0])

        def _is_goal_complete(self, model_output: torch.Tensor, _: Any) -> bool:
            return self._values(model_output)[1]

        def _get_score(self, model_output: torch.Tensor, _: Any) -> float:
            return self._values(model_output)[0]

    return RetrievalModelWrapper, RetrievalGoalFunction


# ----------------------------------------------------------------------------------------------
# Building TextAttack components from option strings
# ----------------------------------------------------------------------------------------------
_NAMESPACES = (
    "textattack.transformations",
    "textattack.constraints.pre_transformation",
    "textattack.constraints.overlap",
    "textattack.constraints.semantics",
    "textattack.constraints.semantics.sentence_encoders",
    "textattack.constraints.grammaticality",
    "textattack.search_methods",
)


def _lookup(name: str) -> Any:
    import importlib

    for module in _NAMESPACES:
        obj = getattr(importlib.import_module(module), name, None)
        if obj is not None:
            return obj
    raise VladvError(
        f"textattack: unknown component {name!r} (a class of "
        f"textattack.transformations, .constraints.* or .search_methods)"
    )


def build_component(
    expr: str, inject: Callable[[type, dict[str, Any]], None] | None = None
) -> list[Any]:
    """TextAttack objects from ``expr``: comma-separated ``Name`` or ``Name(arg, key=value)``
    with literal arguments (nested calls and lists of calls allowed), e.g.
    ``"RepeatModification, LevenshteinEditDistance(12)"``. ``inject(cls, kwargs)`` may add
    arguments (the local masked LM for ``WordSwapMaskedLM``)."""
    try:
        tree = ast.parse(f"[{expr}]", mode="eval").body
    except SyntaxError as exc:
        raise VladvError(f"textattack: cannot parse {expr!r}: {exc.msg}") from None

    def value(node: ast.AST, top: bool = False) -> Any:
        if isinstance(node, ast.Name) and top:
            node = ast.Call(func=node, args=[], keywords=[])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            cls = _lookup(node.func.id)
            args = [value(a, top=isinstance(a, ast.Name)) for a in node.args]
            kwargs = {
                k.arg: value(k.value, top=isinstance(k.value, ast.Name))
                for k in node.keywords
                if k.arg
            }
            if inject is not None:
                inject(cls, kwargs)
            try:
                return cls(*args, **kwargs)
            except (OSError, ImportError) as exc:  # requests' ConnectionError is an OSError
                raise VladvError(
                    f"textattack: {node.func.id} needs a download or a file that is "
                    f"missing offline ({type(exc).__name__}: {first_line(exc, 160)})"
                ) from None
            except (TypeError, ValueError, AssertionError) as exc:
                raise VladvError(
                    f"textattack: cannot build {ast.unparse(node)}: {first_line(exc, 160)}"
                ) from None
        if isinstance(node, ast.List | ast.Tuple):
            return [value(e, top=isinstance(e, ast.Name)) for e in node.elts]
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise VladvError(
                f"textattack: only literal arguments are allowed in {expr!r}"
            ) from None

    return [value(e, top=True) for e in tree.elts]


# ----------------------------------------------------------------------------------------------
# The attack
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextAttackOptions:
    recipe: str = option(
        "bert-attack",
        "bert-attack | pwws | deepwordbug | pruthi | custom, or "
        "any TextAttack recipe name (textfooler, bae, ...; most need downloads)",
    )
    rules: Literal["textattack", "sga"] = option(
        "textattack",
        "textattack: untargeted top-1 goal, skip, early stop; "
        "sga: maximize the distance to the paired image, no early stop",
    )
    max_words: int = option(
        1, "words changed per caption at most (a character edit counts)", min=0, max=1000
    )
    k: int = option(10, "candidates per word of the masked LM (bert-attack)", min=1, max=1000)
    mlm: str = option(EMBEDDED_MLM, "masked LM for WordSwapMaskedLM: 'vladv-tiny-mlm' or a folder")
    max_length: int = option(77, "masked-LM sequence length (sub-tokens)", min=4, max=512)
    transformation: str = option(
        "",
        "TextAttack transformation, e.g. WordSwapWordNet or "
        "WordSwapMaskedLM(method='bae') (replaces the recipe's)",
    )
    constraints: str = option(
        "",
        "TextAttack constraints, e.g. 'RepeatModification, "
        "StopwordModification' (replace the recipe's)",
    )
    search: str = option(
        "",
        "TextAttack search method, e.g. GreedyWordSwapWIR('delete') or "
        "BeamSearch(beam_width=4) (replaces the recipe's)",
    )
    query_budget: int = option(0, "model queries per caption (0: unlimited)", min=0)

    def __post_init__(self) -> None:
        if self.recipe == "custom" and not self.transformation:
            raise ValueError("recipe=custom needs a transformation")


def _substitute_filter(ta: ModuleType) -> type:
    """A TextAttack constraint: a substitute is a word and not one of vladv's FILTER_WORDS (the
    rule SGA's and vladv's BERT-Attack apply to candidates; TextAttack's recipe has none)."""

    class SubstituteFilter(ta.constraints.Constraint):
        def __init__(self) -> None:
            super().__init__(compare_against_original=False)

        def _check_constraint(self, transformed_text: Any, reference_text: Any) -> bool:
            new = transformed_text.attack_attrs.get("newly_modified_indices", ())
            return all(
                WORD_PATTERN.match(transformed_text.words[i])
                and transformed_text.words[i].lower() not in FILTER_WORDS
                for i in new
            )

    return SubstituteFilter


def _recipe_parts(ta: ModuleType, o: TextAttackOptions, mlm: Any) -> tuple[Any, list[Any], Any]:
    """(transformation, constraints, search) of an offline recipe."""
    T, C, S = ta.transformations, ta.constraints, ta.search_methods
    if o.recipe == "bert-attack":  # TextAttack's BERT-Attack without USE, with a local MLM
        stop = FILTER_WORDS | {w.capitalize() for w in FILTER_WORDS}  # the check is case-sensitive
        return (
            T.WordSwapMaskedLM(
                method="bert-attack",
                masked_language_model=mlm.model,
                tokenizer=mlm.tokenizer,
                max_length=o.max_length,
                max_candidates=o.k,
            ),
            [
                C.pre_transformation.RepeatModification(),
                C.pre_transformation.StopwordModification(stopwords=stop),
                _substitute_filter(ta)(),
            ],
            S.GreedyWordSwapWIR(wir_method="unk", unk_token=mlm.unk_token),
        )
    if o.recipe == "pwws":
        return (
            T.WordSwapWordNet(),
            [
                C.pre_transformation.RepeatModification(),
                C.pre_transformation.StopwordModification(),
            ],
            S.GreedyWordSwapWIR("weighted-saliency"),
        )
    if o.recipe == "deepwordbug":
        return (
            T.CompositeTransformation(
                [
                    T.WordSwapNeighboringCharacterSwap(),
                    T.WordSwapRandomCharacterSubstitution(),
                    T.WordSwapRandomCharacterDeletion(),
                    T.WordSwapRandomCharacterInsertion(),
                ]
            ),
            [
                C.pre_transformation.RepeatModification(),
                C.pre_transformation.StopwordModification(),
                C.overlap.LevenshteinEditDistance(30),
            ],
            S.GreedyWordSwapWIR(),
        )
    if o.recipe == "custom":
        return None, [], S.GreedyWordSwapWIR()
    return _download_recipe(ta, o.recipe)


def _download_recipe(ta: ModuleType, name: str) -> tuple[Any, list[Any], Any]:
    """Any other TextAttack recipe (by its short or class name), built with a dummy wrapper."""
    import importlib

    from textattack.attack_args import ATTACK_RECIPE_NAMES

    recipes = importlib.import_module("textattack.attack_recipes")
    path = ATTACK_RECIPE_NAMES.get(name, f"textattack.attack_recipes.{name}")
    cls = getattr(recipes, path.rsplit(".", 1)[1], None)
    if cls is None:
        raise VladvError(
            f"textattack: unknown recipe {name!r}; offline: "
            f"{', '.join(OFFLINE_RECIPES)}; others: {', '.join(ATTACK_RECIPE_NAMES)}"
        )
    wrapper = _retrieval_classes(ta)[0](torch.nn.Identity(), Context())
    try:
        with _quiet_textattack(), _offline_nltk():
            built = cls.build(wrapper)
    except Exception as exc:  # noqa: BLE001 - downloads fail in many ways
        raise VladvError(
            f"textattack: recipe {name!r} needs a download or a file that is missing offline "
            f"({type(exc).__name__}: {first_line(exc, 160)}); "
            f"offline recipes: {', '.join(OFFLINE_RECIPES)}"
        ) from None
    return (
        built.transformation,
        built.pre_transformation_constraints + built.constraints,
        built.search_method,
    )


class TextAttackAttack(Attack):
    """A TextAttack attack on every caption of the batch, against the batch's images."""

    modality = "text"

    def __init__(self, options: TextAttackOptions, ctx: Context):
        super().__init__(options, ctx)
        self._built: tuple[int, Any, Any] | None = None

    @property
    def threat_model(self) -> ThreatModel:
        return ThreatModel("text", max_words=self.options.max_words)

    def build(self, backbone: Any) -> tuple[Any, Any]:
        """(TextAttack ``Attack``, model wrapper) for ``backbone`` (built once per backbone)."""
        if self._built is not None and self._built[0] == id(backbone):
            return self._built[1], self._built[2]
        ta = load_textattack(self.ctx)
        o = self.options
        needs_mlm = o.recipe == "bert-attack" or "WordSwapMaskedLM" in o.transformation
        mlm = get_mlm(o.mlm, self.ctx) if needs_mlm else None

        def inject(cls: type, kwargs: dict[str, Any]) -> None:
            if cls.__name__ == "WordSwapMaskedLM" and "masked_language_model" not in kwargs:
                kwargs.update(masked_language_model=mlm.model, tokenizer=mlm.tokenizer)
                kwargs.setdefault("max_length", o.max_length)
                kwargs.setdefault("max_candidates", o.k)

        with _offline_nltk(), _quiet_textattack():
            transformation, constraints, search = _recipe_parts(ta, o, mlm)
            if o.transformation:
                [transformation] = build_component(o.transformation, inject)
            if o.constraints:
                constraints = build_component(o.constraints, inject)
            if o.search:
                [search] = build_component(o.search, inject)
        constraints = [
            *constraints,
            ta.constraints.pre_transformation.MaxNumWordsModified(o.max_words),
        ]
        wrapper_cls, goal_cls = _retrieval_classes(ta)
        wrapper = wrapper_cls(backbone, self.ctx)
        goal = goal_cls(
            wrapper, o.rules, float(backbone.logit_scale.detach()), o.query_budget or float("inf")
        )
        try:
            attack = ta.Attack(goal, constraints, transformation, search)
        except (AssertionError, ValueError) as exc:
            raise VladvError(f"textattack: incompatible components: {exc}") from None
        self._built = (id(backbone), attack, wrapper)
        return attack, wrapper

    def perturb(self, backbone: Any, batch: PairBatch, generator: torch.Generator) -> AttackOutput:
        attack, wrapper = self.build(backbone)
        if self.options.max_words == 0:
            return AttackOutput(images=batch.images, texts=list(batch.texts))
        with torch.no_grad(), self.ctx.autocast():
            wrapper.image_emb = batch.clean_image_embeddings(backbone).float()
        texts = []
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        with (
            _global_rng(seed),
            _offline_nltk(),
            _quiet_textattack(),
            _downloads(self.options.recipe),
        ):
            for text, paired in zip(batch.texts, batch.txt2img.tolist(), strict=True):
                attack.clear_cache()
                result = attack.attack(text, int(paired))
                texts.append(result.perturbed_result.attacked_text.text)
        return AttackOutput(images=batch.images, texts=texts)


@contextlib.contextmanager
def _downloads(what: str) -> Iterator[None]:
    """A missing model or file met while running (TextAttack loads some lazily) → one line."""
    try:
        yield
    except (OSError, ImportError) as exc:  # requests' ConnectionError, missing files/packages
        raise VladvError(
            f"textattack: {what!r} needs a download or a file that is missing "
            f"offline ({type(exc).__name__}: {first_line(exc, 160)})"
        ) from None


@contextlib.contextmanager
def _global_rng(seed: int) -> Iterator[None]:
    """Seed Python's and NumPy's global RNGs (TextAttack draws from them), then restore them."""
    import numpy as np

    py, npy = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)


def _installed(ctx: Context) -> bool:
    """Whether TextAttack is installed (``vladv pretrain`` skips this plugin without it)."""
    import importlib.util

    if importlib.util.find_spec("textattack") is not None:
        return True
    from vladv.console import get_console

    get_console(ctx).print(
        "[dim]textattack: the extra is not installed here; nothing to prepare[/]"
    )
    return False


def _prepare(options: TextAttackOptions, ctx: Context, force: bool = False) -> None:
    if not _installed(ctx):
        return
    load_textattack(ctx)
    if options.recipe == "bert-attack" or "WordSwapMaskedLM" in options.transformation:
        ensure_mlm(options.mlm, ctx, force)


# ----------------------------------------------------------------------------------------------
# The augmenter
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TextAttackAugmenterOptions:
    augmenter: str = option(
        "EasyDataAugmenter",
        "a textattack.augmentation class: "
        "EasyDataAugmenter, WordNetAugmenter, CharSwapAugmenter, ...",
    )
    pct_words_to_swap: float = option(0.1, "share of words changed per new caption", min=0, max=1)
    transformations_per_example: int = option(
        4, "new captions per ground-truth caption", min=1, max=64
    )
    seed: int = option(-1, "seed of the pools (-1: the run seed)", min=-1)


class TextAttackAugmenter(PoolAugmenter):
    """New captions from a TextAttack augmenter, tied to their image (vladv's pool rules)."""

    name = "textattack"

    def identity_extra(self) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return {"textattack": version("textattack")}
        except PackageNotFoundError:
            return {"textattack": None}

    def make(self) -> Any:
        """The TextAttack augmenter (one-line error when it needs a download)."""
        ta = load_textattack(self.ctx)
        o = self.options
        cls = getattr(ta.augmentation, o.augmenter, None)
        if not isinstance(cls, type) or not issubclass(cls, ta.augmentation.Augmenter):
            names = sorted(n for n in dir(ta.augmentation) if n.endswith("Augmenter"))
            raise VladvError(
                f"textattack: unknown augmenter {o.augmenter!r}; one of {', '.join(names)}"
            )
        try:
            with _offline_nltk(), _quiet_textattack():
                return cls(
                    pct_words_to_swap=o.pct_words_to_swap,
                    transformations_per_example=o.transformations_per_example,
                )
        except Exception as exc:  # noqa: BLE001 - downloads fail in many ways
            raise VladvError(
                f"textattack: augmenter {o.augmenter!r} needs a download or a file "
                f"that is missing offline ({type(exc).__name__}: {first_line(exc, 160)})"
            ) from None

    def generate(self, dataset: ImageTextDataset) -> list[list[str]]:
        from vladv.console import track

        aug = self.make()
        out: list[list[str]] = []
        with _offline_nltk(), _quiet_textattack(), _downloads(self.options.augmenter):
            for i in track(range(len(dataset)), "textattack pools", self.ctx):
                cands: list[str] = []
                with _global_rng(image_seed(self.seed, i, self.name)):
                    for t in dataset.img2txt[i]:
                        cands += aug.augment(dataset.captions[t])
                out.append(cands)
        return out


def _prepare_augmenter(
    options: TextAttackAugmenterOptions, ctx: Context, force: bool = False
) -> None:
    if _installed(ctx):
        TextAttackAugmenter(options, ctx).make()


@vladv.hookimpl
def vladv_attacks():
    yield vladv.AttackSpec(
        name="textattack",
        summary="TextAttack recipes/components against retrieval (bert-attack, pwws, deepwordbug, "
        "pruthi, custom; optional extra)",
        options=TextAttackOptions,
        factory=TextAttackAttack,
        modality="text",
        prepare=_prepare,
    )


@vladv.hookimpl
def vladv_augmenters():
    yield vladv.AugmenterSpec(
        name="textattack",
        summary="TextAttack augmenters (EasyDataAugmenter, ...; optional extra)",
        options=TextAttackAugmenterOptions,
        factory=TextAttackAugmenter,
        modality="text",
        prepare=_prepare_augmenter,
    )
