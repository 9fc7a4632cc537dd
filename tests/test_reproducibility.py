"""Bit-reproducible training: a short MAT + EDA in two fresh processes gives byte-identical files.

The two processes differ in everything that must not matter: Python's string-hash seed
(``PYTHONHASHSEED``), the Rust hash seeds of the libraries (random per process), and the history of
the process-wide masked-LM cache (the second one first trains plain MAT and runs the MLM over the
caption pools in one big batch, as a grid does before MAT + EDA in the same process).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import torch

from vladv.checkpoints import load_state_dict
from vladv.errors import VladvError
from vladv.testing import COLORS, PLACES, THINGS
from vladv_plugins.mlm import save_random_mlm

CORPUS = [
    f"a {c} {t} {p} a {u} number {i}"
    for i in range(8)
    for c in COLORS
    for t in THINGS
    for p in PLACES
    for u in THINGS[:2]
]
SAVES = 3  # each process writes the model this many times (the metadata order was per call)

SCRIPT = """
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
from vladv.options import resolve_options
from vladv.testing import TinyBackbone, tiny_dataset
from vladv.types import Context
from vladv_plugins import mat as M
from vladv_plugins.eda import EDA, EdaOptions
from vladv_plugins.mlm import get_mlm

mlm, home, out, history = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "1"
ctx = Context(home=home, progress=False)
data = tiny_dataset(8, seed=4, split="train")
options = resolve_options("defense 'mat'", M.MATOptions, {
    "steps": "8", "batch_size": "8", "lr": "1e-2", "warmup": "0", "mlm": mlm})
eda = EDA(EdaOptions(), ctx)


def fit(augmenters):
    return M.MAT(options, ctx).fit(TinyBackbone(seed=0), data, augmenters)


if history:  # another training and another batch composition first, in the same process
    fit([])
    get_mlm(mlm, ctx).topk([t for pool in M.text_pools(data, [eda]) for t in pool], 10, 77)
model = fit([eda])
for i in range(int(sys.argv[5])):
    model.save(out / f"model-{i}.safetensors",
               metadata={"defense": "mat", "augmenters": "eda", "key": "0123456789abcdef"})
"""


@pytest.fixture(scope="module")
def wordnet() -> None:
    pytest.importorskip("nltk")
    from vladv_plugins import eda as E

    try:
        E._locate_wordnet()
    except VladvError:
        pytest.skip("WordNet not installed (apt-get install wordnet-base): EDA needs it")


def test_mat_eda_training_is_bit_reproducible_across_processes(wordnet, tmp_path):
    mlm = save_random_mlm(CORPUS, tmp_path / "mlm", vocab_size=200)
    runs = []
    for name, hash_seed, history in (("fresh", "1", "0"), ("after-history", "2", "1")):
        out = tmp_path / name
        out.mkdir()
        env = {
            **os.environ,
            "PYTHONHASHSEED": hash_seed,
            "OMP_NUM_THREADS": "1",
            "VLADV_HOME": str(tmp_path / f"home-{name}"),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SCRIPT,
                str(mlm),
                env["VLADV_HOME"],
                str(out),
                history,
                str(SAVES),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        runs.append((out, proc))
    for _, proc in runs:
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, log[-3000:]
    files = [out / f"model-{i}.safetensors" for out, _ in runs for i in range(SAVES)]
    first, other = load_state_dict(files[0]), load_state_dict(files[SAVES])
    assert first.keys() == other.keys()
    differ = [k for k in first if not torch.equal(first[k], other[k])]
    assert not differ, f"the trained weights differ: {differ}"
    digests = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    headers = sorted({f.read_bytes()[8:120] for f in files})
    assert len(digests) == 1, f"same weights, yet the files differ: {headers}"
