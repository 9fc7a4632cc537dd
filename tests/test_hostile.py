"""Hostile inputs: every case exits 2 with one `error:` line on stderr and no traceback (or takes
its documented recovery), and leaves every file that existed before byte-identical.

The CLI is invoked in-process (Typer's runner keeps stdout and stderr apart and reports an
uncaught exception as exit 1, so a traceback cannot pass); a few subprocess cases check the real
console script. See docs/reliability.md for the promises these cases test.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from plugin_factory import write_distribution
from typer.testing import CliRunner

import vladv
from vladv.checkpoints import load_state_dict, save_state_dict
from vladv.cli import app
from vladv.errors import CheckpointError, VladvError
from vladv.plugins import get_registry, reset_registry
from vladv.testing import TinyBackbone, tiny_dataset
from vladv.training import PairSampler, Schedule, contrastive_loss, train
from vladv.types import Context

runner = CliRunner()
TINY = ["run", "--backbone", "tiny", "--dataset", "tiny", "-q"]
TINY_WORLD = str(Path(__file__).with_name("tiny_world.py"))


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def assert_untouched(before: dict[str, bytes], root: Path) -> None:
    """Every file of ``before`` still exists with the same bytes."""
    for rel, data in before.items():
        path = root / rel
        assert path.is_file(), f"{rel} was lost"
        assert path.read_bytes() == data, f"{rel} was changed"


def assert_one_error_line(res, code: int = 2, match: str | None = None) -> str:
    """Exit ``code``, exactly one ``error:`` line on stderr, no traceback anywhere."""
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    if match is not None:
        assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def ws(tmp_path, tiny):
    """A workspace holding a user's files that no failing command may touch."""
    (tmp_path / "notes.txt").write_text("my notes\n")
    old = tmp_path / "runs" / "old"
    old.mkdir(parents=True)
    (old / "experiment.json").write_text('{"schema_version": 2, "grid": {"name": "old"}}\n')
    (old / "0123456789abcdef.json").write_text('{"run_id": "0123456789abcdef", "metrics": {}}\n')
    return tmp_path


def cli_case(ws: Path, args: list[str], match: str | None = None, code: int = 2) -> str:
    """Run the CLI on hostile ``args`` inside ``ws``; check the error line and the files."""
    before = snapshot(ws)
    cwd = os.getcwd()
    os.chdir(ws)
    try:
        res = runner.invoke(app, args)
    finally:
        os.chdir(cwd)
    line = assert_one_error_line(res, code, match)
    assert_untouched(before, ws)
    return line


# ----------------------------------------------------------------------------------------------
# CLI flags
# ----------------------------------------------------------------------------------------------
FLAG_CASES = {
    "markup-in-name": (["--attack", "[/]"], "unknown attack '[/]'"),
    "markup-in-option": (["--attack", "pgd", "--attack-opt", "norm=[/bold]"], "option 'norm'"),
    "seed-beyond-torch": (["--seed", str(2**64)], "seed must lie in"),
    "seed-negative": (["--seed", "-1"], "seed must lie in"),
    "batch-zero": (["--batch-size", "0"], "batch size must be at least 1"),
    "batch-absurd": (["--batch-size", str(10**12)], "batch size must be at most"),
    "workers-absurd": (["--num-workers", "100000"], "num_workers must be at most"),
    "workers-negative": (["--num-workers", "-2"], "num_workers must be at least 0"),
    "examples-negative": (["--save-examples", "-1"], "save_examples must be at least 0"),
    "nproc-zero": (["--nproc", "0"], "--nproc must lie in"),
    "nproc-absurd": (["--nproc", "100000"], "--nproc must lie in"),
    "eps-huge": (["--attack", "pgd", "--attack-opt", "eps=1e9"], "option 'eps' must lie in"),
    "eps-linf-above-1": (["--attack", "pgd", "--attack-opt", "eps=2"], "at most 1"),
    "eps-nan": (["--attack", "pgd", "--attack-opt", "eps=nan"], "expects a number"),
    "eps-inf": (["--attack", "pgd", "--attack-opt", "eps=inf"], "expects a number"),
    "eps-div-zero": (["--attack", "pgd", "--attack-opt", "eps=1/0"], "expects a number"),
    "eps-negative": (["--attack", "pgd", "--attack-opt", "eps=-1/255"], "must lie in"),
    "steps-absurd": (["--attack", "pgd", "--attack-opt", "steps=100000"], "[0, 10000]"),
    "steps-int64": (["--attack", "pgd", "--attack-opt", f"steps={10**30}"], "64-bit integer"),
    "sga-step-size": (["--attack", "sga", "--attack-opt", "step_size=5"], "option 'step_size'"),
    "norm-unknown": (["--attack", "pgd", "--attack-opt", "norm=l3"], "expects one of"),
    "option-int64": (["--backbone-opt", f"seed={2**70}"], "64-bit integer"),
    "defense-steps-absurd": (
        ["--defense", "tecoa", "--defense-opt", f"steps={10**9}"],
        "option 'steps' must lie in",
    ),
    "device-unknown": (["--device", "tpu"], "unknown device"),
    "device-bad-index": (["--device", "cuda:abc"], "unknown device"),
    "defense-entry": (["--defense", "tecoa+"], "bad defense entry"),
    "plugin-missing": (["--plugin", "nope.py"], "plugin file not found"),
    "config-missing": (["-c", "nope.toml"], "experiment file not found"),
    "config-is-folder": (["-c", "runs"], "cannot read experiment file"),
    "output-is-file": (["--output", "notes.txt"], "a file is in the way"),
    "output-under-file": (["--output", "notes.txt/sub"], "a file is in the way"),
    "output-is-record": (["--output", "runs/old/0123456789abcdef.json"], "a file is in the way"),
}


