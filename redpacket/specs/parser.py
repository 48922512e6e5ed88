"""Read an isolationtester spec file into a ``Spec``, with its checks and its errors.

The format is PostgreSQL's (``src/test/isolation/specscanner.l`` and ``specparse.y``,
as of PostgreSQL 14): the lab reads any file PostgreSQL's own tester reads, with the
same SQL text to the byte (a step's output repeats it), so a file's output can be
diffed against the tester's. Errors name the file and line and end the command with
exit status 2, never a traceback.

One addition, invisible to PostgreSQL's tester because it is a comment: a line
``# redpacket: engines postgresql, mysql`` says which engines a spec is written for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from redpacket.errors import LabError
from redpacket.specs.model import (
    Blocker,
    BlockerKind,
    Permutation,
    PermutationStep,
    Session,
    Spec,
    Step,
)

KEYWORDS = frozenset({"notices", "permutation", "session", "setup", "step", "teardown"})
# isolationtester's identifier: [A-Za-z\200-\377_][A-Za-z\200-\377_0-9$]* over bytes, so
# any non-ASCII character. Written as the ASCII it excludes: the same sets (every code
# point checked), but compiled in 0.2 ms instead of the 11 ms the range to U+10FFFF
# costs, paid by every `redpacket spec` process.
_IDENT_START = re.compile(r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]")
_IDENT = re.compile(
    r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f][^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*"
)
_SPACE = " \t\r\f"
_ENGINES_LINE = re.compile(r"#\s*redpacket:\s*engines?\s+(.*)", re.I)


class SpecError(LabError):
    """A spec file the lab cannot run: where it is wrong and why, in one line."""


@dataclass(frozen=True)
class Token:
    kind: str  # "keyword", "ident", "sql", "int" or the punctuation itself
    text: str
    line: int


def tokens(text: str, source: str) -> list[Token]:
    """Scan as specscanner.l does: an SQL block keeps its text between the braces,
    less the blanks right after ``{`` and right before ``}`` (newlines are kept)."""
    out: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in _SPACE:
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif ch == "{":
            start_line = line
            i += 1
            while i < n and text[i] in _SPACE:
                i += 1
            end = text.find("}", i)
            if end < 0:
                raise SpecError(f"{source}:{start_line}: unterminated sql block")
            body = text[i:end].rstrip(_SPACE)
            line += text.count("\n", i, end)
            out.append(Token("sql", body, start_line))
            i = end + 1
        elif ch == '"':
            start_line, i, chars = line, i + 1, []
            while True:
                if i >= n:
                    raise SpecError(f"{source}:{start_line}: unterminated quoted identifier")
                if text[i] == "\n":
                    raise SpecError(f"{source}:{line}: unexpected newline in quoted identifier")
                if text.startswith('""', i):
                    chars.append('"')
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    chars.append(text[i])
                    i += 1
            out.append(Token("ident", "".join(chars), start_line))
        elif ch in ",()*":
            out.append(Token(ch, ch, line))
            i += 1
        elif ch.isdigit() and ch.isascii():
            end = i
            while end < n and text[end].isdigit() and text[end].isascii():
                end += 1
            out.append(Token("int", text[i:end], line))
            i = end
        elif _IDENT_START.match(ch):
            match = _IDENT.match(text, i)
            assert match is not None
            word = match.group()
            out.append(Token("keyword" if word in KEYWORDS else "ident", word, line))
            i = match.end()
        else:
            raise SpecError(f"{source}:{line}: syntax error: unexpected character {ch!r}")
    return out


class _Parser:
    def __init__(self, items: list[Token], source: str, last_line: int) -> None:
        self.items, self.at, self.source, self.last_line = items, 0, source, last_line

    def peek(self, kind: str, text: str | None = None) -> bool:
        if self.at >= len(self.items):
            return False
        token = self.items[self.at]
        return token.kind == kind and (text is None or token.text == text)

    def take(self, kind: str, text: str | None = None, what: str = "") -> Token:
        if not self.peek(kind, text):
            found = self.items[self.at] if self.at < len(self.items) else None
            where = found.line if found else self.last_line
            seen = f"{found.text!r}" if found and found.kind != "sql" else (
                "an SQL block" if found else "the end of the file"
            )  # fmt: skip
            raise SpecError(f"{self.source}:{where}: syntax error: expected {what}, found {seen}")
        token = self.items[self.at]
        self.at += 1
        return token

    def keyword(self, word: str) -> bool:
        if self.peek("keyword", word):
            self.at += 1
            return True
        return False

    def sql(self, after: str) -> str:
        return self.take("sql", what=f"an SQL block {{ ... }} after {after!r}").text


def parse(text: str, source: str = "<spec>") -> Spec:
    """A ``Spec`` from the text of a spec file, checked as isolationtester checks it."""
    parser = _Parser(tokens(text, source), source, text.count("\n") + 1)
    setups: list[str] = []
    while parser.keyword("setup"):
        setups.append(parser.sql("setup"))
    teardown = parser.sql("teardown") if parser.keyword("teardown") else None
    sessions: list[Session] = []
    while parser.peek("keyword", "session"):
        parser.at += 1
        name = parser.take("ident", what="a session name").text
        session_setup = parser.sql("setup") if parser.keyword("setup") else None
        steps: list[Step] = []
        while parser.peek("keyword", "step"):
            parser.at += 1
            step_name = parser.take("ident", what="a step name").text
            steps.append(Step(step_name, parser.sql(f"step {step_name}"), len(sessions)))
        if not steps:
            parser.take("keyword", "step", what=f"a step in session {name!r}")
        session_teardown = parser.sql("teardown") if parser.keyword("teardown") else None
        sessions.append(Session(name, tuple(steps), session_setup, session_teardown))
    if not sessions:
        parser.take("keyword", "session", what="a session")
    permutations: list[Permutation] = []
    while parser.keyword("permutation"):
        permutations.append(_permutation(parser))
    if parser.at < len(parser.items):
        parser.take("keyword", "permutation", what="'permutation' or the end of the file")
    spec = Spec(
        name=Path(source).stem,
        sessions=tuple(sessions),
        setup=tuple(setups),
        teardown=teardown,
        permutations=tuple(permutations),
        engines=_engines(text),
    )
    return check(spec, source)


def _permutation(parser: _Parser) -> Permutation:
    steps: list[PermutationStep] = []
    while parser.peek("ident"):
        name = parser.take("ident").text
        blockers: list[Blocker] = []
        if parser.peek("("):
            parser.at += 1
            while True:
                if parser.peek("*"):
                    parser.at += 1
                    blockers.append(Blocker(BlockerKind.ONCE))
                else:
                    other = parser.take("ident", what="a blocking step name or '*'").text
                    if parser.keyword("notices"):
                        count = int(parser.take("int", what="a number of notices").text)
                        blockers.append(Blocker(BlockerKind.NOTICES, other, count))
                    else:
                        blockers.append(Blocker(BlockerKind.OTHER_STEP, other))
                if parser.peek(","):
                    parser.at += 1
                    continue
                parser.take(")", what="',' or ')' in a step's blockers")
                break
        steps.append(PermutationStep(name, tuple(blockers)))
    if not steps:
        parser.take("ident", what="a step name after 'permutation'")
    return Permutation(tuple(steps))


def _engines(text: str) -> tuple[str, ...]:
    for line in text.splitlines():
        match = _ENGINES_LINE.match(line.strip())
        if match:
            return tuple(word.lower() for word in re.split(r"[\s,]+", match.group(1)) if word)
    return ()


def check(spec: Spec, source: str) -> Spec:
    """isolationtester's own checks (check_testspec): unique step names, every step a
    permutation names exists, blockers name a step of the same permutation in another
    session. Unused steps are not an error there; ``unused_steps`` lists them."""
    steps: dict[str, Step] = {}
    for session in spec.sessions:
        for step in session.steps:
            if step.name in steps:
                raise SpecError(f"{source}: duplicate step name: {step.name}")
            steps[step.name] = step
    for permutation in spec.permutations:
        named = {pstep.name for pstep in permutation.steps}
        for pstep in permutation.steps:
            if pstep.name not in steps:
                raise SpecError(f'{source}: undefined step "{pstep.name}" specified in permutation')
        for pstep in permutation.steps:
            for blocker in pstep.blockers:
                if blocker.kind is BlockerKind.ONCE:
                    continue
                if blocker.step not in named:
                    raise SpecError(
                        f'{source}: undefined blocking step "{blocker.step}" referenced in'
                        f' permutation step "{pstep.name}"'
                    )
                if steps[str(blocker.step)].session == steps[pstep.name].session:
                    raise SpecError(
                        f'{source}: permutation step "{pstep.name}" cannot block on its own session'
                    )
    spec.steps.update(steps)
    return spec


def unused_steps(spec: Spec) -> list[str]:
    """Steps no permutation names (isolationtester warns about them), sorted by name."""
    if not spec.permutations:
        return []
    used = {pstep.name for permutation in spec.permutations for pstep in permutation.steps}
    return sorted(name for name in spec.steps if name not in used)


def load(path: str | Path) -> Spec:
    """Read and parse a spec file; a missing or unreadable file is a one-line error."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read spec file {str(path)!r}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse(text, str(path))


def parse_permutation(text: str, spec: Spec) -> Permutation:
    """A permutation given on the command line, written as in a spec file (``permutation``
    optional), checked against the spec as the file's own would be."""
    items = tokens(text, "--permutation")
    if items and items[0].kind == "keyword" and items[0].text == "permutation":
        items = items[1:]
    parser = _Parser(items, "--permutation", 1)
    permutation = _permutation(parser)
    if parser.at < len(items):
        parser.take("ident", what="a step name")
    check(
        Spec(spec.name, spec.sessions, spec.setup, spec.teardown, (permutation,), spec.engines),
        "--permutation",
    )
    return permutation
