"""Every page runs as written: the ``python`` blocks and the ``console`` transcripts of
README.md and docs/*.md are executed and the transcripts' output compared, so the
documentation cannot drift from the code.

How a page is run (one fresh directory per page, its blocks in page order):

- The directory starts with a copy of the repository's ``policies/`` and ``examples/``.
  A block with a path as its title (```` ```yaml title="policies/customer-records.yaml" ````)
  is written to that path when reached; a page that writes into ``policies/`` starts
  with an empty ``policies/`` of its own instead of the shipped one.
- ```` ```python ```` blocks run in one namespace per page (top-level ``await`` allowed);
  ```` ```python title="fragment" ```` is only compiled.
- ```` ```console ```` blocks: each ``$ zerotrust ...`` line runs in bash, ``zerotrust``
  being ``python -m zerotrust`` of this checkout, with stdout and stderr together; the lines
  up to the next ``$`` are its expected output. A line ``...`` stands for any lines, and
  ``...`` inside a line for any text (decision ids, times).
- ``<!-- not-run: reason -->`` on the line before a block skips it (a Python block is still
  compiled). A page whose blocks a dedicated test runs (against a live server, say) says so
  with ``<!-- snippets: tests/test_x.py -->``; that test must read the page.
- ```` ```sh ````, ```` ```text ```` and the rest are shown, never run.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import zerotrust
from zerotrust import PolicyDecisionPoint
from zerotrust.cel import Backend, CompiledBackend, InterpreterBackend

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
_TITLE = re.compile(r'title="([^"]+)"')
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*\S(?:(?!-->).)*-->\s*\Z", re.S)
_DELEGATED = re.compile(r"<!--\s*snippets:\s*(\S+)[^>]*-->")
_TIMEOUT = 120


@attrs.frozen
class Block:
    page: Path
    line: int
    language: str
    title: str | None
    body: str
    not_run: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT).as_posix()}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        title = _TITLE.search(match.group(2))
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start()) + 1,
                language=match.group(1),
                title=title.group(1) if title else None,
                body=match.group(3),
                not_run=bool(_NOT_RUN.search(text[max(0, match.start() - 300) : match.start()])),
            )
        )
    return found


def delegated_to(page: Path) -> str | None:
    found = _DELEGATED.search(page.read_text(encoding="utf-8"))
    return found.group(1) if found else None


def _page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# --- transcripts ----------------------------------------------------------------------


def transcript(body: str) -> list[tuple[str, list[str]]]:
    """The ``$`` commands of a console block, each with the output lines shown after it."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        else:
            raise AssertionError(f"output before the first `$` command: {line!r}")
    return steps


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether the output matches the shown lines: ``...`` alone is any lines (none
    included), ``...`` inside a line any text."""
    if not expected:
        return not actual
    head, *rest = expected
    if head.strip() == "...":
        return any(matches(rest, actual[i:]) for i in range(len(actual) + 1))
    if not actual:
        return False
    pattern = ".*".join(re.escape(part) for part in head.rstrip().split("..."))
    return bool(re.fullmatch(pattern, actual[0].rstrip())) and matches(rest, actual[1:])


def run_command(command: str, cwd: Path) -> str:
    prelude = f'zerotrust() {{ "{sys.executable}" -m zerotrust "$@"; }}\n'
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path]),
        "COLUMNS": "100",
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", prelude + command],
        check=False,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=_TIMEOUT,
    )
    return result.stdout


# --- pages ----------------------------------------------------------------------------


def _workdir(page_blocks: list[Block], tmp_path: Path) -> Path:
    own = {Path(b.title).parts[0] for b in page_blocks if b.title and b.title != "fragment"}
    for part in {"policies", "examples"} - own:
        shutil.copytree(ROOT / part, tmp_path / part)
    return tmp_path


def _close(namespace: dict[str, object]) -> None:
    """Drops what the page left open (a decision log inside a PDP), as the end of the
    reader's script would: quietly, not as this test's ResourceWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        namespace.clear()
        gc.collect()


