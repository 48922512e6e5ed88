"""The lab's URL means what SQLAlchemy's means: parsed, printed and handed back alike.

SQLAlchemy's ``make_url`` and ``render_as_string`` are the yardstick (the lab's URL
exists only so that commands which never make an engine need not import
SQLAlchemy); every form a user may type is parsed by both and compared field by
field, printed with and without the password, and turned into SQLAlchemy's URL and
back. A URL that SQLAlchemy refuses, the lab refuses too.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url as sqlalchemy_make_url
from sqlalchemy.exc import ArgumentError

from redpacket.database.url import URL, from_sqlalchemy, make_url

FORMS = [
    "postgresql://postgres@127.0.0.1:5432/postgres",
    "postgresql+psycopg://u:p@h/db",
    "postgresql://user:p%40ss%3Aw%2Fo%25rd@db.example.com:6432/shop",
    "postgresql://u:@h/db",
    "postgresql://@h/db",
    "postgresql://h",
    "postgresql:///db",
    "postgresql://u@[::1]:5432/db",
    "postgresql://u@[fe80::1%25eth0]/db",
    "postgresql://u@h/db?sslmode=require&application_name=a%20b",
    "postgresql://u@h/db?options=-c%20search_path%3Dx&options=-c%20y%3D1",
    "postgresql://u@h/my%20db",
    "postgresql://u@h/a/b",
    "postgresql://u@h/",
    "mysql://root@127.0.0.1:3306/",
    "mysql://root@127.0.0.1:3306",
    "mysql+pymysql://root:secret@localhost/lab?charset=utf8mb4&unix_socket=/run/mysqld/mysqld.sock",
    "mariadb://me:pa%20ss@host/db",
    "postgresql://us%2Fer@h/db",
    "postgresql://u@h/db?flag=",
]
REFUSED = ["", "nonsense", "postgresql:/h/db", "postgresql://u@h:port/db", "://h/db"]
FIELDS = ("drivername", "username", "password", "host", "port", "database")


def plain(url: object) -> tuple[object, ...]:
    fields = tuple(getattr(url, name) for name in FIELDS)
    query = {k: tuple(v) if not isinstance(v, str) else v for k, v in url.query.items()}  # type: ignore[attr-defined]
    return (*fields, query)


@pytest.mark.parametrize("raw", FORMS)
def test_a_url_parses_and_prints_as_sqlalchemy_does(raw: str) -> None:
    ours, theirs = make_url(raw), sqlalchemy_make_url(raw)
    assert plain(ours) == plain(theirs)
    for hide in (True, False):
        assert ours.render_as_string(hide) == theirs.render_as_string(hide)
    assert repr(ours) == str(ours) == repr(theirs)  # never the password
    assert plain(ours.sqlalchemy()) == plain(theirs)
    assert from_sqlalchemy(theirs) == ours
    assert make_url(ours.render_as_string(hide_password=False)) == ours  # a round trip
    assert pickle.loads(pickle.dumps(ours)) == ours  # workers are handed URLs
    assert hash(ours) == hash(make_url(raw))


@pytest.mark.parametrize("raw", REFUSED)
def test_a_url_sqlalchemy_refuses_is_refused(raw: str) -> None:
    with pytest.raises((ArgumentError, ValueError)):
        sqlalchemy_make_url(raw)
    with pytest.raises(ValueError, match=r"^Could not parse|^invalid literal for int"):
        make_url(raw)


def test_changes_are_copies_as_sqlalchemys_are() -> None:
    raw = "postgresql://u:p@h:5432/db?search_path=lab&sslmode=require"
    ours, theirs = make_url(raw), sqlalchemy_make_url(raw)
    pairs = [
        (ours.set(database="other", port="6432"), theirs.set(database="other", port=6432)),
        (ours.set(drivername="postgresql+psycopg"), theirs.set(drivername="postgresql+psycopg")),
        (ours.difference_update_query(["search_path"]),
         theirs.difference_update_query(["search_path"])),
        (ours.update_query_dict({"search_path": "x", "a": "b"}),
         theirs.update_query_dict({"search_path": "x", "a": "b"})),
    ]  # fmt: skip
    for mine, sqlalchemys in pairs:
        assert plain(mine) == plain(sqlalchemys)
        assert mine.render_as_string(False) == sqlalchemys.render_as_string(False)
    assert ours == make_url(raw)  # untouched
    # One difference, meant: SQLAlchemy's set() takes None as "leave it"; here None clears.
    assert ours.set(database=None).render_as_string(False) == (
        "postgresql://u:p@h:5432?search_path=lab&sslmode=require"
    )
    assert isinstance(ours.set(port="1"), URL)
    assert ours.set(port="1").port == 1


def test_holding_a_url_loads_no_sqlalchemy() -> None:
    code = (
        "import sys; from redpacket.database.urls import parse_url, mask;"
        " u = parse_url('postgresql://u:secret@h/db'); print(mask(u));"
        " print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["postgresql://u:***@h/db", "False"]
