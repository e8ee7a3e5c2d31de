"""The ``overstory`` command line: loading targets, ``run``, review on the terminal, ``check``.

``main()`` runs in-process (it calls ``trio.run`` itself, so these tests are plain sync
functions); a few tests run the installed console script as a real process.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

import overstory as ov
from overstory._cli import TerminalReviewer, main, render_outcome

ROOT = Path(__file__).resolve().parent.parent

TREES = """\
import trio
import overstory as ov


@ov.leaf
async def echo(task, ctx):
    \"\"\"Echoes the goal and the input.\"\"\"
    return {"goal": ctx.goal, "input": task.input}


@ov.leaf
async def broken(task, ctx):
    raise ValueError("the widget is broken")


@ov.leaf
async def slow(task, ctx):
    await trio.sleep_forever()


@ov.leaf
async def draft(task, ctx):
    return {"text": "first draft", "feedback": list(ctx.feedback)}


class Unstartable(ov.Agent):
    \"\"\"Cannot start.\"\"\"

    async def start(self):
        raise ConnectionError("no database")

    async def handle(self, task, ctx):
        return None


async def edits_everything(request):
    return ov.Edit(output="edited by the tree's reviewer")


def reviewed(name, **options):
    plan = [ov.Step("draft", "Write a draft", review=True)]
    return ov.Tree(name, ov.Strategic("boss", plan=plan, children=[draft]), **options)


echo_tree = ov.Tree("echo", ov.Tactical("team", children=[echo]))
broken_tree = ov.Tree(
    "broken",
    ov.Tactical(
        "team",
        children=[broken],
        retry=ov.Retry(attempts=2, backoff=ov.Backoff(initial=0.001, cap=0.001)),
    ),
)
slow_tree = ov.Tree("slow", ov.Tactical("team", children=[slow]))
unstartable_tree = ov.Tree("unstartable", ov.Tactical("team", children=[Unstartable]))
review_tree = reviewed("review")
own_reviewer_tree = reviewed("own", reviewer=edits_everything)
"""


@pytest.fixture
def trees(tmp_path: Path) -> Path:
    """A module of small trees, written to a temporary directory."""
    path = tmp_path / "trees.py"
    path.write_text(TREES)
    return path


@pytest.fixture
def clean_modules() -> Iterator[None]:
    """Forget the modules a test imports by name."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``overstory ARGS`` in-process; return (exit status, stdout, stderr)."""
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def answer(monkeypatch: pytest.MonkeyPatch, *lines: str) -> None:
    """Pipe ``lines`` into stdin, as answers to review points."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))


# -- loading TARGET ---------------------------------------------------------------------

BAD_FILES = {
    "import_error": ("import overstory\nimport no_such_dependency\n", "tree"),
    "raises": ("x = 1\nraise RuntimeError('settings missing')\n", "tree"),
    "syntax": ("def broken(:\n    pass\n", "tree"),
    "invalid_tree": (
        "import overstory as ov\n\n"
        "@ov.leaf\nasync def a(task, ctx):\n    return 1\n\n"
        "tree = ov.Tree('t', ov.Strategic('boss', plan=[ov.Step('x', 'do x', to='nobody')],"
        " children=[a]))\n",
        "tree",
    ),
    "no_attribute": (TREES, "tree"),
    "not_a_tree": (TREES + "GOAL = 'a goal'\n", "GOAL"),
}

BAD_MESSAGES = {
    "import_error": (
        "importing it raised ModuleNotFoundError: No module named 'no_such_dependency' "
        "(import_error.py, line 2)"
    ),
    "raises": "importing it raised RuntimeError: settings missing (raises.py, line 2)",
    "syntax": "SyntaxError: invalid syntax (syntax.py, line 1)",
    "invalid_tree": (
        "the tree definition is invalid: t/boss: invalid plan: step 'x' is routed to "
        "'nobody', which is not a child (children: a) (invalid_tree.py, line 7)"
    ),
    "no_attribute": (
        "no_attribute.py has no attribute 'tree'; the trees it defines: broken_tree, "
        "echo_tree, own_reviewer_tree, review_tree, slow_tree, unstartable_tree"
    ),
    "not_a_tree": "GOAL is a str, not an ov.Tree; the trees it defines: broken_tree",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["run", "check"])
def test_a_bad_target_is_one_paragraph_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str, command: str
) -> None:
    """Each kind of unloadable TARGET gets one error line naming the problem, no traceback."""
    source, name = BAD_FILES[kind]
    path = tmp_path / f"{kind}.py"
    path.write_text(source)
    goal = ["a goal"] if command == "run" else []
    status, out, err = cli(capsys, command, f"{path}:{name}", *goal)
    assert status == 2
    assert out == ""
    assert err.startswith(f"overstory {command}: error: cannot load '{path}:{name}': ")
    assert BAD_MESSAGES[kind] in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_a_missing_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A TARGET whose file does not exist says so, and suggests ``.py`` when that exists."""
    (tmp_path / "agency.py").write_text("")
    status, _, err = cli(capsys, "check", tmp_path / "nope.py:tree")
    assert status == 2
    assert f"file {tmp_path / 'nope.py'} not found\n" in err
    status, _, err = cli(capsys, "check", tmp_path / "agency:tree")
    assert status == 2
    assert f"(did you mean {tmp_path / 'agency'}.py:tree?)" in err


