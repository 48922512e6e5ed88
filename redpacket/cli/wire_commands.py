"""proxy and race: the lab on the wire, for services in any language."""

from __future__ import annotations

import json
import threading
from typing import Any

import click

from redpacket.cli.app import Options, cli, console, json_option, print_json, progress_bar
from redpacket.errors import LabError


def _upstream(options: Options, upstream: str | None) -> Any:
    from redpacket.database.urls import parse_url

    raw = upstream or options.database_url
    if not raw:
        raise LabError("give --upstream URL (or --database-url): the real server")
    return parse_url(raw)


listen_option = click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    help="HOST:PORT the proxy listens on (port 0: a free one).",
)
upstream_option = click.option(
    "--upstream", help="The real server, in the lab's URL forms (default: --database-url)."
)


@cli.command()
@upstream_option
@listen_option
@click.option("--pass-through", is_flag=True, help="Trace nothing: after each connection's"
              " start-up its bytes are relayed unread, at a load test's speed.")  # fmt: skip
@json_option
@click.pass_obj
def proxy(
    options: Options, upstream: str | None, listen: str, pass_through: bool, as_json: bool
) -> None:
    """Trace every transaction between clients and the server: steps, waits, ends.

    With --pass-through the proxy traces nothing and costs a load test little
    (benchmarks/vs_pgbouncer.py measures it against pgbouncer).
    """
    from redpacket.race.wire_race import parse_listen
    from redpacket.wire.proxy import Proxy
    from redpacket.wire.tracer import Tracer

    url = _upstream(options, upstream)
    from redpacket.database.urls import engine_of

    database = engine_of(url)
    out = None if as_json else console()

    def emit(record: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps({k: v for k, v in record.items() if k != "text"}, default=str))
        else:
            assert out is not None
            out.print(record["text"], markup=False)

    def note(text: str) -> None:
        click.echo(f"redpacket: {text}", err=True)

    address = parse_listen(listen)
    protocol = database.wire_protocol()
    from redpacket.database.connect import require_server

    require_server(url)
    with Proxy(url, protocol, address, on_note=note, pass_through=pass_through) as running:
        tracer = None if pass_through else Tracer(url, database, emit)
        if tracer is not None:
            running.listener = tracer
        shown = running.url().render_as_string(hide_password=True)
        mode = " (pass-through: nothing traced)" if pass_through else ""
        click.echo(f"redpacket: proxy for {url.render_as_string()} at {shown}{mode}", err=True)
        stop = threading.Event()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if tracer is not None:
                tracer.close()


@cli.command()
@upstream_option
@listen_option
@click.option("--run", "commands", multiple=True, help="A competing request: a shell command"
              " (repeat, two or more), run with DATABASE_URL set to the proxy; {url} in it is"
              " replaced by that URL.")  # fmt: skip
@click.option("--serve", help="A long-running service started once, with the same DATABASE_URL.")
@click.option("--ready", help="HTTP URL or HOST:PORT that answers once --serve is ready.")
@click.option("--check", help="SQL on the server returning the rows that break the invariant.")
@click.option("--reset", help="SQL on the server run before every attempt.")
@click.option("--setup", help="SQL on the server run once, before the first attempt.")
@click.option("--schedule", help="Run once in this order: a named schedule or T1:2,T2:end,...")
@click.option("--explore", is_flag=True, help="Run every order of the participants' steps.")
@click.option("--max-runs", default=1000, show_default=True, help="Explore's bound.")
@click.option("--step-timeout", default=30.0, show_default=True, help="Seconds a step (or a"
              " command's start) may take before the race says it is stuck.")  # fmt: skip
@click.option("--fault", "faults", multiple=True, help="cut-after-commit:T1 (the server commits,"
              " the client is cut before it hears), cut-before-commit:T1, latency:MS; repeat"
              " for several.")  # fmt: skip
@click.option("--hammer", type=click.IntRange(min=1), help="N attempts, the commands started"
              " together and their first steps released together at a barrier.")  # fmt: skip
@click.option("--expect", type=click.Choice(["correct"]), help="Exit 1 when any attempt breaks"
              " the invariant (0 when none does).")  # fmt: skip
@json_option
@click.pass_obj
def race(
    options: Options, upstream: str | None, listen: str, commands: tuple[str, ...],
    serve: str | None, ready: str | None, check: str | None, reset: str | None,
    setup: str | None, schedule: str | None, explore: bool, max_runs: int,
    step_timeout: float, faults: tuple[str, ...], hammer: int | None, expect: str | None,
    as_json: bool,
) -> int:  # fmt: skip
    """Race any service's requests through the proxy: a schedule, every order, or a hammer.

    Faults (--fault) cut connections where real networks do, and say which outcomes the
    client could not know."""
    from redpacket.race.wire_faults import parse_fault
    from redpacket.race.wire_race import WireRace, parse_listen

    if sum((bool(schedule), explore, hammer is not None)) != 1:
        raise LabError("give --schedule S, --explore or --hammer N (one of them)")
    parsed = [parse_fault(text, max(len(commands), 1)) for text in faults]
    if expect and not check:
        raise LabError("--expect correct needs --check SQL: the rows that break the invariant")
    if ready and not serve:
        raise LabError("--ready is for --serve")
    wire = WireRace(
        _upstream(options, upstream), commands, check=check, reset=reset, setup=setup,
        serve=serve, ready=ready, listen=parse_listen(listen), step_timeout=step_timeout,
        faults=parsed,
    )  # fmt: skip
    if explore:
        return _explored(wire, max_runs, expect, as_json)
    if hammer is not None:
        return _hammered(wire, hammer, expect, as_json)
    assert schedule is not None
    attempt = wire.scheduled(schedule)
    broken = bool(attempt.broken)
    if as_json:
        print_json(_attempt_json(attempt, check))
    else:
        from redpacket.report.race_view import race_table

        out = console()
        out.print(race_table(attempt.result, f"schedule {attempt.schedule}"))
        _participants(out, attempt.finished)
        for cut in attempt.cuts:
            out.print(cut.text(), markup=False)
        out.print(_verdict(attempt.broken, check), markup=False)
    for note in wire.notes:
        click.echo(f"redpacket: {note}", err=True)
    return 1 if expect and broken else 0


