"""The HTML pages a teacher projects, loaded in a real browser (Debian's chromium, headless).

The DOM Chromium renders is checked, not the file: one row per timeline event,
verdict cells in the lab's vocabulary, and no mark that needs an emoji font or
box-drawing characters (which showed as missing-glyph boxes when the pages were
the terminal saved as text).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from redpacket.cli import main
from redpacket.vocabulary import MEANING

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
EMOJI_OR_BOXES = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2500-\u257f\u23f0-\u23ff]")


class Dom(HTMLParser):
    """What the page shows: timeline rows, verdict cells, headings and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []  # per timeline table, its event rows
        self.verdicts: list[str] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self._in.append(tag)
        if tag == "table" and "timeline" in (found.get("class") or ""):
            self.rows.append(0)
        if tag == "tr" and found.get("class") == "timeline-event":
            self.rows[-1] += 1
        if found.get("data-verdict"):
            self.verdicts.append(str(found["data-verdict"]))

    def handle_endtag(self, tag: str) -> None:
        if self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] in ("style", "title"):
            return
        if self._in and self._in[-1] == "h2":
            self.headings.append(data.strip())
        self.text.append(data)


def rendered(page: Path, profile: Path) -> Dom:
    """The DOM after Chromium loaded and laid out the page."""
    done = subprocess.run(
        [CHROMIUM or "chromium", *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    dom = Dom()
    dom.feed(done.stdout)
    assert dom.text, done.stderr
    return dom


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def test_an_explain_page_is_a_real_timeline(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [*cli_lab, "explain", "seed", "-i", "repeatable-read", "--schedule", "t2-waits"]
    events = len(json.loads(run(capsys, *argv, "--json"))["events"])
    page = tmp_path / "explain.html"
    run(capsys, *argv, "--html", str(page))
    dom = rendered(page, tmp_path / "profile")
    assert dom.rows == [events]  # one row per event of the run
    assert dom.verdicts == ["duplicate"]
    text = "".join(dom.text)
    assert "waits for T1" in text
    assert not EMOJI_OR_BOXES.findall(text)


def test_a_matrix_page_colours_every_cell_by_its_meaning(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "matrix.html"
    argv = [*cli_lab, "matrix", "--strategies", "seed,on_conflict,unique_catch",
            "--schedules", "t2-first-read"]  # fmt: skip
    run(capsys, *argv, "--html", str(page))
    dom = rendered(page, tmp_path / "profile")
    assert len(dom.verdicts) == 9  # 3 strategies x 3 levels
    assert set(dom.verdicts) <= set(MEANING)
    assert {"duplicate", "refused", "correct"} <= set(dom.verdicts)
    assert not EMOJI_OR_BOXES.findall("".join(dom.text))


@pytest.mark.stress
def test_the_demo_page_is_a_lesson(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "demo.html"
    run(capsys, *cli_lab, "demo", "--html", str(page))
    dom = rendered(page, tmp_path / "profile")
    # naive, seed at two levels, lock_first; then seed and lock_first on MariaDB: a timeline each
    assert len(dom.rows) == 6
    assert all(rows >= 6 for rows in dom.rows)
    assert set(dom.verdicts) <= set(MEANING)
    assert dom.headings[0].startswith("1. The baseline")
    assert dom.headings[-1].startswith("takeaways")
    assert any("The same code on MariaDB / MySQL" in heading for heading in dom.headings)
    text = "".join(dom.text)
    assert "waits for T1" in text
    assert "snapshot" in text  # the legend and the marks
    assert not EMOJI_OR_BOXES.findall(text)


def test_a_spec_page_has_a_timeline_per_permutation(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = str(Path(__file__).parent / "specs" / "waits.spec")
    data = json.loads(run(capsys, *cli_lab, "spec", spec, "--json"))
    in_columns = {"waiting", "completed", "result", "notice", "notify"}
    per_permutation: list[int] = []
    for event in data["events"]:
        if event["event"] == "permutation":
            per_permutation.append(0)
        elif event["event"] in in_columns:
            per_permutation[-1] += 1
    page = tmp_path / "spec.html"
    run(capsys, *cli_lab, "spec", spec, "--html", str(page))
    dom = rendered(page, tmp_path / "profile")
    assert dom.rows == per_permutation  # every step, result and wait in its session's column
    text = "".join(dom.text)
    assert "waits for a lock (server)" in text
    assert "deadlock detected" in text
    assert not EMOJI_OR_BOXES.findall(text)


def test_an_anomaly_page_colours_possible_and_prevented(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "anomalies.html"
    run(capsys, *cli_lab, "anomalies", "--only", "P4,G2", "--isolation",
        "read-committed,serializable", "--html", str(page))  # fmt: skip
    dom = rendered(page, tmp_path / "profile")
    assert len(dom.verdicts) == 6  # P4, G2 and the red packet at two levels
    assert set(dom.verdicts) == {"possible", "prevented"}
    text = "".join(dom.text)
    assert "anomalies on PostgreSQL" in text
    assert "serialization failure 40001" in text
    assert not EMOJI_OR_BOXES.findall(text)
