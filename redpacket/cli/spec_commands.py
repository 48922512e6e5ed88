"""spec: run isolationtester spec files in the lab's spec database."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from redpacket.cli.app import (
    Options,
    check_html,
    cli,
    console,
    html_option,
    json_option,
    open_lab,
    print_json,
    progress_bar,
)
from redpacket.errors import LabError
from redpacket.specs import output
from redpacket.specs.events import Event, Problem
from redpacket.specs.parser import load, parse_permutation
from redpacket.specs.run import SpecRun, check_engine, engine_problem, run_spec


def _printer(errors_apart: bool) -> Callable[[Event], None]:
    """Print each event as it happens, as isolationtester does (stderr lines to stderr)."""

    def emit(event: Event) -> None:
        stream = sys.stderr if errors_apart and isinstance(event, Problem) else sys.stdout
        stream.write(output.line(event))
        stream.flush()

    return emit


@cli.command()
@click.argument(
    "spec_files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--permutation",
    "permutations",
    multiple=True,
    help="Run these permutations only, written as in the file: 's1a s2a(s1b) s1c'"
    " (repeatable); default: the file's, or every interleaving when it has none.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each spec's output to DIR/NAME.out instead of printing it.",
)
@click.option(
    "--expected",
    "expected_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Compare each spec's output with DIR/NAME.out (as pg_isolation_regress does);"
    " print the differences, exit 1 if any.",
)
@click.option(
    "--step-timeout",
    type=float,
    help="Seconds before a step is cancelled (twice that: the run stops);"
    " default: PGISOLATIONTIMEOUT or 300.",
)
@json_option
@html_option
@click.pass_obj
def spec(
    options: Options,
    spec_files: Sequence[Path],
    permutations: Sequence[str],
    output_dir: Path | None,
    expected_dir: Path | None,
    step_timeout: float | None,
    as_json: bool,
    html_path: Path | None,
) -> None:
    """Run isolationtester SPEC_FILES (PostgreSQL's src/test/isolation format).

    The output is isolationtester's, byte for byte, so it can be diffed against
    expected files. Specs run in a database the lab owns (LAB_specs), set up as
    pg_isolation_regress sets up its own.
    """
    check_html(html_path, as_json)
    if step_timeout is not None and step_timeout <= 0:
        raise LabError("--step-timeout must be more than 0 seconds")
    specs = [load(path) for path in spec_files]
    chosen = [[parse_permutation(text, s) for text in permutations] for s in specs]
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LabError(f"cannot create {output_dir}: {exc.strerror or exc}") from None
    quiet = as_json or html_path is not None or output_dir is not None or expected_dir is not None
    runs: list[SpecRun] = []
    skipped: dict[str, str] = {}
    with open_lab(options) as lab, progress_bar() as bar:
        if len(specs) == 1:
            check_engine(specs[0], lab.engine)  # the one asked for: refused, exit status 2
        for one in specs:
            problem = engine_problem(one, lab.engine)
            if problem is not None:  # one of several: the rest run
                skipped[one.name] = problem
                click.echo(f"# {one.name}: skipped, {problem}", err=True)
        task = bar.add_task("specs", total=len(specs), visible=quiet)  # the output is the progress
        for one, picked in zip(specs, chosen, strict=True):
            if one.name in skipped:
                bar.advance(task)
                continue
            if not quiet and len(specs) > 1:
                click.echo(f"# {one.name}", err=True)
            bar.update(task, description=one.name)
            run = run_spec(
                lab, one, picked or None, None if quiet else _printer(True),
                max_wait=step_timeout,
            )  # fmt: skip
            runs.append(run)
            bar.advance(task)
            if output_dir is not None:
                (output_dir / f"{one.name}.out").write_text(run.text(), encoding="utf-8",
                                                           errors="surrogateescape")  # fmt: skip
    if as_json:
        print_json([run.to_json() for run in runs] if len(specs) > 1 else runs[0].to_json())
    elif html_path is not None:
        from redpacket.cli.show import Show

        show = Show(console(), "redpacket spec", html_path)
        for run in runs:
            show.spec_run(run)
        show.save()
    if expected_dir is not None:  # as pg_isolation_regress: 1 when an output differs
        for name, problem in skipped.items():
            click.echo(f"{name:40} skipped ({problem})")
        if _compare(runs, expected_dir):
            raise click.exceptions.Exit(1)
    elif any(run.aborted for run in runs):
        raise click.exceptions.Exit(1)  # as isolationtester exits when a run stops


def expected_file(expected_dir: Path, run: SpecRun) -> Path:
    """NAME.SERVER.out where the server's output differs (tests/specs/expected has
    basics.mariadb.out: InnoDB answers otherwise), else NAME.out."""
    server = run.server.split()[0].lower()  # "MariaDB 10.11.19" -> "mariadb"
    own = expected_dir / f"{run.spec.name}.{server}.out"
    return own if own.exists() else expected_dir / f"{run.spec.name}.out"


def _compare(runs: Sequence[SpecRun], expected_dir: Path) -> int:
    differs = 0
    for run in runs:
        path = expected_file(expected_dir, run)
        got = run.text()
        try:
            want = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            click.echo(f"{run.spec.name:40} no expected file {path}")
            differs += 1
            continue
        if got == want:
            click.echo(f"{run.spec.name:40} ok      {run.seconds * 1000:8.0f} ms")
            continue
        differs += 1
        click.echo(f"{run.spec.name:40} FAILED  {run.seconds * 1000:8.0f} ms")
        diff = difflib.unified_diff(
            want.splitlines(keepends=True), got.splitlines(keepends=True),
            str(path), f"{run.spec.name} ({run.server})",
        )  # fmt: skip
        click.echo("".join(diff), nl=False)
    return differs