@pytest.mark.parametrize("case", list(FLAG_CASES))
def test_hostile_flags(ws, case):
    args, match = FLAG_CASES[case]
    cli_case(ws, [*TINY, *args], match)


USAGE_CASES = {
    "seed-not-int": (["run", "--seed", "abc"], "Invalid value for '--seed'"),
    "batch-not-int": (["run", "--batch-size", "x"], "Invalid value for '--batch-size'"),
    "unknown-flag": (["run", "--frobnicate"], "No such option: --frobnicate"),
    "missing-value": (["run", "--seed"], "requires an argument"),
    "unknown-command": (["runn"], "No such command 'runn'"),
    "pretrain-seed": (["pretrain", "--seed", str(2**70), "tiny"], "seed must lie in"),
}


@pytest.mark.parametrize("case", list(USAGE_CASES))
def test_usage_errors_through_the_entry_point(ws, case, monkeypatch, capsys):
    """The console-script entry point (``vladv.cli.main``) makes usage errors one line too."""
    from vladv.cli import main

    args, match = USAGE_CASES[case]
    before = snapshot(ws)
    monkeypatch.chdir(ws)
    monkeypatch.setattr(sys, "argv", ["vladv", *args])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert info.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0] and "Traceback" not in err
    assert_untouched(before, ws)


def test_config_not_text(ws):
    (ws / "bin.toml").write_bytes(b"\xff\xfe\x00garbage")
    cli_case(ws, [*TINY, "-c", "bin.toml"], "invalid TOML")


