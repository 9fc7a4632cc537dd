"""The report's HTML pages: self-contained folders, escaping, foreign folders, and a real browser.

The browser tests drive headless Chromium (Debian's ``chromium``; ``VLADV_CHROMIUM`` names
another binary) over the DevTools protocol on a pipe, with no Python dependency; they skip when
no Chromium can be started.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import json
import os
import re
import select
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vladv.cli import app

COMMITTED = Path(__file__).resolve().parent.parent / "docs" / "results" / "records"
EVIL = "<script>window.pwned=1</script>"
EVIL_IMG = "<img src=x onerror=window.pwned=1>"


@pytest.fixture
def records(tmp_path: Path) -> Path:
    """The committed records of defense ``none`` that kept examples, the manifest, and one record
    whose names, captions and image id are HTML (and rich markup)."""
    folder = tmp_path / "records"
    folder.mkdir()
    shutil.copy(COMMITTED / "experiment.json", folder)
    for path in sorted(COMMITTED.glob("*.json")):
        rec = json.loads(path.read_text())
        if (
            path.name != "experiment.json"
            and rec["config"]["defense"]["name"] == "none"
            and rec.get("examples")
            and (COMMITTED / rec["examples"]).exists()
        ):
            shutil.copy(path, folder)
            shutil.copytree(
                (COMMITTED / rec["examples"]).parent, folder / Path(rec["examples"]).parent
            )
    base = json.loads(next(folder.glob("8c1f*.json")).read_text())
    first = json.loads((folder / base["examples"]).read_text())["examples"][0]
    evil = {**base, "run_id": "evil", "examples": "examples/evil/index.json"}
    evil["config"] = {**base["config"], "defense": {"name": f"[/]{EVIL}", "options": {}}}
    example = {
        **first,
        "image_id": EVIL_IMG,
        "clean_texts": ["a red house", f"{EVIL} field"],
        "adv_texts": ["a blue house", f"{EVIL_IMG} field"],
        "images": {k: f"../{base['run_id']}/{v}" for k, v in first["images"].items()},
    }
    (folder / "examples" / "evil").mkdir()
    (folder / "examples" / "evil" / "index.json").write_text(json.dumps({"examples": [example]}))
    (folder / "evil.json").write_text(json.dumps(evil))
    return folder


def _report(*args: str) -> Any:
    return CliRunner().invoke(app, ["report", *map(str, args)], env={"COLUMNS": "200"})


def _links(page: Path) -> list[str]:
    return re.findall(r"(?:src|href)='([^']+)'", page.read_text())


@pytest.fixture
def moved_report(records: Path, tmp_path: Path) -> Path:
    """A report written to another folder, then moved, with the records folder deleted."""
    res = _report(records, "--output", tmp_path / "elsewhere" / "report")
    assert res.exit_code == 0, res.output
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "elsewhere" / "report", moved)
    shutil.rmtree(records)
    return moved


def test_a_report_written_elsewhere_is_self_contained(moved_report: Path):
    gallery, index = moved_report / "gallery.html", moved_report / "index.html"
    images = re.findall(r"<img src='([^']+)'", gallery.read_text())
    assert len(images) == 3 * (4 * 4 + 1)  # 4 records × 4 examples + the evil one, 3 images each
    for page in (gallery, index):
        for link in _links(page):
            assert not link.startswith(("/", "..", "file:", "http")), link
            assert (moved_report / link).resolve().is_file(), link
    assert {
        "gallery.html",
        "summary.md",
        "summary.csv",
        "records.csv",
        "robust_vs_eps.png",
        "defenses_attacks.png",
    } <= set(_links(index))
    assert "index.html" in _links(gallery)
    text = index.read_text()
    assert text.index("Configuration") < text.index("Summary") < text.index("Plots")
    assert "synthetic-aerial" in text and "pgd, bert-attack, co-attack, sga" in text
    assert "computed on" not in text  # records older than schema 5 do not say


def test_the_configuration_names_where_the_records_were_computed(records: Path, tmp_path: Path):
    """Float results depend on the CPU and the thread count (schema 5 records them)."""
    for i, path in enumerate(sorted(p for p in records.glob("*.json") if p.stem != "experiment")):
        rec = json.loads(path.read_text())
        rec["config"]["runtime"].update(threads=1 + i % 2, cpu="Some CPU")
        path.write_text(json.dumps(rec))
    res = _report(records, "--output", tmp_path / "out")
    assert res.exit_code == 0, res.output
    text = (tmp_path / "out" / "index.html").read_text()
    assert "<th>computed on</th><td>Some CPU, 1 threads, Some CPU, 2 threads</td>" in text


def test_text_from_records_is_escaped_everywhere(records: Path, tmp_path: Path):
    res = _report(records, "--output", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert f"[/]{EVIL}" in res.stdout  # rich markup in a name is printed, not interpreted
    for name in ("gallery.html", "index.html", "summary.md"):
        text = (tmp_path / "out" / name).read_text()
        assert "<script" not in text and "<img src=x" not in text, name
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in text, name
    gallery = (tmp_path / "out" / "gallery.html").read_text()
    assert "<mark>blue</mark>" in gallery and "<mark>&lt;img src=x" in gallery


def test_a_foreign_folder_gets_one_warning_per_unusable_file(records: Path, tmp_path: Path):
    good = json.loads(next(records.glob("8c1f*.json")).read_text())
    bad = {
        "broken.json": "{not json",
        "list.json": "[1, 2]",
        "no_config.json": json.dumps({"run_id": "x", "metrics": {"clean": {}}}),
        "seed.json": json.dumps({**good, "config": {**good["config"], "seed": "one"}}),
        "metric.json": json.dumps({**good, "metrics": {"clean": {"tr_r1": "high"}}}),
        "attack.json": json.dumps({**good, "config": {**good["config"], "attack": "pgd"}}),
    }
    for name, text in bad.items():
        (records / name).write_text(text)
    res = _report(records, "--output", tmp_path / "out")
    assert res.exit_code == 0, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == len(bad) and all(line.startswith("warning: skipped") for line in lines)
    assert all(any(name in line for line in lines) for name in bad)
    assert "Traceback" not in res.output
    assert len((tmp_path / "out" / "records.csv").read_text().splitlines()) == 1 + 5


@pytest.mark.parametrize("case", ["output is a file", "no usable record", "no folder"])
def test_user_errors_are_one_line_and_exit_2(case: str, records: Path, tmp_path: Path):
    target = tmp_path / "out"
    if case == "output is a file":
        target.write_text("")
    elif case == "no usable record":
        records = tmp_path / "foreign"
        records.mkdir()
        (records / "a.json").write_text("{}")
    else:
        records = tmp_path / "missing"
    res = _report(records, "--output", target)
    assert res.exit_code == 2, res.output
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in res.output
    assert {
        "output is a file": "is a file",
        "no usable record": "no usable result records",
        "no folder": "no result directory",
    }[case] in line


def test_files_outside_the_records_examples_are_never_read(records: Path, tmp_path: Path):
    secret = tmp_path / "secret.png"
    shutil.copy(next(records.glob("examples/8c1f*/000_clean.png")), secret)
    secret.write_bytes(secret.read_bytes() + b"secret")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.json").write_text(
        json.dumps(
            {"examples": [{"images": {"clean": str(secret)}, "clean_texts": [], "adv_texts": []}]}
        )
    )
    (records / "examples" / "evil" / "link.png").symlink_to(secret)
    index = json.loads((records / "examples" / "evil" / "index.json").read_text())
    example = index["examples"][0]
    index["examples"] += [
        {**example, "images": {"clean": name}}
        for name in ("../../../secret.png", str(secret), "link.png", "../../evil.json")
    ]
    (records / "examples" / "evil" / "index.json").write_text(json.dumps(index))
    rec = json.loads(next(records.glob("95839*.json")).read_text())
    (records / "outside.json").write_text(
        json.dumps({**rec, "run_id": "outside", "examples": "../outside/index.json"})
    )
    (outside / "record.json").write_text(json.dumps({**rec, "run_id": "linked"}))
    (records / "linked.json").symlink_to(outside / "record.json")
    res = _report(records, "--output", tmp_path / "out")
    assert res.exit_code == 0, res.output
    warnings = res.stderr.strip().splitlines()
    assert len(warnings) == 6 and all("refused" in w or "not a" in w for w in warnings), warnings
    assert "linked" not in (tmp_path / "out" / "records.csv").read_text()
    copied = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert not any(p.read_bytes() == secret.read_bytes() for p in copied)
    assert "secret" not in (tmp_path / "out" / "gallery.html").read_text()


# -- headless Chromium over the DevTools protocol -------------------------------------------------


class Chromium:
    """A headless Chromium driven through ``--remote-debugging-pipe`` (fds 3 and 4)."""

    def __init__(self, binary: str, profile: Path, timeout: float = 30.0):
        ours_r, theirs_w = os.pipe()
        theirs_r, ours_w = os.pipe()

        def pipes() -> None:  # in the child: its fds 3 (commands) and 4 (replies)
            r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in (theirs_r, theirs_w))
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=pipes,  # noqa: PLW1509 (no threads yet)
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(theirs_r)
        os.close(theirs_w)
        self.reader, self.writer, self.timeout = ours_r, ours_w, timeout
        self.buffer, self.events, self.last_id = b"", [], 0
        self.send("Browser.getVersion")

    def _message(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buffer:
            if not select.select([self.reader], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.reader, 1 << 16)
            if not chunk:
                raise ConnectionError("chromium closed the pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.last_id += 1
        msg: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.writer, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def load(self, url: str) -> str:
        """Open ``url`` in a new tab, wait for its load event; return the tab's session."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self.send("Page.enable", session=session)
        self.send("Page.navigate", {"url": url}, session)
        while not any(
            e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session
            for e in self.events
        ):
            self.events.append(self._message())
        return session

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"]["value"]

    def close(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, ConnectionError, RuntimeError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.reader)
        os.close(self.writer)


