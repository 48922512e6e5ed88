"""What a command shows: printed for a person, and with ``--html`` built as a page too.

Every section goes to both at once, through the same data, so the terminal and the
page a teacher projects never say different things.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from redpacket.cli.app import check_writable_file
from redpacket.doctor import DoctorReport
from redpacket.errors import LabError
from redpacket.interleave.explain import explain
from redpacket.interleave.timeline import Run
from redpacket.report import html
from redpacket.report.anomaly_view import anomaly_table, by_server
from redpacket.report.doctor_view import doctor_rows, doctor_table
from redpacket.report.marks import LEGEND
from redpacket.report.matrix_view import matrix_table
from redpacket.report.spec_view import spec_sections
from redpacket.report.stress_view import compare_table
from redpacket.report.timeline_view import (
    legend_table,
    timeline_table,
    verdict_detail,
    verdict_text,
)
from redpacket.specs.anomalies import Cell
from redpacket.specs.run import SpecRun
from redpacket.stress.result import StressResult


class Show:
    def __init__(self, console: Console, title: str, html_path: Path | None = None) -> None:
        self.console = console
        self.title = title
        self.html_path = html_path
        self.sections: list[str] = []

    def heading(self, text: str) -> None:
        self.console.print(Rule(text))
        self.sections.append(html.heading(text))

    def paragraph(self, text: str, style: str = "") -> None:
        self.console.print(Text(text, style=style))
        self.sections.append(html.paragraph(text))

    def legend(self) -> None:
        self.console.print(legend_table())
        self.sections.append(html.legend(LEGEND))

    def explained(self, run: Run) -> None:
        why = str(explain(run))
        self.console.print(
            Group(timeline_table(run), verdict_text(run), Panel(why, title="why", expand=False))
        )
        self.sections += [html.timeline(run), html.verdict_line(run, verdict_detail(run)),
                          html.why(why)]  # fmt: skip

    def matrix(self, runs: Sequence[Run], title: str) -> None:
        self.console.print(matrix_table(runs, title))
        self.sections.append(html.matrix(runs, title))

    def compare(self, results: Sequence[StressResult], title: str) -> None:
        self.console.print(compare_table(results, title))
        self.sections.append(html.compare(results, title))

    def takeaways(self, lines: Sequence[str], title: str = "takeaways") -> None:
        self.console.print(Panel("\n".join(lines), title=title, expand=False))
        self.sections.append(html.heading(title))
        self.sections += [html.paragraph(line) for line in lines]

    def anomalies(self, cells: Sequence[Cell]) -> None:
        for one_server in by_server(cells):
            self.console.print(anomaly_table(one_server))
            self.sections.append(html.anomalies(one_server))

    def spec_run(self, run: SpecRun) -> None:
        self.console.print(Rule(f"{run.spec.name} on {run.server}"))
        self.console.print(Text(run.text()))
        self.sections += spec_sections(run)

    def doctor(self, report: DoctorReport) -> None:
        self.console.print(doctor_table(report))
        self.sections.append(html.table(["", ""], doctor_rows(report), title="where this ran"))

    def check_writable(self) -> None:
        """Fail before the work, not after it; opening to append never loses what is there."""
        if self.html_path is not None:
            check_writable_file(self.html_path)

    def save(self) -> None:
        if self.html_path is None:
            return
        try:
            self.html_path.write_text(html.page(self.title, self.sections), encoding="utf-8")
        except OSError as exc:
            raise LabError(f"cannot write {self.html_path}: {exc.strerror or exc}") from None
        click.echo(f"saved {self.html_path}", err=True)
