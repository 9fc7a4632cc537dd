"""Two processes with the gloo backend give exactly the single-process results."""

import json
import os
import subprocess
import sys
from pathlib import Path

from vladv.distributed import batch_shards

TINY_WORLD = str(Path(__file__).with_name("tiny_world.py"))

PLUGIN = """
import vladv
from vladv.testing import noise_attack_spec


@vladv.hookimpl
def vladv_attacks():
    yield noise_attack_spec("noise", first_word="zebra")
"""


def test_batch_shards_cover_every_item_once_in_single_process_batches():
    n, bs = 23, 4
    shards = [batch_shards(n, bs, r, 3) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    for s in shards:  # each shard is whole batches of the single-process split
        chunks = [s[i : i + bs] for i in range(0, len(s), bs)]
        assert all(c[0] % bs == 0 and c == list(range(c[0], c[0] + len(c))) for c in chunks)


def _run(tmp_path, out, nproc, *extra):
    cmd = [
        sys.executable,
        "-m",
        "vladv",
        "run",
        "--plugin",
        str(tmp_path / "noise.py"),
        "--plugin",
        TINY_WORLD,
        "--backbone",
        "tiny",
        "--dataset",
        "tiny",
        "--dataset-opt",
        "n_images=11",
        "--batch-size",
        "3",
        "--attack",
        "noise",
        "--output",
        str(out),
        "-q",
        "--json",
        "--nproc",
        str(nproc),
        *extra,
    ]
    env = {**os.environ, "VLADV_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout[res.stdout.index("[") :])


def test_two_gloo_processes_match_one_process_exactly(tmp_path):
    (tmp_path / "noise.py").write_text(PLUGIN)
    one = _run(tmp_path, tmp_path / "one", 1)
    two = _run(
        tmp_path,
        tmp_path / "two",
        2,
        "--defense",
        "tecoa",
        "--defense-opt",
        "steps=2",
        "--defense-opt",
        "batch_size=4",
    )
    ref = _run(tmp_path, tmp_path / "two-plain", 2)
    assert ref[0]["metrics"] == one[0]["metrics"]
    assert ref[0]["run_id"] == one[0]["run_id"]
    records = [p for p in (tmp_path / "two-plain").glob("*.json") if p.stem != "experiment"]
    assert len(records) == 1  # rank 0 alone writes
    assert two[0]["config"]["defense"]["name"] == "tecoa" and "adversarial" in two[0]["metrics"]
