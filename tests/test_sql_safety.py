"""No SQL is built by formatting values into strings: every value is a bound parameter.

The check reads the package's own source: any call that sends SQL (``execute``,
``exec_driver_sql``, ``text``, ``prepare``) whose statement is an f-string, a
``%``-formatted string or a ``.format()`` call is a failure.
"""

from __future__ import annotations

import ast
from pathlib import Path

import redpacket

SENDS_SQL = {"execute", "exec_driver_sql", "text", "prepare", "send_query_prepared"}
HELPERS = {"_execute", "_column", "_one"}  # the engines' own: (connection, statement, ...)
# What may be formatted into a statement: an identifier through the quoting function that
# checks it, or a number through int(). Never a value.
SAFE_CALLS = {"_quoted", "int"}
ROOTS = [Path(redpacket.__file__).parent, Path(redpacket.__file__).parent.parent / "migrations"]


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _safe(part: ast.FormattedValue) -> bool:
    value = part.value
    return isinstance(value, ast.Call) and _called_name(value) in SAFE_CALLS


def _formatted(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) and not _safe(part) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and isinstance(node.func.value, ast.Constant)
    return False


def _statement(node: ast.Call) -> ast.expr:
    """The statement a call sends, or a harmless constant when it sends none."""
    name = _called_name(node)
    position = 1 if name in HELPERS else 0 if name in SENDS_SQL else None
    if position is None or len(node.args) <= position:
        return ast.Constant("")
    return node.args[position]


def offenders() -> list[str]:
    found = []
    for root in ROOTS:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            found += [
                f"{path.name}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Call) and _formatted(_statement(node))
            ]
    return found


def test_no_sql_is_built_by_string_formatting() -> None:
    assert offenders() == []


def test_the_check_would_catch_an_f_string(tmp_path: Path) -> None:
    sample = 'conn.execute(f"SELECT * FROM orders WHERE id = {order_id}")\n'
    call = ast.parse(sample).body[0].value  # type: ignore[attr-defined]
    assert _called_name(call) == "execute"
    assert _formatted(call.args[0])
    assert not _formatted(ast.parse('"SELECT 1"').body[0].value)  # type: ignore[attr-defined]
    quoted = ast.parse('_execute(c, f"DROP DATABASE {_quoted(name)}")').body[0]
    assert not _formatted(_statement(quoted.value))  # type: ignore[attr-defined]
    bare = ast.parse('_execute(c, f"DROP DATABASE {name}")').body[0]
    assert _formatted(_statement(bare.value))  # type: ignore[attr-defined]
