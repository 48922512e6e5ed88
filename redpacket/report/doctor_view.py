"""The doctor's report as a table: what the lab would run against, at a glance."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from redpacket.database.names import migrate_command
from redpacket.doctor import DoctorReport


def doctor_rows(report: DoctorReport) -> list[tuple[str, str]]:
    rows = [
        ("backend", report.backend),
        ("server", report.server_version),
        ("url", report.url),
        ("default isolation", report.default_isolation),
        (
            "lab database",
            report.lab_database + ("" if report.lab_database_exists else " (not created yet)"),
        ),
    ]
    for status in report.schemas:
        mark = "migrated" if status.migrated else "NOT migrated"
        rows.append(
            (
                f"schema {status.schema}",
                f"{mark} (at {status.current or 'none'}, target {status.target})",
            )
        )
    hint = f"no: run `{migrate_command(report.lab_database)}`"
    if report.backend == "url":  # the server named by a URL: the same one, not the default
        hint += " with the same --database-url (or REDPACKET_DATABASE_URL)"
    rows.append(("ready", "yes" if report.migrated else hint))
    rows.append(("stress loop", report.stress_loop))
    rows.append(("stress wire", report.stress_wire))
    rows.append(("driver", report.driver))
    if report.faster_driver:
        rows.append(("faster driver", report.faster_driver))
    return rows


def doctor_table(report: DoctorReport) -> Table:
    table = Table(title="redpacket doctor", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in doctor_rows(report):
        table.add_row(name, Text(value))  # as written: "redpacket[mysql-fast]" is no markup
    return table
