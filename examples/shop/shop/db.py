"""Start-up: the engine, at the isolation level the service ran at (MySQL's default)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from shop.models import Session


def make_engine(url: str) -> Engine:
    return create_engine(url, isolation_level="REPEATABLE READ")


def configure(engine: Engine) -> None:
    Session.configure(bind=engine)