def test_a_directory_is_not_a_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A TARGET naming a directory is refused."""
    status, _, err = cli(capsys, "check", f"{tmp_path}:tree")
    assert status == 2
    assert f"{tmp_path} is a directory, not a Python file" in err


@pytest.mark.parametrize(
    ("target", "example"),
    [("trees.py", "trees.py:tree"), ("trees.py:", "trees.py:tree"), (":tree", "agency.py:tree")],
)
def test_a_target_must_name_a_tree(
    capsys: pytest.CaptureFixture[str], target: str, example: str
) -> None:
    """A TARGET without ``:NAME`` is a usage error that shows the expected form."""
    status, _, err = cli(capsys, "check", target)
    assert status == 2
    assert "must be path/to/file.py:NAME or package.module:NAME" in err
    assert f"(for example {'examples/' if example.startswith('agency') else ''}{example})" in err


@pytest.mark.usefixtures("clean_modules")
def test_a_missing_module_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    """``package.module:NAME`` for a module that does not exist says so, no traceback."""
    status, _, err = cli(capsys, "check", "no_such_package.trees:tree")
    assert status == 2
    assert "cannot load 'no_such_package.trees:tree': no module named 'no_such_package'" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("clean_modules")
def test_a_module_target_is_imported_from_the_current_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``package.module:NAME`` finds packages in the current directory, like ``python -m``."""
    package = tmp_path / "cli_test_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "trees.py").write_text(TREES)
    monkeypatch.chdir(tmp_path)
    status, out, _ = cli(capsys, "run", "cli_test_package.trees:echo_tree", "hi")
    assert status == 0
    assert "echo: SUCCEEDED" in out
    assert str(tmp_path) not in sys.path


@pytest.mark.usefixtures("clean_modules")
def test_a_module_that_fails_to_import_names_its_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error raised while importing ``package.module`` points at the module's line."""
    package = tmp_path / "cli_test_broken"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "trees.py").write_text("import overstory\nimport no_such_dependency\n")
    monkeypatch.chdir(tmp_path)
    status, _, err = cli(capsys, "check", "cli_test_broken.trees:tree")
    assert status == 2
    assert err == (
        "overstory check: error: cannot load 'cli_test_broken.trees:tree': importing it "
        "raised ModuleNotFoundError: No module named 'no_such_dependency' (trees.py, line 2)\n"
    )


