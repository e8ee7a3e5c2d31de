"""examples/support.py: the desk routes by description, offline and over HTTP."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio

import overstory as ov
from overstory.testing import serve_openai

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "support.py"

QUESTIONS = [
    ("I was charged twice for invoice INV-1001", "support/desk/billing", "refunded 49.0"),
    ("The app shows an error when I log in", "support/desk/technical", "Known issue"),
    ("Please change the e-mail address on my profile", "support/desk/account", "pro account"),
]


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """The example module, loaded with no model endpoint configured."""
    saved = {k: os.environ.pop(k) for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY") if k in os.environ}
    try:
        spec = importlib.util.spec_from_file_location("support_example", EXAMPLE)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.update(saved)
    return module


@pytest.mark.parametrize(("question", "agent", "says"), QUESTIONS)
async def test_desk_routes_each_question_offline(
    example: ModuleType, question: str, agent: str, says: str
) -> None:
    """Without an endpoint the example runs on its scripted model; each question reaches the
    specialist whose description fits, which uses its tool and answers."""
    outcome = await example.build(example.scripted()).run(question)
    assert outcome.ok, outcome.error
    assert [s.agent for s in outcome.steps] == [agent]
    assert says in outcome.output.reply


async def test_desk_runs_against_an_openai_compatible_endpoint(
    example: ModuleType, nursery: trio.Nursery
) -> None:
    """The same tree, given an OpenAIModel pointed at a loopback endpoint, routes and
    answers over HTTP."""
    base_url = await nursery.start(serve_openai, example.scripted())
    tree = example.build(ov.OpenAIModel("support-script", base_url=base_url, api_key="k"))
    for question, agent, says in QUESTIONS:
        outcome = await tree.run(question)
        assert outcome.ok, outcome.error
        assert [s.agent for s in outcome.steps] == [agent]
        assert says in outcome.output.reply


def test_example_script_runs_offline() -> None:
    """`python examples/support.py QUESTION` prints the specialist and its reply."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "My invoice INV-1001 was charged twice"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[support/desk/billing] Invoice INV-1001 was charged twice")
