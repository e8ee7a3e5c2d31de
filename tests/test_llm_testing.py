"""overstory.testing: the scripted model, in process and behind its loopback HTTP server."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing
from llm_support import http_model, script  # noqa: F401 - fixtures

import overstory as ov
from overstory.testing import Fail, Hang, ScriptedModel, UnscriptedRequest, serve_openai


def request(prompt: str, agent: str = "", purpose: str = "answer") -> ov.ChatRequest:
    return ov.ChatRequest(messages=[ov.Message.user(prompt)], agent=agent, purpose=purpose)


async def text(model: ScriptedModel, prompt: str, agent: str = "", purpose: str = "answer") -> str:
    response = await model.complete(request(prompt, agent, purpose))
    return response.message.content or ""


async def test_first_matching_rule_answers(script: ScriptedModel) -> None:
    """Rules are tried in the order added; agent globs match the path or its last segment,
    purpose matches exactly, prompt is a regular expression searched in user messages."""
    script.on(agent="billing", prompt=r"refund\b", reply="refund rule")
    script.on(agent="desk/*", purpose="route", reply="route rule")
    script.on(agent="billing", reply="billing rule")
    script.on(reply="anything")
    assert await text(script, "please refund me", "desk/billing") == "refund rule"
    assert await text(script, "refunds?", "desk/billing") == "billing rule"
    assert await text(script, "x", "desk/billing", "route") == "route rule"
    assert await text(script, "x", "other/tech") == "anything"
    assert [c.agent for c in script.calls] == ["desk/billing"] * 3 + ["other/tech"]


async def test_times_scripts_a_sequence(script: ScriptedModel) -> None:
    """A rule with times=N answers N times, then the next matching rule takes over."""
    script.on(reply="first", times=1).on(reply="second", times=2).on(reply="rest")
    answers = [await text(script, "q") for _ in range(5)]
    assert answers == ["first", "second", "second", "rest", "rest"]


async def test_replies_of_every_kind(script: ScriptedModel) -> None:
    """Dicts and lists are sent as JSON; a function of the request computes the reply;
    usage is what the rule says, else estimated from the text."""
    script.on(prompt="dict", reply={"a": 1}, usage=(7, 3))
    script.on(prompt="list", reply=[1, 2])
    script.on(prompt="echo", reply=lambda r: r.prompt.upper())
    first = await script.complete(request("dict"))
    assert first.message.content == '{"a": 1}'
    assert (first.input_tokens, first.output_tokens) == (7, 3)
    assert await text(script, "list") == "[1, 2]"
    echoed = await script.complete(request("echo this"))
    assert echoed.message.content == "ECHO THIS"
    assert echoed.output_tokens == 3  # nine characters, four to a token


async def test_scripted_failures_raise_what_the_client_would(script: ScriptedModel) -> None:
    """In process, a scripted failure raises what OpenAIModel raises once its own retries are
    spent: ProviderError for 429/5xx, AuthenticationFailed for 401/403, InvalidRequest
    for other 4xx."""
    script.on(prompt="429", reply=Fail(429, retry_after=2))
    script.on(prompt="500", reply=Fail(500))
    script.on(prompt="401", reply=Fail(401))
    script.on(prompt="422", reply=Fail(422))
    with pytest.raises(ov.ProviderError) as caught:
        await text(script, "429")
    assert (caught.value.status, caught.value.retry_after) == (429, 2)
    with pytest.raises(ov.ProviderError):
        await text(script, "500")
    with pytest.raises(ov.AuthenticationFailed):
        await text(script, "401")
    with pytest.raises(ov.InvalidRequest):
        await text(script, "422")


async def test_delay_and_hang_follow_trio_time(
    script: ScriptedModel, autojump_clock: trio.testing.MockClock
) -> None:
    """delay= waits before answering and Hang never answers, both on trio's clock."""
    script.on(prompt="slow", reply="done", delay=30.0)
    script.on(prompt="never", reply=Hang())
    start = trio.current_time()
    assert await text(script, "slow") == "done"
    assert trio.current_time() - start == 30.0
    with trio.move_on_after(600) as scope:
        await text(script, "never")
    assert scope.cancelled_caught


def test_rule_arguments_are_checked(script: ScriptedModel) -> None:
    """times below 1 and negative delays are refused."""
    with pytest.raises(ValueError, match="times"):
        script.on(reply="x", times=0)
    with pytest.raises(ValueError, match="delay"):
        script.on(reply="x", delay=-1)


async def test_unscripted_requests_over_http_are_refused_loudly(
    script: ScriptedModel, http_model: ov.OpenAIModel
) -> None:
    """Over HTTP, a request no rule matches is answered 400 with the reason, so the client
    raises InvalidRequest (fatal) naming the agent."""
    with pytest.raises(ov.InvalidRequest, match=r"no rule matches.*desk/billing"):
        await ov.ask(http_model, "hello", agent="desk/billing")
    assert issubclass(UnscriptedRequest, ov.Fatal)


async def test_server_lists_its_model_and_refuses_unknown_routes(
    script: ScriptedModel, nursery: trio.Nursery
) -> None:
    """GET /v1/models names the scripted model; other routes are 404; bad bodies are 400."""
    base_url = await nursery.start(serve_openai, script)
    assert base_url.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(base_url=base_url) as client:
        models = await client.get("/models")
        assert models.json()["data"] == [{"id": "scripted-1", "object": "model"}]
        assert (await client.post("/embeddings", json={})).status_code == 404
        bad = await client.post("/chat/completions", content=b"{not json")
        assert bad.status_code == 400
        assert "invalid body" in bad.json()["error"]["message"]
    assert script.calls == []
