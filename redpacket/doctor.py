"""What the lab would run against, gathered without changing anything."""

from __future__ import annotations

from dataclasses import dataclass

from redpacket.database import migrate
from redpacket.database.connect import connect
from redpacket.database.lab import Lab


@dataclass(frozen=True)
class SchemaStatus:
    schema: str
    current: str | None
    target: str

    @property
    def migrated(self) -> bool:
        return self.current == self.target


@dataclass(frozen=True)
class DoctorReport:
    backend: str
    url: str
    server_version: str
    default_isolation: str
    lab_database: str
    lab_database_exists: bool
    schemas: tuple[SchemaStatus, ...]
    stress_loop: str  # compiled (mypyc) or pure Python: stress figures depend on it
    stress_wire: str  # the loop's wire for this engine: C or its Python twin (figures differ)
    driver: str  # what the service and the lab's connections speak through
    faster_driver: str  # what installing another driver would gain ("" when none would)

    @property
    def migrated(self) -> bool:
        return self.lab_database_exists and all(s.migrated for s in self.schemas)


def diagnose(lab: Lab) -> DoctorReport:
    from redpacket.stress.fast import loop_build  # the stress modules load only when asked

    with connect(lab.maintenance_url, autocommit=True) as conn:
        version, default_isolation = lab.engine.describe_server(conn)
    driver, wire, advice = lab.engine.client()
    exists = lab.exists()
    schemas: tuple[SchemaStatus, ...] = ()
    if exists:
        lab.require()
        schemas = tuple(
            SchemaStatus(schema.value, current, target)
            for schema, (current, target) in migrate.status(lab).items()
        )
    return DoctorReport(
        backend=lab.server.backend,
        url=lab.server.masked_url,
        server_version=lab.engine.server_label(version),
        default_isolation=default_isolation,
        lab_database=lab.name,
        lab_database_exists=exists,
        schemas=schemas,
        stress_loop=loop_build(),
        stress_wire=wire,
        driver=driver,
        faster_driver=advice,
    )
