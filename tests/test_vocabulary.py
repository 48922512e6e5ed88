"""One vocabulary in every output: the matrix, explain, stress, compare, JSON and HTML.

correct, duplicate, missing, refused (with its code, safe to retry or not) and lost
race: the same words wherever a race's end is told, coloured by what they mean for
the data. The words the lab used to mix in ("WRONG", "error 1 (40001)") are gone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from redpacket.cli import main
from redpacket.vocabulary import MEANING

WORDS = set(MEANING)
RETIRED = re.compile(r"\bWRONG\b|\berror \d+ \(|\bERROR\b")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    status = main(list(argv))
    out, err = capsys.readouterr()
    assert status in (0, 1), err
    return out


@pytest.mark.stress
def test_every_output_tells_the_end_of_a_race_in_the_same_words(
    cli_lab: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    matrix = ["matrix", "--strategies", "seed,optimistic,on_conflict", "--schedules", "t2-waits"]
    cells = json.loads(run(capsys, *cli_lab, *matrix, "--json"))
    assert {cell["verdict"] for cell in cells} == {
        "correct", "duplicate", "refused", "lost race",
    }  # fmt: skip
    table = run(capsys, *cli_lab, *matrix)
    assert "refused (40001, safe to retry)" in table
    assert "lost race" in table

    explained = json.loads(
        run(capsys, *cli_lab, "explain", "optimistic", "--schedule", "t2-waits", "--json")
    )
    assert explained["verdict"] == "lost race"
    assert "lost the race" in explained["explanation"]

    stress = ["stress", "-s", "seed", "-i", "repeatable-read", "-w", "4", "-n", "20"]
    assert json.loads(run(capsys, *cli_lab, *stress, "--json"))["verdict"] == "duplicate"
    assert "duplicate (" in run(capsys, *cli_lab, *stress)
    refused = ["stress", "-s", "on_conflict", "-i", "repeatable-read", "-w", "4", "-n", "20"]
    shown = run(capsys, *cli_lab, *refused)
    assert "refused 40001, safe to retry x" in shown

    compare = ["compare", "--strategies", "seed,on_conflict", "--isolation", "repeatable-read",
               "--workers", "4", "--orders", "20", "--retries", "0"]  # fmt: skip
    results = json.loads(run(capsys, *cli_lab, *compare, "--json"))["results"]
    assert [r["verdict"] for r in results] == ["duplicate", "correct"]
    page = tmp_path / "matrix.html"
    run(capsys, *cli_lab, *matrix, "--html", str(page))
    assert set(re.findall(r'data-verdict="([^"]+)"', page.read_text())) <= WORDS
    for text in (table, shown, run(capsys, *cli_lab, *compare), page.read_text()):
        assert not RETIRED.search(text), RETIRED.search(text)
