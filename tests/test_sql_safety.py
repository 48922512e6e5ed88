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
ROOTS = [Path(redpacket.__file__).parent, Path(redpacket.__file__).parent.parent / "migrations"]


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _formatted(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format" and isinstance(node.func.value, ast.Constant)
    return False


def offenders() -> list[str]:
    found = []
    for root in ROOTS:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            found += [
                f"{path.name}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and _called_name(node) in SENDS_SQL
                and node.args
                and _formatted(node.args[0])
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
