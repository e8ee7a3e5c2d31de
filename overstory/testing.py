"""Test your trees without an LLM: a scripted model, and a loopback server for it.

``ScriptedModel`` answers from a script, by agent and prompt pattern. Pass it wherever a
model goes (fast, in-process), or serve it over real HTTP with :func:`serve_openai` and
point an :class:`~overstory.OpenAIModel` at it to exercise the whole client::

    model = ScriptedModel()
    model.on(agent="billing", prompt="refund", reply={"answer": "Refunded."})
    model.on(purpose="route", reply={"ranking": ["billing"]})

    base_url = await nursery.start(serve_openai, model)
    http_model = ov.OpenAIModel("scripted", base_url=base_url)
"""

from overstory.llm._scripted import Fail as Fail
from overstory.llm._scripted import Hang as Hang
from overstory.llm._scripted import Reply as Reply
from overstory.llm._scripted import ScriptedModel as ScriptedModel
from overstory.llm._scripted import UnscriptedRequest as UnscriptedRequest
from overstory.llm._scripted import tool_call as tool_call
from overstory.llm._server import serve_openai as serve_openai

__all__ = [
    "Fail",
    "Hang",
    "Reply",
    "ScriptedModel",
    "UnscriptedRequest",
    "serve_openai",
    "tool_call",
]
