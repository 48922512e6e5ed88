"""The race fixture for any Python driver: code on asyncpg, psycopg2 and Django's ORM raced
through the proxy, run as a user runs it (a pytest of its own, the plugin from its
entry point).

Both drivers keep their own connections and never pass through SQLAlchemy; the proxy
holds their round trips. At repeatable read the seed's grant duplicates on each (the
failure shows the timeline, T2's wait seen from the server), at read committed it holds,
under a schedule, every schedule and the hammer.
"""

from __future__ import annotations

import importlib.util

import pytest

from redpacket.database.lab import Lab
from tests.test_race_plugin import no_shop_left_behind, shop_url

__all__ = ["no_shop_left_behind"]  # the fixture that drops the example databases

MISSING = [name for name in ("asyncpg", "psycopg2", "django")
           if importlib.util.find_spec(name) is None]  # fmt: skip
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"{', '.join(MISSING)} not installed (the dev extra installs them)"
)

USERS_TESTS = """
import asyncio

import asyncpg
import psycopg2
import pytest


def setup(url):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS px_packets, px_orders")
        cur.execute("CREATE TABLE px_orders (id int PRIMARY KEY)")
        cur.execute("CREATE TABLE px_packets (order_id int NOT NULL)")
        cur.execute("INSERT INTO px_orders VALUES (1)")
    conn.close()


def packets(url):
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM px_packets")
        (count,) = cur.fetchone()
    conn.close()
    return count


def reset(url):
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM px_packets")
    conn.close()


def grant_psycopg2(url, level):
    conn = psycopg2.connect(url)
    conn.set_session(isolation_level=level)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM px_orders WHERE id = %s", (1,))
        cur.execute("SELECT id FROM px_orders WHERE id = %s FOR UPDATE", (1,))
        cur.execute("SELECT 1 FROM px_packets WHERE order_id = %s", (1,))
        if cur.fetchone() is None:
            cur.execute("INSERT INTO px_packets (order_id) VALUES (%s)", (1,))
    conn.close()


async def _grant_asyncpg(url, level):
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(isolation=level):
            await conn.fetch("SELECT id FROM px_orders WHERE id = $1", 1)
            await conn.fetch("SELECT id FROM px_orders WHERE id = $1 FOR UPDATE", 1)
            if not await conn.fetch("SELECT 1 FROM px_packets WHERE order_id = $1", 1):
                await conn.execute("INSERT INTO px_packets (order_id) VALUES ($1)", 1)
    finally:
        await conn.close()


def grant_asyncpg(url, level):
    asyncio.run(_grant_asyncpg(url, level))


@pytest.mark.parametrize("level", ["REPEATABLE READ", "READ COMMITTED"])
def test_psycopg2_grant(race, level):
    with race.through_proxy() as proxied:
        setup(proxied.url)
        request = lambda: grant_psycopg2(proxied.url, level)
        result = proxied.interleave(request, request, schedule="t2-waits")
        assert "[waits for T1]" in result.timeline
        assert packets(proxied.url) == 1


def holds_in_every_schedule(race, grant, level):
    with race.through_proxy() as proxied:
        setup(proxied.url)
        request = lambda: grant(proxied.url, level)

        def one_grant():
            assert packets(proxied.url) == 1

        found = proxied.explore(request, request, check=one_grant,
                                reset=lambda: reset(proxied.url))
        assert found.complete
        assert found.failing == [], str(found.shortest)


@pytest.mark.parametrize("level", ["repeatable_read", "read_committed"])
def test_asyncpg_grant_every_schedule(race, level):
    holds_in_every_schedule(race, grant_asyncpg, level)


@pytest.mark.parametrize("level", ["REPEATABLE READ", "READ COMMITTED"])
def test_psycopg2_grant_every_schedule(race, level):
    holds_in_every_schedule(race, grant_psycopg2, level)


@pytest.mark.parametrize("level", ["REPEATABLE READ", "READ COMMITTED"])
def test_psycopg2_grant_hammered(race, level):
    with race.through_proxy() as proxied:
        setup(proxied.url)

        def one_grant():
            assert packets(proxied.url) == 1

        found = proxied.hammer(lambda: grant_psycopg2(proxied.url, level), workers=4,
                               times=5, check=one_grant, reset=lambda: reset(proxied.url))
        assert found.gated == 5
"""