@pytest.mark.usefixtures("clean_modules")
def test_a_file_target_imports_its_neighbours_as_a_fresh_module(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each load imports the file afresh, never as ``__main__``, its directory on sys.path."""
    (tmp_path / "cli_test_helpers.py").write_text("DESCRIPTION = 'helps'\n")
    names = tmp_path / "names.txt"
    (tmp_path / "uses_helpers.py").write_text(
        TREES
        + "import cli_test_helpers\n"
        + f"with open({str(names)!r}, 'a') as file:\n    print(__name__, file=file)\n"
        + "if __name__ == '__main__':\n    raise SystemExit('imported as __main__')\n"
    )
    for _ in range(2):
        status, _, _ = cli(capsys, "check", tmp_path / "uses_helpers.py:echo_tree")
        assert status == 0
    first, second = names.read_text().split()
    assert first != second
    assert "__main__" not in (first, second)
    assert str(tmp_path) not in sys.path


# -- overstory run ----------------------------------------------------------------------


def test_run_prints_the_outcome_and_exits_0(
    capsys: pytest.CaptureFixture[str], trees: Path
) -> None:
    """A succeeded goal prints a header, the steps and the output; exit status 0."""
    status, out, err = cli(capsys, "run", f"{trees}:echo_tree", "Say hello")
    assert status == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("echo: SUCCEEDED in ")
    assert lines[1] == "  goal  Say hello"
    assert lines[2].startswith("  id    ")
    assert "steps" in lines
    assert any(line.startswith("  └── team  succeeded  echo  1 attempt  ") for line in lines)
    assert "failures" not in out
    output = out[out.index("\noutput\n") + len("\noutput\n") :]
    assert json.loads(output) == {"goal": "Say hello", "input": None}


def test_run_exits_1_on_a_failed_goal_with_its_failure_chain(
    capsys: pytest.CaptureFixture[str], trees: Path
) -> None:
    """A failed goal prints the failure chain without tracebacks, no output; exit status 1."""
    status, out, _ = cli(capsys, "run", f"{trees}:broken_tree", "Fix it")
    assert status == 1
    assert out.startswith("broken: FAILED in ")
    assert "failures (3)\n" in out
    assert "  1. broken/team/broken  (leaf, step team, attempt 1, at " in out
    assert "     ValueError: the widget is broken\n" in out
    assert "  3. broken/team  (tactical, step team, attempt 2, at " in out
    assert "CandidatesExhausted: every candidate failed (2 attempts)" in out
    assert "Traceback" not in out
    assert "\noutput\n" not in out


def test_run_verbose_shows_the_tracebacks(capsys: pytest.CaptureFixture[str], trees: Path) -> None:
    """``--verbose`` adds each failure's traceback under it."""
    status, out, _ = cli(capsys, "run", f"{trees}:broken_tree", "Fix it", "--verbose")
    assert status == 1
    assert "     | Traceback (most recent call last):" in out
    assert "     | ValueError: the widget is broken" in out


def test_run_json_round_trips_into_an_outcome(
    capsys: pytest.CaptureFixture[str], trees: Path
) -> None:
    """``--json`` prints exactly the outcome as JSON, which decodes with ``ov.from_json``."""
    status, out, _ = cli(capsys, "run", f"{trees}:broken_tree", "Fix it", "--json")
    assert status == 1
    outcome = ov.from_json(ov.Outcome, out)
    assert outcome.status is ov.Status.FAILED
    assert outcome.goal == "Fix it"
    assert [f.error_type for f in outcome.failures] == [
        "ValueError",
        "ValueError",
        "CandidatesExhausted",
    ]
    assert render_outcome(outcome).startswith("broken: FAILED in ")


def test_run_passes_the_input_as_json_text_or_a_file(
    capsys: pytest.CaptureFixture[str], trees: Path, tmp_path: Path
) -> None:
    """``--input`` takes JSON text or ``@path`` to a JSON file; it is the goal's input."""
    status, out, _ = cli(capsys, "run", f"{trees}:echo_tree", "go", "--input", '{"n": [1, 2]}')
    assert status == 0
    assert (
        ov.from_json(
            ov.Outcome,
            cli(capsys, "run", f"{trees}:echo_tree", "go", "--json", "--input", '"text"')[1],
        ).output["input"]
        == "text"
    )
    (tmp_path / "input.json").write_text('{"from": "file"}')
    status, out, _ = cli(
        capsys, "run", f"{trees}:echo_tree", "go", "--json", "--input", f"@{tmp_path}/input.json"
    )
    assert status == 0
    assert ov.from_json(ov.Outcome, out).output == {"goal": "go", "input": {"from": "file"}}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"n": ', "argument --input: it is not valid JSON: Expecting value: line 1 column 7"),
        ("@missing.json", "argument --input: cannot read missing.json: No such file"),
    ],
)
def test_run_refuses_bad_input(
    capsys: pytest.CaptureFixture[str], trees: Path, value: str, message: str
) -> None:
    """Input that is not JSON (or a file that cannot be read) is a usage error, with where."""
    status, out, err = cli(capsys, "run", f"{trees}:echo_tree", "go", "--input", value)
    assert status == 2
    assert out == ""
    assert message in err


