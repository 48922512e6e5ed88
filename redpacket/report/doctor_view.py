"""The doctor's report as a table: what the lab would run against, at a glance."""

from __future__ import annotations

from rich.table import Table

from redpacket.doctor import DoctorReport


def doctor_table(report: DoctorReport) -> Table:
    table = Table(title="redpacket doctor", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("backend", report.backend)
    table.add_row("server", f"PostgreSQL {report.server_version}")
    table.add_row("url", report.url)
    table.add_row("default isolation", report.default_isolation)
    table.add_row(
        "lab database",
        report.lab_database + ("" if report.lab_database_exists else " (not created yet)"),
    )
    for status in report.schemas:
        mark = "migrated" if status.migrated else "NOT migrated"
        table.add_row(
            f"schema {status.schema}",
            f"{mark} (at {status.current or 'none'}, target {status.target})",
        )
    table.add_row("ready", "yes" if report.migrated else "no: run `redpacket migrate`")
    return table