DJANGO_TESTS = """
import django
from django.conf import settings

import socket

with socket.socket() as probe:  # Django reads DATABASES once: one fixed port for the proxy
    probe.bind(("127.0.0.1", 0))
    PORT = probe.getsockname()[1]

settings.configure(DATABASES={}, INSTALLED_APPS=[], USE_TZ=True)
django.setup()

import pytest
from django.db import connections, models, transaction


class Order(models.Model):
    class Meta:
        app_label = "shop"
        db_table = "dj_orders"
        managed = False


class RedPacket(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, db_constraint=False)

    class Meta:
        app_label = "shop"
        db_table = "dj_packets"
        managed = False


@pytest.fixture
def shop(race):
    settings.DATABASES.setdefault("default", {}).update({  # in place: Django keeps the dict
        "ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": PORT,
        "NAME": race.engine.url.database, "USER": race.engine.url.username,
        "PASSWORD": race.engine.url.password or "",
    })
    with race.through_proxy(port=PORT) as proxied:
        with connections["default"].cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS dj_packets, dj_orders")
            cur.execute("CREATE TABLE dj_orders (id int PRIMARY KEY)")
            cur.execute("CREATE TABLE dj_packets (id serial PRIMARY KEY, order_id int)")
            cur.execute("INSERT INTO dj_orders VALUES (1)")
        yield proxied
        connections.close_all()


def grant(level):
    try:
        with transaction.atomic():
            connections["default"].cursor().execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
            Order.objects.get(id=1)
            order = Order.objects.select_for_update().get(id=1)
            if not RedPacket.objects.filter(order=order).exists():
                RedPacket.objects.create(order=order)
    finally:
        connections["default"].close()  # each thread its own connection, closed


@pytest.mark.parametrize("level", ["REPEATABLE READ", "READ COMMITTED"])
def test_django_grant(shop, level):
    request = lambda: grant(level)
    result = shop.interleave(request, request, schedule="t2-waits")
    assert "[waits for T1]" in result.timeline
    assert RedPacket.objects.count() == 1
"""


def test_django_orm_code_is_raced_through_the_proxy(pytester: pytest.Pytester, lab: Lab) -> None:
    pytester.makepyfile(test_django=DJANGO_TESTS)
    result = pytester.runpytest_subprocess("--redpacket-url", shop_url(lab), "-p", "no:xdist")
    result.assert_outcomes(failed=1, passed=1)  # repeatable read duplicates; read committed holds
    out = result.stdout.str()
    assert "assert 2 == 1" in out
    assert "test_django_grant[REPEATABLE READ] - assert 2 == 1" in out


def test_asyncpg_and_psycopg2_code_is_raced_through_the_proxy(
    pytester: pytest.Pytester, lab: Lab
) -> None:
    pytester.makepyfile(test_drivers=USERS_TESTS)
    result = pytester.runpytest_subprocess("--redpacket-url", shop_url(lab), "-p", "no:xdist")
    result.assert_outcomes(failed=4, passed=4)
    out = result.stdout.str()
    assert "assert 2 == 1" in out  # the seed's duplicate, counted in the table
    assert "T1:1,T2:end,T1:end" in out  # asyncpg's shortest breaking schedule
    # psycopg2's explore breaks at repeatable read only, by the same shortest order
    assert "test_psycopg2_grant_every_schedule[REPEATABLE READ]" in out
    assert "test_psycopg2_grant_every_schedule[READ COMMITTED]" not in out
    assert "after attempt 1" in out  # the hammer broke it in its first attempt
    assert "[waits for T1]" in out  # the failing report's timeline: the server's account