# ----------------------------------------------------------------------------------------------
# Experiment files
# ----------------------------------------------------------------------------------------------
TOML_CASES = {
    "batch-string": ('[experiment]\nbatch_size = "x"\n', "batch size must be an integer"),
    "batch-float": ("[experiment]\nbatch_size = 1.5\n", "batch size must be an integer"),
    "batch-bool": ("[experiment]\nbatch_size = true\n", "batch size must be an integer"),
    "seeds-strings": ('[experiment]\nseeds = ["a"]\n', "seeds must be a list of ints"),
    "seeds-floats": ("[experiment]\nseeds = [1.0]\n", "seeds must be a list of ints"),
    "seeds-negative": ("[experiment]\nseeds = [-5]\n", "seed must lie in"),
    "seeds-table": ("[experiment]\nseeds = {a = 1}\n", "seeds must be a list of ints"),
    "experiment-number": ("experiment = 3\n", "'experiment' must be a table"),
    "options-number": ("options = 5\n", "[options] holds one table per kind"),
    "options-kind-number": ("[options]\nattack = 3\n", "[options] holds one table per kind"),
    "options-unknown-kind": ("[options.model]\nx = 1\n", "[options] holds one table per kind"),
    "option-table-value": (
        '[experiment]\nattacks = ["pgd"]\n[options.attack]\npgd.eps = {a = 1}\n',
        "option 'eps' expects a number",
    ),
    "option-steps-float": (
        '[experiment]\nattacks = ["pgd"]\n[options.attack]\n"pgd.steps" = 1e12\n',
        "option 'steps' must lie in",
    ),
    "option-eps-string": (
        '[experiment]\nattacks = ["pgd"]\n[options.attack]\n"pgd.eps" = "1e9"\n',
        "option 'eps' must lie in",
    ),
    "attacks-number": ("[experiment]\nattacks = 5\n", "attacks must be a list of strs"),
    "attacks-numbers": ("[experiment]\nattacks = [1, 2]\n", "attacks must be a list of strs"),
    "name-escapes": ('[experiment]\nname = "../../escape"\n', "experiment name must be one folder"),
    "name-absolute": ('[experiment]\nname = "/tmp/x"\n', "experiment name must be one folder"),
    "name-dots": ('[experiment]\nname = ".."\n', "experiment name must be one folder"),
    "name-number": ("[experiment]\nname = 5\n", "experiment name must be one folder"),
    "precision-number": ("[experiment]\nprecision = 16\n", "precision must be fp32"),
    "output-number": ("[experiment]\noutput = 5\n", "output must be a folder path"),
    "device-number": ("[experiment]\ndevice = 0\n", "device must be a string"),
    "workers-string": ('[experiment]\nnum_workers = "2"\n', "num_workers must be an integer"),
    "workers-absurd": ("[experiment]\nnum_workers = 10000\n", "num_workers must be at most"),
    "examples-negative": ("[experiment]\nsave_examples = -3\n", "save_examples must be at least"),
    "unknown-table": ("[foo]\nx = 1\n", "unknown table(s) foo"),
    "unknown-key": ("[experiment]\nfoo = 1\n", "unknown key experiment.foo"),
    "invalid-toml": ("[experiment\n", "invalid TOML"),
}


@pytest.mark.parametrize("case", list(TOML_CASES))
def test_hostile_experiment_files(ws, case):
    text, match = TOML_CASES[case]
    grid = '[experiment]\nbackbones = ["tiny"]\ndatasets = ["tiny"]\n'
    if "[experiment]\n" in text:
        text = text.replace("[experiment]\n", grid, 1)
    elif not text.startswith("experiment ="):
        text = text + "\n" + grid  # top-level keys come before tables
    (ws / "exp.toml").write_text(text)
    line = cli_case(ws, ["run", "-c", "exp.toml", "-q"], match)
    assert "exp.toml" in line or "option '" in line  # the file is named, or the plugin option


# ----------------------------------------------------------------------------------------------
# Dataset files (karpathy): one line naming the file and entry; nothing read outside image_root
# ----------------------------------------------------------------------------------------------
def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), (200, 30, 30)).save(path)


