"""Start-up: the engine, at the isolation level the service ran at (MySQL's default)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from shop.models import Session


def make_engine(url: str) -> Engine:
    # a pool sized for the service's sixteen request threads, as a service sizes it
    return create_engine(url, isolation_level="REPEATABLE READ", pool_size=16)


def configure(engine: Engine) -> None:
    Session.configure(bind=engine)