def test_run_refuses_invalid_json_in_an_input_file(
    capsys: pytest.CaptureFixture[str], trees: Path, tmp_path: Path
) -> None:
    """An ``@file`` that is not JSON names the file and the error's position."""
    (tmp_path / "bad.json").write_text('{"a": 1,\n  oops}')
    status, _, err = cli(
        capsys, "run", f"{trees}:echo_tree", "go", "--input", f"@{tmp_path}/bad.json"
    )
    assert status == 2
    assert f"{tmp_path}/bad.json is not valid JSON: Expecting property name enclosed in " in err
    assert "line 2 column 3 (char 11)" in err


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_run_timeout_must_be_a_positive_number(
    capsys: pytest.CaptureFixture[str], trees: Path, value: str
) -> None:
    """``--timeout`` takes a positive, finite number of seconds."""
    status, _, err = cli(capsys, "run", f"{trees}:echo_tree", "go", "--timeout", value)
    assert status == 2
    assert f"argument --timeout: must be a positive number of seconds, got '{value}'" in err


def test_run_timeout_ends_the_goal_timed_out(
    capsys: pytest.CaptureFixture[str], trees: Path
) -> None:
    """Past ``--timeout`` the goal is cancelled: status TIMED_OUT, exit status 1."""
    status, out, _ = cli(capsys, "run", f"{trees}:slow_tree", "wait", "--timeout", "0.05")
    assert status == 1
    assert out.startswith("slow: TIMED_OUT in ")


def test_run_refuses_an_empty_goal(capsys: pytest.CaptureFixture[str], trees: Path) -> None:
    """An empty or blank GOAL is a usage error."""
    status, _, err = cli(capsys, "run", f"{trees}:echo_tree", "  ")
    assert status == 2
    assert err == "overstory run: error: GOAL must not be empty\n"


def test_run_seed_is_accepted(capsys: pytest.CaptureFixture[str], trees: Path) -> None:
    """``--seed N`` seeds the backoff jitter; a non-integer is a usage error."""
    assert cli(capsys, "run", f"{trees}:broken_tree", "go", "--seed", "7")[0] == 1
    status, _, err = cli(capsys, "run", f"{trees}:broken_tree", "go", "--seed", "x")
    assert status == 2
    assert "argument --seed: invalid int value: 'x'" in err


def test_run_reports_a_tree_that_cannot_start(
    capsys: pytest.CaptureFixture[str], trees: Path
) -> None:
    """An agent whose ``start()`` raises: one line naming the agent, exit status 1."""
    status, out, err = cli(capsys, "run", f"{trees}:unstartable_tree", "go")
    assert status == 1
    assert out == ""
    assert err == (
        "overstory run: error: the tree could not start: unstartable/team/Unstartable: "
        "ConnectionError('no database')\n"
    )


