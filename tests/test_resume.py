"""A grid killed with SIGKILL loses at most the cell in progress, and resumes exactly."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vladv.errors import VladvError
from vladv.experiment import run
from vladv.plugins import get_registry
from vladv.testing import registered_plugin, tiny_plugin

TINY_WORLD = str(Path(__file__).with_name("tiny_world.py"))

PLUGIN = """
import vladv
from vladv.testing import noise_attack_spec


@vladv.hookimpl
def vladv_attacks():
    yield noise_attack_spec("slow", "slow noise", eps=4 / 255, sleep=0.4)
"""

TOML = """
[experiment]
backbones = ["tiny"]
datasets = ["tiny"]
attacks = ["slow"]
seeds = [0, 1]
batch_size = 2

[options.attack]
"slow.eps" = ["1/255", "4/255", "8/255"]
"""


def _records(folder):
    return {p.stem: p for p in folder.glob("*.json") if p.stem != "experiment"}


def _cmd(tmp_path, out):
    return [
        sys.executable,
        "-m",
        "vladv",
        "run",
        "-c",
        str(tmp_path / "exp.toml"),
        "--plugin",
        str(tmp_path / "slow_plugin.py"),
        "--plugin",
        TINY_WORLD,
        "--output",
        str(out),
        "-q",
    ]


def test_sigkill_mid_grid_then_resume_matches_uninterrupted_run(tmp_path):
    (tmp_path / "slow_plugin.py").write_text(PLUGIN)
    (tmp_path / "exp.toml").write_text(TOML)
    env = {**os.environ, "VLADV_HOME": str(tmp_path / "home")}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(tmp_path, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(_records(killed)) < 2 and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _records(killed)
    assert 2 <= len(done) < 6, "the kill should land mid-grid"
    before = {rid: (p.read_text(), p.stat().st_mtime_ns) for rid, p in done.items()}
    for text, _ in before.values():
        json.loads(text)  # every record on disk is complete

    res = subprocess.run(
        _cmd(tmp_path, killed), env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    after = _records(killed)
    assert len(after) == 6
    for rid, (text, mtime) in before.items():  # finished cells were not recomputed
        assert after[rid].read_text() == text and after[rid].stat().st_mtime_ns == mtime

    fresh = tmp_path / "fresh"
    with _slow_plugin(tmp_path):
        run(config=tmp_path / "exp.toml", output=fresh, progress=False)
    ref = _records(fresh)
    assert set(ref) == set(after)
    for rid in ref:
        a, b = json.loads(after[rid].read_text()), json.loads(ref[rid].read_text())
        assert a["metrics"] == b["metrics"] and a["config"]["attack"] == b["config"]["attack"]


@contextlib.contextmanager
def _slow_plugin(tmp_path):
    registry = get_registry()
    name = registry.register_file(tmp_path / "slow_plugin.py")
    try:
        with registered_plugin(tiny_plugin):
            yield
    finally:
        registry.unregister(name)


def test_a_different_grid_in_the_same_directory_is_refused(tmp_path):
    (tmp_path / "slow_plugin.py").write_text(PLUGIN.replace("sleep=0.4", "sleep=0"))
    (tmp_path / "exp.toml").write_text(TOML.replace("seeds = [0, 1]", "seeds = [0]"))
    out = tmp_path / "out"
    with _slow_plugin(tmp_path):
        run(config=tmp_path / "exp.toml", output=out, progress=False)
        with pytest.raises(VladvError, match="different experiment grid"):
            run(config=tmp_path / "exp.toml", output=out, seed=5, progress=False)
        planned = run(
            config=tmp_path / "exp.toml", output=out, seed=[0, 7], dry_run=True, progress=False
        )
        assert [c["done"] for c in planned] == [True] * 3 + [False] * 3  # dry run: nothing written
        assert {c["run_id"] for c in planned if c["done"]} == set(_records(out))
        run(config=tmp_path / "exp.toml", output=out, seed=5, progress=False, force=True)
    assert len(_records(out)) == 6