def _run_python(block: Block, namespace: dict[str, object]) -> None:
    code = compile(block.body, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if block.not_run or block.title == "fragment":
        return
    result = eval(code, namespace)  # the page's own code, in the page's namespace
    if asyncio.iscoroutine(result):
        asyncio.run(result)


def _run_console(block: Block, cwd: Path) -> list[str]:
    problems = []
    for command, shown in transcript(block.body):
        if not command.startswith("zerotrust "):
            problems.append(f"{block.where}: `$ {command}` is not a zerotrust command")
            continue
        printed = run_command(command, cwd).splitlines()
        if not matches(shown, printed):
            problems.append(
                f"{block.where}: `$ {command}` printed:\n"
                + "\n".join(printed)
                + "\n--- the page shows:\n"
                + "\n".join(shown)
            )
    return problems


@pytest.fixture
def page_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.mark.parametrize("page", [p for p in PAGES if not delegated_to(p)], ids=_page_id)
def test_page_runs_as_written(page: Path, page_dir: Path) -> None:
    page_blocks = blocks(page)
    cwd = _workdir(page_blocks, page_dir)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    problems: list[str] = []
    try:
        for block in page_blocks:
            if block.title and block.title != "fragment" and block.language != "python":
                target = cwd / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.body, encoding="utf-8")
            elif block.language == "python":
                _run_python(block, namespace)
            elif block.language == "console" and not block.not_run:
                problems += _run_console(block, cwd)
    finally:
        _close(namespace)
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("page", [p for p in PAGES if delegated_to(p)], ids=_page_id)
def test_a_delegated_page_is_read_by_its_test(page: Path) -> None:
    test = ROOT / str(delegated_to(page))
    assert test.is_file(), f"{page.name} names {test}, which does not exist"
    assert f'"{page.name}"' in test.read_text(encoding="utf-8")
    for block in blocks(page):  # whatever that test leaves out is at least valid Python
        if block.language == "python":
            compile(block.body, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_not_run_is_used_sparingly() -> None:
    """A page marks only what cannot run here (a remote identity provider, a Redis
    address of the reader's network); everything else runs."""
    skipped = [
        b.where
        for p in PAGES
        if not delegated_to(p)
        for b in blocks(p)
        if b.not_run and b.language in {"python", "console"}
    ]
    runnable = [
        b
        for p in PAGES
        if not delegated_to(p)
        for b in blocks(p)
        if b.language in {"python", "console"}
    ]
    assert len(skipped) * 4 <= len(runnable), skipped


# --- the runner itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shown", "printed", "expected"),
    [
        (["ok"], ["ok"], True),
        (["ok"], ["ok", "more"], False),
        (["ok"], ["ko"], False),
        (['{"id": "..."}'], ['{"id": "5e03abdb"}'], True),
        (['{"id": "..."}'], ['{"di": "5e03abdb"}'], False),
        (["a", "...", "z"], ["a", "z"], True),
        (["a", "...", "z"], ["a", "b", "c", "z"], True),
        (["a", "...", "z"], ["a", "b", "c"], False),
        (["a", "..."], ["a", "b"], True),
        (["x.y (1)"], ["xzy (1)"], False),
    ],
)
def test_output_matching(shown: list[str], printed: list[str], expected: bool) -> None:
    assert matches(shown, printed) is expected


def test_a_transcript_that_drifted_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- x -->\n```console\n$ zerotrust --version\nzerotrust 0.0.0-not-this\n```\n"
        "<!-- not-run: shown only -->\n```console\n$ zerotrust nonsense\n```\n"
        "<!-- not-run: an earlier block's -->\ntext\n<!-- x -->\n```python\npass\n```\n",
        encoding="utf-8",
    )
    first, second, third = blocks(page)
    assert (first.not_run, second.not_run, third.not_run) == (False, True, False)
    (problem,) = _run_console(attrs.evolve(first, page=ROOT / "README.md"), tmp_path)
    printed = problem.split("printed:\n")[1].split("\n--- the page shows:")[0]
    assert printed == f"zerotrust {zerotrust.__version__}"


def test_a_console_block_runs_only_zerotrust(tmp_path: Path) -> None:
    block = Block(ROOT / "README.md", 1, "console", None, "$ rm -rf /tmp/x\n", False)
    assert _run_console(block, tmp_path) == [
        "README.md:1: `$ rm -rf /tmp/x` is not a zerotrust command"
    ]


# --- what the pages state about conditions, on both backends ----------------------------


def _decide(condition: str, backend: Backend) -> tuple[str, list[str]]:
    text = (
        "policy: p\ntarget: {resources: [t], actions: [r]}\n"
        f"rules:\n  - id: a\n    effect: allow\n    when: {condition!r}\n"
    )
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": text}, backend=backend, behavior=None)
    request = {"subject": {"id": "u"}, "action": {"name": "r"}, "resource": {"type": "t"}}
    decision = pdp.evaluate(request)
    return decision.effect.value, [error.message for error in decision.errors]


@pytest.mark.parametrize("backend", ["compiled", "interpreter"])
def test_numbers_of_different_types_compare_but_do_not_add(backend: str) -> None:
    """policy-language.md, "Semantics to know": the same on both backends."""
    chosen = CompiledBackend() if backend == "compiled" else InterpreterBackend()
    for condition in ("3 >= 2.5", "2 < 2.5", "1 == 1.0", "1u == 1", "1.0 in [1]"):
        assert _decide(condition, chosen) == ("allow", []), condition
    assert _decide("1 + 1.5 == 2.5", chosen) == (
        "deny",
        ["no such overload: _+_(int, double)"],
    )


def test_the_interpreter_refuses_deep_conditions_at_evaluation_as_documented() -> None:
    """cel-compiler.md and policy-language.md: about 20 brackets, about 180 chained
    terms on the interpreter; the compiler takes both."""
    too_deep = ["expression nested too deeply to evaluate"]
    for condition, shallow in (
        ("(" * 30 + "true" + ")" * 30, "(" * 12 + "true" + ")" * 12),
        (" || ".join(["false"] * 250 + ["true"]), " || ".join(["false"] * 150 + ["true"])),
    ):
        assert _decide(condition, CompiledBackend()) == ("allow", [])
        assert _decide(condition, InterpreterBackend()) == ("deny", too_deep)
        assert _decide(shallow, InterpreterBackend()) == ("allow", [])