def test_ctrl_c_cancels_the_goal_stops_the_agents_and_exits_130(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A KeyboardInterrupt inside the run (wrapped by trio's nurseries) prints one line."""
    stopped = tmp_path / "stopped"
    (tmp_path / "interrupted.py").write_text(
        textwrap.dedent(f"""\
            import overstory as ov

            class Worker(ov.Agent):
                \"\"\"Works until Ctrl-C.\"\"\"

                async def handle(self, task, ctx):
                    raise KeyboardInterrupt

                async def stop(self):
                    open({str(stopped)!r}, "w").close()

            tree = ov.Tree("ki", ov.Tactical("team", children=[Worker]))
            """)
    )
    status, out, err = cli(capsys, "run", tmp_path / "interrupted.py:tree", "go")
    assert (status, out, err) == (130, "", "interrupted\n")
    assert stopped.exists()


# -- review points ----------------------------------------------------------------------


def test_auto_approve_never_reads_stdin(capsys: pytest.CaptureFixture[str], trees: Path) -> None:
    """``--auto-approve`` approves every review point (pytest's stdin raises if read)."""
    status, out, err = cli(capsys, "run", f"{trees}:review_tree", "go", "--auto-approve")
    assert status == 0
    assert "review approved" in out
    assert err == ""


def test_review_asks_on_stderr_and_reads_the_answer_from_stdin(
    capsys: pytest.CaptureFixture[str], trees: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer shows the step, agent and output on stderr; ``a`` approves."""
    answer(monkeypatch, "a")
    status, out, err = cli(capsys, "run", f"{trees}:review_tree", "go", "--json")
    assert status == 0
    assert ov.from_json(ov.Outcome, out).output == {"text": "first draft", "feedback": []}
    assert err.splitlines() == [
        "",
        "review: step draft of review/boss",
        "  agent   review/boss/draft",
        "  output",
        "    {",
        '      "text": "first draft",',
        '      "feedback": []',
        "    }",
        "[a]pprove / [r]eject / [e]dit? a",
    ]


def test_review_reject_asks_for_feedback_and_reruns_the_step(
    capsys: pytest.CaptureFixture[str], trees: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``r`` asks for non-empty feedback, the agent re-runs with it, and is asked again."""
    answer(monkeypatch, "maybe", "r", "", "Make it shorter", "approve")
    status, out, err = cli(capsys, "run", f"{trees}:review_tree", "go", "--json")
    assert status == 0
    outcome = ov.from_json(ov.Outcome, out)
    assert outcome.output == {"text": "first draft", "feedback": ["Make it shorter"]}
    assert [r.review for r in outcome.steps if r.supervisor == "review/boss"] == [
        "rejected",
        "approved",
    ]
    assert "please answer a, r or e" in err
    assert "feedback cannot be empty" in err
    assert "review: step draft of review/boss (round 2)" in err


def test_review_edit_reads_json_until_it_parses(
    capsys: pytest.CaptureFixture[str], trees: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``e`` takes the new output as JSON over several lines; invalid JSON is asked again."""
    answer(monkeypatch, "e", "{oops}", '{"text": "my own",', ' "by": "a person"}')
    status, out, err = cli(capsys, "run", f"{trees}:review_tree", "go", "--json")
    assert status == 0
    assert ov.from_json(ov.Outcome, out).output == {"text": "my own", "by": "a person"}
    assert "not valid JSON: Expecting property name enclosed in double quotes" in err
    assert err.count("new output as JSON: ") == 2


def test_review_at_end_of_stdin_cancels_the_goal_and_exits_2(
    capsys: pytest.CaptureFixture[str], trees: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When stdin ends before a review point is answered, the run stops: a usage error."""
    answer(monkeypatch)
    status, out, err = cli(capsys, "run", f"{trees}:review_tree", "go")
    assert status == 2
    assert out == ""
    assert err.endswith(
        "overstory run: error: a review point is waiting but stdin is closed: answer on a "
        "terminal, pipe the answers in (a, r + feedback, e + JSON, one per line), or pass "
        "--auto-approve; the goal was cancelled\n"
    )


def test_a_trees_own_reviewer_is_used_unless_auto_approve(
    capsys: pytest.CaptureFixture[str], trees: Path
) -> None:
    """A tree built with ``reviewer=`` reviews its own steps; ``--auto-approve`` overrides."""
    status, out, _ = cli(capsys, "run", f"{trees}:own_reviewer_tree", "go", "--json")
    assert status == 0
    assert ov.from_json(ov.Outcome, out).output == "edited by the tree's reviewer"
    status, out, _ = cli(
        capsys, "run", f"{trees}:own_reviewer_tree", "go", "--json", "--auto-approve"
    )
    assert ov.from_json(ov.Outcome, out).output["text"] == "first draft"


class HeldStdin(io.StringIO):
    """A stdin whose lines arrive only when the test releases them (a person typing)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.typed = threading.Event()

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self.typed.wait(timeout=10)
        return super().readline()


async def test_a_line_typed_for_a_cancelled_review_answers_the_next() -> None:
    """A review cancelled while it waits does not swallow the answer to the next one."""
    stdin = HeldStdin("a\n")
    reviewer = TerminalReviewer(stdin, io.StringIO(), on_eof=lambda: None)
    request = ov.ReviewRequest(
        goal_id="g", goal="go", path="t/boss", step="draft", agent="t/boss/a", output=1, round=1
    )
    with trio.move_on_after(0.05) as waited:
        await reviewer(request)
    assert waited.cancelled_caught
    stdin.typed.set()
    with trio.fail_after(5):
        assert await reviewer(request) == ov.Approve()


# -- overstory check --------------------------------------------------------------------


def test_check_draws_the_tree_and_says_ok(capsys: pytest.CaptureFixture[str], trees: Path) -> None:
    """``check`` prints ``Tree.draw()`` then ``ok``; exit status 0."""
    status, out, err = cli(capsys, "check", f"{trees}:review_tree")
    assert status == 0
    assert err == ""
    assert out.splitlines() == [
        "review",
        "└── boss  [strategic; one_for_one, 3 attempts]",
        "    · step draft: Write a draft; review",
        "    └── draft  [leaf; function]",
        "ok",
    ]


# -- the parser -------------------------------------------------------------------------


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``overstory`` alone prints the usage and exits 2."""
    status, _, err = cli(capsys)
    assert status == 2
    assert "the following arguments are required: COMMAND" in err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` lists the commands and ``--version`` prints the version; both exit 0."""
    status, out, _ = cli(capsys, "--help")
    assert status == 0
    assert "run" in out
    assert "check" in out
    assert cli(capsys, "--version")[:2] == (0, f"overstory {ov.__version__}\n")


# -- the readable outcome ---------------------------------------------------------------


def outcome_with_a_reassignment() -> ov.Outcome:
    """A made-up outcome: fetch reassigned inside a team, then a reviewed send."""
    succeeded = ov.Status.SUCCEEDED
    return ov.Outcome(
        goal_id="g-1",
        goal="Do it",
        tree="t",
        status=succeeded,
        output={"sent": True},
        steps=(
            ov.StepRecord(
                supervisor="t/boss/team",
                step="fetch",
                status=succeeded,
                agent="t/boss/team/backup",
                attempts=3,
                duration=0.5,
            ),
            ov.StepRecord(
                supervisor="t/boss",
                step="fetch",
                status=succeeded,
                agent="t/boss/team",
                attempts=1,
                duration=0.5,
            ),
            ov.StepRecord(
                supervisor="t/boss",
                step="send",
                status=succeeded,
                agent="t/boss/mailer",
                attempts=1,
                started=0.5,
                duration=0.25,
                review="approved",
            ),
        ),
        failures=tuple(
            ov.FailureRecord(
                path="t/boss/team/primary",
                layer="leaf",
                step="fetch",
                attempt=attempt,
                error_type="ConnectionError",
                message="t/boss/team/primary: refused",
                traceback="Traceback (most recent call last):\nConnectionError: refused\n",
                at=0.1 * attempt,
            )
            for attempt in (1, 2)
        ),
        duration=0.75,
    )


def test_render_outcome_draws_steps_by_supervisor_then_failures_then_output() -> None:
    """Teams nest under their supervisor, reassignments name who failed, paths not repeated."""
    assert render_outcome(outcome_with_a_reassignment()) == textwrap.dedent("""\
        t: SUCCEEDED in 750 ms
          goal  Do it
          id    g-1

        steps
          t/boss
          ├── fetch  succeeded  team    1 attempt  500 ms
          ├── send   succeeded  mailer  1 attempt  250 ms  review approved
          └── team
              └── fetch  succeeded  backup  3 attempts  500 ms  reassigned from primary (2 failed)

        failures (2, recovered)
          1. t/boss/team/primary  (leaf, step fetch, attempt 1, at 100 ms)
             ConnectionError: refused
          2. t/boss/team/primary  (leaf, step fetch, attempt 2, at 200 ms)
             ConnectionError: refused

        output
          {
            "sent": true
          }""")


def test_render_outcome_verbose_adds_tracebacks() -> None:
    """With ``verbose`` each failure is followed by its traceback."""
    text = render_outcome(outcome_with_a_reassignment(), verbose=True)
    assert (
        "     ConnectionError: refused\n"
        "     | Traceback (most recent call last):\n"
        "     | ConnectionError: refused\n"
        "  2. "
    ) in text


def test_render_outcome_truncates_a_long_output() -> None:
    """The output shows 40 lines of JSON, each cut at 160 characters, and how many are left."""
    outcome = ov.Outcome(
        goal_id="g",
        goal="g",
        tree="t",
        status=ov.Status.SUCCEEDED,
        output=["x" * 200, *range(100)],
    )
    lines = render_outcome(outcome).splitlines()
    shown = lines[lines.index("output") + 1 :]
    assert len(shown) == 41
    assert shown[1] == "  " + '  "' + "x" * 156 + "…"
    assert shown[-1] == "  … 63 more lines (--json prints everything)"


# -- the installed command --------------------------------------------------------------


def console_script() -> Path:
    """The ``overstory`` script installed next to this interpreter."""
    script = Path(sys.executable).with_name("overstory")
    assert script.exists(), f"the console script is not installed at {script}"
    return script


def test_the_console_script_is_installed() -> None:
    """``pip install`` puts an ``overstory`` command on the PATH that runs ``main``."""
    result = subprocess.run(
        [console_script(), "check", "examples/agency.py:tree"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.endswith("\nok\n")


def test_python_dash_m_overstory_runs_the_command_line() -> None:
    """``python -m overstory`` is the same command line."""
    result = subprocess.run(
        [sys.executable, "-m", "overstory", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"overstory {ov.__version__}\n")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("waiting", ["agent", "review"])
def test_sigint_stops_a_real_run_with_exit_130(tmp_path: Path, waiting: str) -> None:
    """Ctrl-C while an agent works or a review waits on stdin: agents stop, one line, 130."""
    (tmp_path / "waits.py").write_text(
        textwrap.dedent("""\
            import sys
            import trio
            import overstory as ov

            class Worker(ov.Agent):
                \"\"\"Works until stopped.\"\"\"

                async def handle(self, task, ctx):
                    print("working", file=sys.stderr, flush=True)
                    await trio.sleep_forever()

                async def stop(self):
                    print("stopped", file=sys.stderr, flush=True)

            @ov.leaf
            async def draft(task, ctx):
                return "draft"

            agent = ov.Tree("agent", ov.Tactical("team", children=[Worker]))
            review = ov.Tree(
                "review",
                ov.Strategic(
                    "boss",
                    plan=[ov.Step("draft", "Write", to="draft", review=True)],
                    children=[draft, ov.Tactical("team", children=[Worker])],
                ),
            )
            """)
    )
    ready = "working" if waiting == "agent" else "[a]pprove / [r]eject / [e]dit? "
    with subprocess.Popen(
        [console_script(), "run", f"waits.py:{waiting}", "go"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,  # kept open: a review waits for an answer
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        assert process.stdout is not None
        seen = ""
        while ready not in seen:
            character = process.stderr.read(1)
            assert character, f"the run ended before it was ready: {seen!r}"
            seen += character
        os.kill(process.pid, signal.SIGINT)
        status = process.wait(timeout=30)
        rest = process.stderr.read()
        assert process.stdout.read() == ""
    assert status == 130
    assert rest.endswith("stopped\ninterrupted\n")
    assert "Traceback" not in seen + rest
