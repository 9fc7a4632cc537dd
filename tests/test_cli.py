import json

import pytest
from plugin_factory import FOO_MODULE
from typer.testing import CliRunner

from vladv.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def fgsm(tmp_path):
    path = tmp_path / "fgsm_plugin.py"
    path.write_text(FOO_MODULE.replace("yield from tiny_plugin", "yield from ()  #"))
    return path


def test_clean_run_writes_a_record_and_resumes(tiny, tmp_path):
    out = tmp_path / "runs"
    res = invoke("run", "--backbone", "tiny", "--dataset", "tiny", "--output", str(out), "-q")
    assert res.exit_code == 0, res.output
    assert "TR@1" in res.output
    [path] = [p for p in out.glob("*.json") if p.name != "experiment.json"]
    rec = json.loads(path.read_text())
    assert set(rec["metrics"]["clean"]) == {
        "tr_r1",
        "tr_r5",
        "tr_r10",
        "ir_r1",
        "ir_r5",
        "ir_r10",
        "rsum",
    }
    for key in ("schema_version", "run_id", "config", "versions"):
        assert key in rec
    assert rec["config"]["seed"] == 0 and rec["config"]["dataset"]["options"]["n_images"] == 8
    again = invoke("run", "--backbone", "tiny", "--dataset", "tiny", "--output", str(out), "-q")
    assert again.exit_code == 0 and "skipping finished run" in again.output
    assert json.loads(path.read_text())["created"] == rec["created"]


def test_attack_from_plugin_file_with_options(tiny, tmp_path, fgsm):
    res = invoke(
        "run",
        "--backbone",
        "tiny",
        "--dataset",
        "tiny",
        "--plugin",
        str(fgsm),
        "--attack",
        "foo-fgsm",
        "--attack-opt",
        "eps=2/255",
        "--output",
        str(tmp_path),
        "-q",
        "--json",
    )
    assert res.exit_code == 0, res.output
    [rec] = json.loads(res.stdout[res.stdout.index("[") :])
    assert set(rec["metrics"]["asr"]) == {
        "tr_r1_conditional",
        "ir_r1_conditional",
        "tr_r1_delta",
        "ir_r1_delta",
    }
    assert 0 < rec["metrics"]["budget"]["max_linf"] <= 2 / 255 + 1e-6
    assert rec["metrics"]["budget"]["max_words_changed"] == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["--attack", "sgaa"], "unknown attack 'sgaa'"),
        (["--backbone", "tinyy"], "unknown backbone 'tinyy'; did you mean 'tiny'?"),
        (
            ["--backbone-opt", "embed_dim=abc"],
            "backbone 'tiny': option 'embed_dim' expects an integer",
        ),
        (["--backbone-opt", "width=3"], "backbone 'tiny': unknown option 'width'"),
        (  # the NAME. prefix works for every kind, as in experiment files and the Python API
            ["--backbone-opt", "tiny.embed_dim=abc"],
            "backbone 'tiny': option 'embed_dim' expects an integer",
        ),
        (["--dataset-opt", "n_images"], "--dataset-opt expects KEY=VALUE"),
        (["--attack-opt", "eps=1"], "no attack in this run (none) has an option 'eps'"),
        (["--precision", "fp8"], "precision must be fp32, bf16 or fp16"),
        (["--device", "cuda:0"], "CUDA is not available"),
        (["--batch-size", "0"], "batch size must be at least 1"),
    ],
)
def test_user_errors_exit_2_with_one_line(tiny, tmp_path, args, message):
    res = invoke(
        "run", "--backbone", "tiny", "--dataset", "tiny", "--output", str(tmp_path), "-q", *args
    )
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output


def test_plugins_command_lists_options(tiny):
    res = invoke("plugins", "--options", "tiny")
    assert res.exit_code == 0 and "embed_dim" in res.output
    res = invoke("plugins", "--json")
    data = json.loads(res.stdout)
    row = next(p for p in data["plugins"] if p["name"] == "tiny" and p["kind"] == "backbone")
    assert {o["name"] for o in row["options"]} == {"image_size", "embed_dim", "seed"}


def test_help_has_examples():
    for cmd in ("run", "pretrain", "plugins"):
        res = invoke(cmd, "--help")
        assert res.exit_code == 0 and "Examples" in res.output


@pytest.mark.parametrize("width", [80, 240])
def test_result_table_never_cuts_its_numbers(width):
    import io
    from pathlib import Path

    from rich.console import Console

    from vladv.render import summary_table

    folder = Path(__file__).resolve().parent.parent / "docs" / "results" / "records"
    records = [
        json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.stem != "experiment"
    ][:6]
    out = io.StringIO()
    Console(file=out, width=width).print(summary_table(records))
    text = out.getvalue()
    for rec in records:
        clean = rec["metrics"]["clean"]
        assert f"{clean['tr_r1']:.1f}/{clean['ir_r1']:.1f}" in text
        adv, asr = rec["metrics"]["adversarial"], rec["metrics"]["asr"]
        assert f"{adv['tr_r1']:.1f}/{adv['ir_r1']:.1f}" in text
        assert f"{asr['tr_r1_conditional']:.1f}/{asr['ir_r1_conditional']:.1f}" in text