DATA_CASES = {
    "not-json": ("{nope", "invalid JSON"),
    "a-number": ("3", "expected a JSON list"),
    "entry-not-object": ("[5]", "entry 0: expected an object"),
    "caption-number": ('[{"image": "imgs/a.png", "caption": 7}]', "'caption' must be a string"),
    "escape-root": ('[{"image": "../secret.png", "caption": ["x"]}]', "outside image_root"),
    "absolute-path": ('[{"image": "/etc/hostname", "caption": ["x"]}]', "outside image_root"),
    "image-missing": ('[{"image": "imgs/none.png", "caption": ["x"]}]', "image not found"),
    "image-corrupt": (
        (
            '[{"image": "imgs/bad.png", "caption": ["x"]}, '
            '{"image": "imgs/a.png", "caption": ["y"]}]'
        ),
        "cannot read image",
    ),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_hostile_dataset_files(ws, case):
    text, match = DATA_CASES[case]
    root = ws / "data"
    _png(root / "imgs" / "a.png")
    _png(ws / "secret.png")
    (root / "imgs" / "bad.png").write_bytes(b"not an image at all")
    (root / "ann.json").write_text(text)
    cli_case(
        ws,
        [
            "run",
            "--backbone",
            "tiny",
            "--dataset",
            "karpathy",
            "-q",
            "--dataset-opt",
            "path=data/ann.json",
            "--dataset-opt",
            "image_size=16",
        ],
        match,
    )


# ----------------------------------------------------------------------------------------------
# Plugins
# ----------------------------------------------------------------------------------------------
ATTACK_HEAD = """
import sys
import torch
import vladv


class Base(vladv.Attack):
    @property
    def threat_model(self):
        return vladv.ThreatModel("image", "linf", 0.01)

    def perturb(self, backbone, batch, generator):
        return vladv.AttackOutput(batch.images.clone(), list(batch.texts))

"""

PLUGIN_CASES = {
    "exit-at-import": ("import sys\nsys.exit(0)\n", "called sys.exit(0)"),
    "exit-3-at-import": ("import sys\nsys.exit(3)\n", "called sys.exit(3)"),
    "syntax-error": ("def (:\n", "failed to import"),
    "raises-at-import": ("raise RuntimeError('boom [/]')\n", "boom [/]"),
    "hook-exits": (
        ATTACK_HEAD + "@vladv.hookimpl\ndef vladv_attacks():\n    sys.exit(1)\n",
        "is broken: vladv_attacks failed",
    ),
    "bad-spec-name": (
        ATTACK_HEAD + "@vladv.hookimpl\ndef vladv_attacks():\n"
        "    yield vladv.AttackSpec(name='Bad Name', summary='x', factory=Base)\n",
        "is broken: vladv_attacks failed",
    ),
    "factory-wrong-type": (
        ATTACK_HEAD + "@vladv.hookimpl\ndef vladv_attacks():\n"
        "    yield vladv.AttackSpec(name='evil', summary='x', "
        "factory=lambda o, c: 42)\n",
        "factory returned int, not Attack",
    ),
    "threat-model-wrong": (
        ATTACK_HEAD + "class T(Base):\n    threat_model = 'all'\n\n"
        "@vladv.hookimpl\ndef vladv_attacks():\n"
        "    yield vladv.AttackSpec(name='evil', summary='x', factory=T)\n",
        "threat_model is str",
    ),
    "perturb-returns-none": (
        ATTACK_HEAD + "class P(Base):\n    def perturb(self, *a):\n"
        "        return None\n\n@vladv.hookimpl\ndef vladv_attacks():\n"
        "    yield vladv.AttackSpec(name='evil', summary='x', factory=P)\n",
        "perturb returned NoneType",
    ),
    "perturb-wrong-shape": (
        ATTACK_HEAD + "class P(Base):\n    def perturb(self, b, batch, g):\n"
        "        return vladv.AttackOutput(batch.images[:1], [])\n\n"
        "@vladv.hookimpl\ndef vladv_attacks():\n"
        "    yield vladv.AttackSpec(name='evil', summary='x', factory=P)\n",
        "wrong shape",
    ),
    "not-python": (None, "is not a Python (.py) file"),
}


@pytest.mark.parametrize("case", list(PLUGIN_CASES))
def test_hostile_plugin_files(ws, case):
    source, match = PLUGIN_CASES[case]
    name = "evil.txt" if source is None else f"evil_{case.replace('-', '_')}.py"
    (ws / name).write_text(source or "print('hi')\n")
    registry = get_registry()
    try:
        cli_case(ws, [*TINY, "--plugin", name, "--attack", "evil"], match)
    finally:
        registry.unregister(f"file:{name}")


EXIT_MODULE = "import sys\nsys.exit(0)\n"


def test_installed_plugin_that_exits_at_import_is_reported_broken(tmp_path, monkeypatch):
    """A third-party distribution calling sys.exit() at import no longer ends every command."""
    site = write_distribution(
        tmp_path / "site", "vladv-exit", "vladv_exit", EXIT_MODULE, entry_name="exiter"
    )
    monkeypatch.syspath_prepend(str(site))
    reset_registry()
    try:
        res = runner.invoke(app, ["plugins", "--json"])
        assert res.exit_code == 0, (res.stdout, res.stderr, res.exception)
        [broken] = json.loads(res.stdout)["broken"]
        assert broken["plugin"] == "exiter" and "sys.exit(0)" in broken["error"]
        res = runner.invoke(app, ["plugins"])
        assert res.exit_code == 0 and "broken" in res.stdout and "exiter" in res.stdout
    finally:
        reset_registry()
        sys.modules.pop("vladv_exit", None)


def test_console_script_with_exiting_plugin_still_runs(tmp_path):
    """The real entry point (subprocess): same as in-process, and a one-line user error."""
    site = write_distribution(
        tmp_path / "site", "vladv-exit", "vladv_exit", EXIT_MODULE, entry_name="exiter"
    )
    (tmp_path / "taken").write_text("precious\n")
    env = {**os.environ, "PYTHONPATH": str(site), "VLADV_HOME": str(tmp_path / "home")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "vladv",
            "run",
            "--plugin",
            TINY_WORLD,
            "--backbone",
            "tiny",
            "--dataset",
            "tiny",
            "-q",
            "--output",
            str(tmp_path / "taken"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot create the folder"), res.stderr
    assert (tmp_path / "taken").read_text() == "precious\n"


# ----------------------------------------------------------------------------------------------
# Storage: VLADV_HOME, cached checkpoints, resume state
# ----------------------------------------------------------------------------------------------
DEFENSE = [
    "--defense",
    "tecoa",
    "--defense-opt",
    "steps=2",
    "--defense-opt",
    "batch_size=4",
    "--defense-opt",
    "pgd_steps=1",
]


def test_vladv_home_is_a_file(ws, monkeypatch):
    (ws / "home").write_text("not a folder\n")
    monkeypatch.setenv("VLADV_HOME", str(ws / "home"))
    cli_case(ws, [*TINY, *DEFENSE], "is a file, not a folder")


def test_vladv_home_under_a_file(ws, monkeypatch):
    monkeypatch.setenv("VLADV_HOME", str(ws / "notes.txt" / "home"))
    cli_case(ws, [*TINY, *DEFENSE], "a file is in the way")


@pytest.mark.parametrize("payload", ["random-bytes", "empty", "pickle"])
def test_corrupt_cached_defense_is_retrained(ws, monkeypatch, payload, capsys):
    """Documented recovery: an unusable cached defended model is replaced by training afresh."""
    monkeypatch.setenv("VLADV_HOME", str(ws / "home"))
    kw = {
        "backbone": "tiny",
        "dataset": "tiny",
        "defense": "tecoa",
        "progress": False,
        "output": False,
        "defense_options": {"steps": "2", "batch_size": "4", "pgd_steps": "1"},
    }
    first = vladv.run(**kw)[0]
    [final] = (ws / "home" / "defenses").glob("tecoa-*/model.safetensors")
    final.write_bytes(_hostile_bytes(payload, ws))
    capsys.readouterr()
    again = vladv.run(**kw)[0]
    err = capsys.readouterr().err
    assert "unusable cached tecoa checkpoint" in err and "Traceback" not in err
    assert again["metrics"] == first["metrics"]  # retrained to the same model
    load_state_dict(final)  # and the cache holds a good checkpoint again
    assert not (ws / "pwned").exists()


class _Evil:
    """A pickle payload that would create a file if a loader ever executed it."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


def _hostile_bytes(kind: str, ws: Path) -> bytes:
    if kind == "random-bytes":
        return os.urandom(256)
    if kind == "empty":
        return b""
    return pickle.dumps({"state_dict": _Evil(ws / "pwned")})


def _train(workdir: Path, steps: int = 4) -> tuple[TinyBackbone, list[float]]:
    model = TinyBackbone(seed=0)
    sampler = PairSampler(tiny_dataset(8, seed=3, split="train"), 4, seed=0)

    def loss(batch):
        return contrastive_loss(
            model.encode_image(batch.images), model.encode_text(batch.texts), model.logit_scale
        )

    losses = train(
        model,
        model.parameters(),
        sampler,
        loss,
        Schedule(steps=steps, lr=1e-2, checkpoint_every=2),
        Context(progress=False),
        workdir,
    )
    return model, losses


@pytest.fixture(scope="module")
def fresh_losses(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("fresh"))[1]


def _state_cases(ws: Path) -> dict[str, object]:
    other = TinyBackbone(embed_dim=8)
    return {
        "random-bytes": os.urandom(300),
        "empty": b"",
        "truncated": None,  # the first 40 bytes of a real state
        "pickle-payload": pickle.dumps(
            {"step": 2, "optimizer": _Evil(ws / "pwned"), "scheduler": {}}
        ),
        "not-a-dict": [1, 2, 3],
        "step-beyond-schedule": {"step": 10**9, "optimizer": {}, "scheduler": {}},
        "step-not-int": {"step": "2", "optimizer": {}, "scheduler": {}},
        "weights-of-other-model": other,
    }


@pytest.mark.parametrize(
    "case",
    [
        "random-bytes",
        "empty",
        "truncated",
        "pickle-payload",
        "not-a-dict",
        "step-beyond-schedule",
        "step-not-int",
        "weights-of-other-model",
        "steps-mismatch",
    ],
)
def test_unusable_resume_state_is_discarded(tmp_path, case, fresh_losses, capsys):
    """Documented recovery: one warning line, training afresh, identical to a clean run."""
    workdir = tmp_path / "work"
    _train(workdir, steps=2)  # a genuine resumable state at step 2
    state = workdir / "train_state.pt"
    value = _state_cases(tmp_path).get(case)
    if case == "truncated":
        state.write_bytes(state.read_bytes()[:40])
    elif case == "steps-mismatch":  # weights of step 2 tagged as step 1
        save_state_dict(
            load_state_dict(workdir / "last.safetensors"),
            workdir / "last.safetensors",
            metadata={"step": "1"},
        )
    elif case == "weights-of-other-model":
        other = value.state_dict()  # type: ignore[union-attr]
        save_state_dict(other, workdir / "last.safetensors", metadata={"step": "2"})
    elif isinstance(value, bytes):
        state.write_bytes(value)
    else:
        torch.save(value, state)
    capsys.readouterr()
    _, losses = _train(workdir)
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if "discarding unusable resume state" in ln]
    assert len(warnings) == 1 and "Traceback" not in err, err
    assert losses == pytest.approx(fresh_losses, abs=1e-6)  # trained afresh, all four steps
    assert not (tmp_path / "pwned").exists()


def test_pickle_payload_checkpoint_is_refused_not_executed(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"w": _Evil(tmp_path / "pwned")}))
    with pytest.raises(CheckpointError, match="cannot load checkpoint") as info:
        load_state_dict(path)
    assert "\n" not in str(info.value) and not (tmp_path / "pwned").exists()


# ----------------------------------------------------------------------------------------------
# Records: strict JSON, flagged results, unreadable records
# ----------------------------------------------------------------------------------------------
NAN_PLUGIN = (
    ATTACK_HEAD
    + """
class NaNs(Base):
    def perturb(self, backbone, batch, generator):
        return vladv.AttackOutput(torch.full_like(batch.images, float("nan")), list(batch.texts))


@vladv.hookimpl
def vladv_attacks():
    yield vladv.AttackSpec(name="nans", summary="returns NaN images", factory=NaNs)
"""
)


def _strict(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_nan_attack_gives_a_strict_flagged_record(ws):
    (ws / "nan_plugin.py").write_text(NAN_PLUGIN)
    before = snapshot(ws)
    try:
        res = runner.invoke(
            app,
            [
                *TINY,
                "--plugin",
                str(ws / "nan_plugin.py"),
                "--attack",
                "nans",
                "--output",
                str(ws / "out"),
            ],
        )
    finally:
        get_registry().unregister("file:nan_plugin.py")
    assert res.exit_code == 0, (res.stderr, res.exception)
    warnings = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: run ")
    assert "flagged" in warnings[0]
    [path] = [p for p in (ws / "out").glob("*.json") if p.name != "experiment.json"]
    rec = _strict(path.read_text())
    assert rec["schema_version"] >= 3  # strict records since schema 3
    assert any("non-finite pixels" in w for w in rec["warnings"])
    assert rec["metrics"]["adversarial"]["tr_r1"] is None
    assert rec["metrics"]["budget"]["max_linf"] is None
    assert rec["metrics"]["clean"]["tr_r1"] is not None
    assert_untouched(before, ws)


def test_unreadable_record_in_output_is_reported_not_replaced(ws):
    out = ws / "out"
    res = runner.invoke(app, [*TINY, "--output", str(out)])
    assert res.exit_code == 0, res.stderr
    [path] = [p for p in out.glob("*.json") if p.name != "experiment.json"]
    path.write_text("{ torn")
    cli_case(ws, [*TINY, "--output", str(out)], "cannot read result record")


def test_other_grid_in_output_is_refused(ws):
    cli_case(ws, [*TINY, "--output", "runs/old", "--seed", "3"], "different experiment grid")


# ----------------------------------------------------------------------------------------------
# Python API: one VladvError (one line) for every wrong type or range, before any work
# ----------------------------------------------------------------------------------------------
API_CASES = {
    "batch-string": ({"batch_size": "4"}, "batch size must be an integer"),
    "batch-float": ({"batch_size": 4.0}, "batch size must be an integer"),
    "seed-string": ({"seed": "3"}, "seed must be an integer"),
    "seed-float": ({"seed": 3.5}, "seed must be an integer"),
    "seed-bool": ({"seed": True}, "seed must be an integer"),
    "seed-list-mixed": ({"seed": [0, "1"]}, "seed must be an integer"),
    "seed-huge": ({"seed": 2**64}, "seed must lie in"),
    "backbone-number": ({"backbone": 5}, "backbones must be plugin names"),
    "attack-list-mixed": ({"attack": ["pgd", 3]}, "attacks must be plugin names"),
    "options-string": ({"attack": "pgd", "attack_options": "eps=1"}, "must be a mapping"),
    "options-key-number": ({"attack": "pgd", "attack_options": {1: 2}}, "must map a kind"),
    "options-eps-huge": ({"attack": "pgd", "attack_options": {"eps": 1e9}}, "must lie in"),
    "device-number": ({"device": 0}, "device must be a string"),
    "workers-string": ({"num_workers": "2"}, "num_workers must be an integer"),
    "examples-negative": ({"save_examples": -1}, "save_examples must be at least"),
    "output-number": ({"output": 5}, "output must be a folder path"),
    "config-number": ({"config": 5}, "config must be a path"),
    "precision-number": ({"precision": 16}, "precision must be fp32"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_hostile_python_api(ws, case):
    kwargs, match = API_CASES[case]
    before = snapshot(ws)
    with pytest.raises(VladvError, match=None) as info:
        vladv.run(**{"backbone": "tiny", "dataset": "tiny", "progress": False, **kwargs})
    assert match in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert_untouched(before, ws)


# ----------------------------------------------------------------------------------------------
# Signals and concurrency
# ----------------------------------------------------------------------------------------------
SLOW_PLUGIN = (
    ATTACK_HEAD
    + """
import time


class Slow(Base):
    def perturb(self, backbone, batch, generator):
        time.sleep(0.3)
        return super().perturb(backbone, batch, generator)


@vladv.hookimpl
def vladv_attacks():
    yield vladv.AttackSpec(name="slow", summary="slow identity", factory=Slow)
"""
)


def test_sigint_exits_130_with_one_line_and_resumes(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_PLUGIN)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "vladv",
        "run",
        "--plugin",
        TINY_WORLD,
        "--plugin",
        str(tmp_path / "slow.py"),
        "--backbone",
        "tiny",
        "--dataset",
        "tiny",
        "--attack",
        "slow",
        "--seed",
        "0",
        "--seed",
        "1",
        "--seed",
        "2",
        "--batch-size",
        "2",
        "-q",
        "--output",
        str(out),
    ]
    env = {**os.environ, "VLADV_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    records = []
    while time.time() < deadline and not records and proc.poll() is None:
        records = [p for p in out.glob("*.json") if p.name != "experiment.json"]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), err
    done = {p.name: p.read_bytes() for p in out.glob("*.json") if p.name != "experiment.json"}
    assert 1 <= len(done) < 3
    for data in done.values():
        _strict(data.decode())  # every record on disk is complete
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    after = {p.name: p.read_bytes() for p in out.glob("*.json") if p.name != "experiment.json"}
    assert len(after) == 3 and all(after[k] == v for k, v in done.items())


def test_concurrent_trainings_of_one_defense_share_no_temporary_file(tmp_path, monkeypatch):
    """Two trainings checkpointing into the same folder at once both finish, and every
    temporary file name is unique (no fixed-name file that one writer could clobber)."""
    import vladv.checkpoints as ck

    names: list[str] = []
    real_save = torch.save

    def spy(obj, path, *a, **k):
        names.append(str(path))
        time.sleep(0.01)  # widen the window in which two writers overlap
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(ck.torch, "save", spy)
    workdir = tmp_path / "work"
    errors: list[BaseException] = []

    def job():
        try:
            _train(workdir, steps=4)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(names) == 4 and len(set(names)) == 4  # 2 checkpoints each, 4 distinct temp files
    assert not list(workdir.glob("*.tmp"))
    _, losses = _train(workdir, steps=4)
    assert losses == []  # the state left behind is complete: nothing left to train


# ----------------------------------------------------------------------------------------------
# Reports (vladv/reports.py is hardened separately; these run last)
# ----------------------------------------------------------------------------------------------
def _record_folder(ws: Path) -> Path:
    out = ws / "res"
    res = runner.invoke(
        app, [*TINY, "--attack", "pgd", "--save-examples", "1", "--output", str(out)]
    )
    assert res.exit_code == 0, res.stderr
    return out


def _edit_record(out: Path, edit) -> None:
    [path] = [p for p in out.glob("*.json") if p.name != "experiment.json"]
    rec = json.loads(path.read_text())
    edit(rec)
    path.write_text(json.dumps(rec))


def _report(ws: Path, out: Path) -> tuple[object, Path]:
    """``vladv report`` into ``ws/rep``: no traceback, pre-existing files untouched."""
    before = snapshot(ws)
    res = runner.invoke(app, ["report", str(out), "--output", str(ws / "rep")])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.stdout + res.stderr
    assert_untouched(before, ws)
    return res, ws / "rep"


def test_report_of_missing_folder(ws):
    cli_case(ws, ["report", "nowhere"], "no result directory")


def test_report_output_is_a_file(ws):
    out = _record_folder(ws)
    cli_case(ws, ["report", str(out), "--output", "notes.txt"])


def test_report_on_record_lacking_fields(ws):
    out = _record_folder(ws)
    _edit_record(out, lambda rec: rec.pop("config"))
    res, _ = _report(ws, out)
    assert res.exit_code in (0, 2), res.stderr


HOSTILE_TEXT = "<script>alert(1)</script>"


def test_report_escapes_html(ws):
    out = _record_folder(ws)

    def edit(rec):
        rec["experiment"] = HOSTILE_TEXT
        rec["config"]["attack"]["options"]["norm"] = HOSTILE_TEXT
        index = out / rec["examples"]
        data = json.loads(index.read_text())
        n = len(data["examples"][0]["clean_texts"])
        data["examples"][0]["clean_texts"] = [HOSTILE_TEXT] * n
        data["examples"][0]["adv_texts"] = [HOSTILE_TEXT + " x"] * n
        index.write_text(json.dumps(data))

    _edit_record(out, edit)
    res, rep = _report(ws, out)
    assert res.exit_code == 0, res.stderr
    pages = [p for p in rep.rglob("*") if p.suffix in (".html", ".md")]
    assert pages and not any(HOSTILE_TEXT in p.read_text() for p in pages)


@pytest.mark.parametrize("where", ["index", "image"])
def test_report_example_outside_the_folder_is_not_read(ws, where):
    out = _record_folder(ws)
    (ws / "secret.png").write_bytes(b"top secret bytes")

    def edit(rec):
        if where == "index":
            rec["examples"] = "../notes.txt"
            return
        index = out / rec["examples"]
        data = json.loads(index.read_text())
        data["examples"][0]["images"]["clean"] = "../../../secret.png"
        index.write_text(json.dumps(data))

    _edit_record(out, edit)
    res, rep = _report(ws, out)
    assert res.exit_code == 0, res.stderr
    copied = [p for p in rep.rglob("*") if p.is_file()]
    assert not any(p.read_bytes() in (b"top secret bytes", b"my notes\n") for p in copied)