@functools.cache
def _chromium_binary() -> str | None:
    names = [os.environ.get("VLADV_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((shutil.which(n) for n in names if n and shutil.which(n)), None)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    binary = _chromium_binary()
    if binary is None:
        pytest.skip(
            "headless Chromium not found: install Debian's `chromium` (.ci/run does) or "
            "set VLADV_CHROMIUM"
        )
    try:
        chromium = Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    except (OSError, TimeoutError, ConnectionError, RuntimeError) as exc:
        pytest.skip(f"{binary} did not start in headless mode: {exc}")
    yield chromium
    chromium.close()


PAGE_CHECK = """(() => ({
  images: [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
  marks: [...document.querySelectorAll('mark')].map(m => m.textContent),
  scripts: document.querySelectorAll('script').length,
  handlers: [...document.querySelectorAll('*')].filter(
    e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
  pwned: window.pwned !== undefined,
  text: document.body.innerText,
}))()"""


def _check_gallery(page: dict[str, Any]) -> None:
    assert len(page["images"]) == 3 * 17
    assert [src for src, ok in page["images"] if not ok] == []  # every image loaded
    assert "blue" in page["marks"] and EVIL_IMG in page["marks"]  # changed words, as text
    assert page["scripts"] == 0 and page["handlers"] == 0 and not page["pwned"]
    assert EVIL in page["text"] and EVIL_IMG in page["text"]


def test_the_gallery_loads_in_chromium_from_a_moved_folder(browser: Chromium, moved_report: Path):
    gallery = browser.evaluate(browser.load((moved_report / "gallery.html").as_uri()), PAGE_CHECK)
    _check_gallery(gallery)
    index = browser.evaluate(browser.load((moved_report / "index.html").as_uri()), PAGE_CHECK)
    assert len(index["images"]) == 2 and all(ok for _, ok in index["images"])
    assert index["scripts"] == 0 and index["handlers"] == 0 and EVIL in index["text"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No request log on stderr."""


def test_the_gallery_loads_in_chromium_over_http(browser: Chromium, moved_report: Path):
    handler = functools.partial(_QuietHandler, directory=str(moved_report))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/gallery.html"
            _check_gallery(browser.evaluate(browser.load(url), PAGE_CHECK))
        finally:
            server.shutdown()