def _explored(wire: Any, max_runs: int, expect: str | None, as_json: bool) -> int:
    with progress_bar() as bar:
        task = bar.add_task("exploring", total=None)

        def progress(runs: int, known: int) -> None:
            bar.update(task, completed=runs, total=known)

        found = wire.explored(max_runs=max_runs, progress=progress)
    shortest = found.shortest
    if as_json:
        print_json({
            "runs": found.runs,
            "complete": found.complete,
            "failing": [{"schedule": f.schedule, "switches": f.switches, "message": f.message}
                        for f in sorted(found.failing, key=lambda f: (f.switches, f.schedule))],
            "shortest": None if shortest is None else shortest.schedule,
            "events": [] if shortest is None else _events(shortest.result),
        })  # fmt: skip
    else:
        out = console()
        bound = "" if found.complete else f" (stopped at --max-runs {found.runs})"
        if shortest is None:
            out.print(f"correct: none of {found.runs} schedules breaks the invariant{bound}")
        else:
            out.print(
                f"{len(found.failing)} of {found.runs} schedules break the invariant{bound};"
                f" the shortest: {shortest.schedule}",
                markup=False,
            )
            from redpacket.report.race_view import race_table

            out.print(shortest.message, markup=False)
            out.print(race_table(shortest.result, f"schedule {shortest.schedule}"))
    return 1 if expect and found.failing else 0


def _hammered(wire: Any, attempts: int, expect: str | None, as_json: bool) -> int:
    with progress_bar() as bar:
        task = bar.add_task("hammering", total=attempts)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        found = wire.hammered(attempts, progress=progress)
    if as_json:
        print_json({
            "attempts": found.attempts,
            "broken_attempts": found.broken,
            "broken_rows": [list(row) for row in found.first_broken],
            "gated": found.gated,
            "outcomes": dict(sorted(found.outcomes.items())),
            "unknown": [dict(_cut_json(cut), attempt=attempt) for attempt, cut in found.cuts],
            "seconds": round(found.seconds, 3),
        })  # fmt: skip
    else:
        out = console()
        out.print(found.summary(), markup=False)
        if found.first_broken:
            shown = ", ".join(repr(tuple(row)) for row in found.first_broken[:3])
            out.print(f"the first broken attempt's --check rows: {shown}", markup=False)
        if found.last_failure:
            out.print(f"a failing command said: {found.last_failure}", markup=False)
        for attempt, cut in found.cuts[:5]:
            out.print(f"attempt {attempt}: {cut.text()}", markup=False)
    for note in wire.notes:
        click.echo(f"redpacket: {note}", err=True)
    return 1 if expect and found.broken else 0


def _events(result: Any) -> list[dict[str, Any]]:
    return [
        {"position": e.position, "session": e.call, "step": e.number, "sql": e.sql,
         "kind": e.kind, "waited_on": list(e.waited_on),
         "error": None if e.error is None else {"code": e.error[0], "message": e.error[1]}}
        for e in result.events
    ]  # fmt: skip


def _attempt_json(attempt: Any, check: str | None) -> dict[str, Any]:
    return {
        "schedule": attempt.schedule,
        "verdict": "broken" if attempt.broken else ("correct" if check else "unchecked"),
        "broken_rows": [list(row) for row in attempt.broken],
        "participants": [_finished_json(f) for f in attempt.finished],
        "unknown": [_cut_json(cut) for cut in attempt.cuts],
        "events": _events(attempt.result),
    }


def _cut_json(cut: Any) -> dict[str, Any]:
    return {"fault": cut.fault, "session": cut.participant, "step": cut.step, "sql": cut.sql,
            "on_server": cut.server, "text": cut.text()}  # fmt: skip


def _finished_json(finished: Any) -> dict[str, Any]:
    if isinstance(finished, BaseException):
        return {"error": str(finished)}
    return {"command": finished.command, "status": finished.status, "output": finished.output}


def _participants(out: Any, finished: list[Any]) -> None:
    for number, done in enumerate(finished, start=1):
        if isinstance(done, BaseException):
            out.print(f"T{number}: {done}", markup=False)
        else:
            last = f": {done.last_line}" if done.status else ""
            out.print(f"T{number} ({done.command}) exited {done.status}{last}", markup=False)


def _verdict(broken: tuple[tuple[Any, ...], ...], check: str | None) -> str:
    if not check:
        return "verdict: unchecked (give --check SQL to judge the outcome)"
    if not broken:
        return "verdict: correct — --check returned no row"
    shown = ", ".join(repr(tuple(row)) for row in broken[:3])
    more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
    return f"verdict: broken — --check returned {len(broken)} row(s): {shown}{more}"


__all__ = ["proxy", "race"]
