"""Text utilities shared by text augmenters and attacks: stop words and the WordNet reader.

:data:`STOP_WORDS` is eda_nlp's English stop-word list (EDA's synonym replacement skips them; the
``textattack`` plugin gives them to TextAttack as NLTK's ``stopwords`` corpus). :func:`load_wordnet`
finds WordNet 3.0 offline (``$VLADV_WORDNET``, NLTK's data, ``$WNSEARCHDIR``, system folders) and
returns NLTK's reader, loaded once per process. Guide: docs/kit.md.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from vladv.cache import config_hash, publish_dir, scratch_dir
from vladv.errors import VladvError, first_line
from vladv.types import Context

__all__ = [
    "LEXNAMES",
    "NLTK_WORDNET_RESOURCES",
    "STOP_WORDS",
    "SYSTEM_WORDNET_DIRS",
    "WORDNET_HINT",
    "lexnames_text",
    "load_wordnet",
    "locate_wordnet",
]

STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he
him his himself she her hers herself it its itself they them their theirs themselves what which who
whom this that these those am is are was were be been being have has had having do does did doing a
an the and but if or because as until while of at by for with about against between into through
during before after above below to from up down in out on off over under again further then once
here there when where why how all any both each few more most other some such no nor not only own
same so than too very s t can will just don should now""".split()
) | {""}
"""The 128-entry English stop-word list of eda_nlp (NLTK's; it includes ``""``): words EDA never
replaces by synonyms, and the ``stopwords`` corpus vladv gives TextAttack."""

WORDNET_HINT = (
    "install WordNet with `apt-get install wordnet-base` (Debian/Ubuntu) or "
    "`python -m nltk.downloader wordnet`, or set VLADV_WORDNET to a WordNet 3.0 "
    "dict folder (data.noun, index.noun, noun.exc, ...)"
)
"""How to install WordNet (the end of :func:`load_wordnet`'s error messages)."""
SYSTEM_WORDNET_DIRS: list[str] = [
    "/usr/share/wordnet",
    "/usr/local/share/wordnet",
    "/usr/local/WordNet-3.0/dict",
    "/usr/share/WordNet-3.0/dict",
]
"""System folders searched for a WordNet 3.0 ``dict`` (Debian's ``wordnet-base``: the first)."""
NLTK_WORDNET_RESOURCES: list[str] = ["corpora/wordnet", "corpora/wordnet.zip/wordnet/"]
"""NLTK data resources searched for a downloaded ``wordnet`` corpus."""
_REQUIRED = tuple(
    f"{kind}.{pos}" for kind in ("data", "index") for pos in ("adj", "adv", "noun", "verb")
) + tuple(f"{pos}.exc" for pos in ("adj", "adv", "noun", "verb"))
_OPTIONAL = ("cntlist.rev", "lexnames")
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute "
    "noun.body noun.cognition noun.communication noun.event noun.feeling noun.food "
    "noun.group noun.location noun.motive noun.object noun.person noun.phenomenon "
    "noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition "
    "verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative "
    "verb.weather adj.ppl"
).split()
"""The 45 lexicographer files of WordNet 3.0 (lexnames(5WN)); the number is the line index."""
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_READERS: dict[str, Any] = {}


def lexnames_text() -> str:
    """The ``lexnames`` file NLTK needs and Debian's ``wordnet-base`` lacks."""
    return "".join(f"{i:02d}\t{n}\t{_CATEGORY[n.split('.')[0]]}\n" for i, n in enumerate(LEXNAMES))


def _is_wordnet_dir(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in _REQUIRED)


def _managed_copy(source: Path, ctx: Context | None) -> Path:
    """A vladv-managed copy of ``source`` plus ``lexnames``, under ``VLADV_HOME/wordnet``.

    NLTK's path sandbox rejects symbolic links that leave the reader's root, so files are copied
    (about 28 MB, once); the folder appears atomically (built aside, then renamed).
    """
    ctx = ctx or Context()
    folder = ctx.cache_dir("wordnet") / f"wn-{config_hash(str(source.resolve()), 12)}"
    if _is_wordnet_dir(folder) and (folder / "lexnames").is_file():
        if all(f.stat().st_nlink == 1 for f in folder.iterdir() if f.is_file()):
            return folder
        # a hard-linked copy of VLADV_HOME (cp -al): NLTK refuses multiply-linked files, so the
        # folder is rebuilt with files of its own
        shutil.rmtree(folder, ignore_errors=True)
    tmp = scratch_dir(folder)
    tmp.mkdir(parents=True)
    for name in _REQUIRED + _OPTIONAL:
        if (source / name).is_file():
            shutil.copyfile(source / name, tmp / name)
    if not (tmp / "lexnames").is_file():
        (tmp / "lexnames").write_text(lexnames_text())
    return publish_dir(tmp, folder, lambda p: _is_wordnet_dir(p) and (p / "lexnames").is_file())


def locate_wordnet() -> tuple[Any, bool]:
    """(root, needs a managed copy): ``VLADV_WORDNET``, NLTK's data, then system folders."""
    import nltk

    env = os.environ.get("VLADV_WORDNET")
    if env:
        path = Path(env).expanduser()
        if not _is_wordnet_dir(path):
            raise VladvError(f"VLADV_WORDNET={env} is not a WordNet folder; {WORDNET_HINT}")
        return path, not (path / "lexnames").is_file()
    for resource in NLTK_WORDNET_RESOURCES:
        try:
            return nltk.data.find(resource), False
        except LookupError:
            continue
    for folder in [os.environ.get("WNSEARCHDIR", ""), *SYSTEM_WORDNET_DIRS]:
        if folder and _is_wordnet_dir(Path(folder)):
            return Path(folder), not (Path(folder) / "lexnames").is_file()
    raise VladvError(f"WordNet (for EDA's synonyms) was not found: {WORDNET_HINT}")


def load_wordnet(ctx: Context | None = None) -> Any:
    """NLTK's WordNet reader, loaded once per process and source.

    Search order: ``$VLADV_WORDNET`` (a WordNet dict folder), an NLTK-downloaded ``wordnet``
    corpus (``nltk.data.path``), ``$WNSEARCHDIR``, then :data:`SYSTEM_WORDNET_DIRS` (Debian's
    ``wordnet-base`` installs ``/usr/share/wordnet``). A folder without ``lexnames`` is copied to
    ``VLADV_HOME/wordnet`` with a generated one. Raises :class:`VladvError` when none is found.
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _Reader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet") -> None:  # no OMW mapping (needs index.sense)
            return None

    source, copy = locate_wordnet()
    key = str(source)
    if key not in _READERS:
        root = _managed_copy(source, ctx) if copy else source
        if isinstance(root, Path):
            root = root.resolve()
            if str(root) not in nltk.data.path:
                nltk.data.path.append(str(root))  # NLTK >= 3.9 reads only below nltk.data.path
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "multilingual functions are not available"
            try:
                _READERS[key] = _Reader(str(root) if isinstance(root, Path) else root, None)
            except (OSError, ValueError, LookupError, AssertionError) as exc:
                first = first_line(exc, 200)
                raise VladvError(
                    f"cannot read WordNet at {root}: {first}; {WORDNET_HINT}"
                ) from None
    return _READERS[key]
