"""Writes throw-away third-party plugin distributions (dist-info + module) for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

FOO_MODULE = """
import vladv
from vladv.testing import noise_attack_spec, tiny_plugin


@vladv.hookimpl
def vladv_attacks():
    yield noise_attack_spec("foo-fgsm", "one-step FGSM from a third-party plugin", mode="fgsm",
                            eps=4 / 255)


@vladv.hookimpl
def vladv_backbones():
    yield from tiny_plugin.vladv_backbones()


@vladv.hookimpl
def vladv_datasets():
    yield from tiny_plugin.vladv_datasets()
"""

BROKEN_MODULE = "raise RuntimeError('this plugin is broken on purpose')\n"


def write_distribution(
    site: Path,
    dist: str,
    module: str,
    source: str,
    entry_name: str | None = None,
    version: str = "0.1.0",
) -> Path:
    """Create ``site/<module>.py`` and ``site/<dist>-<version>.dist-info`` with a vladv entry
    point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[vladv]\n{entry_name or module} = {module}\n")
    (info / "RECORD").write_text("")
    return site


def install_package(package: Path, site: Path) -> None:
    """``pip install --target site package`` (no deps, no build isolation), as a user would."""
    import subprocess
    import sys

    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(package),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]


def plugin_listing(env: dict[str, str]) -> dict:
    """``vladv plugins --json`` in a fresh process with ``env``."""
    import json
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "vladv", "plugins", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(res.stdout)
