"""Every exception overstory raises, and the one users raise to stop retries.

The hierarchy::

    OverstoryError
    ├── DefinitionError          a tree definition is invalid (raised when it is built)
    ├── ConfigurationError       a valid tree cannot run as configured (no reviewer, ...)
    ├── StartError               an agent's start() raised while the tree started
    ├── RunnerClosed             a goal was submitted to a runner that stopped intake
    ├── Fatal                    raised by user code: fail the step, no retry, no reassignment
    └── Failure                  why an attempt or a step failed inside the tree
        ├── AttemptTimeout       an attempt ran past its timeout
        ├── AgentUnavailable     no live instance, or the instance queue is full
        ├── PlanError            a plan computed for a goal is not a valid DAG
        ├── HandoffLoop          a chain of hand-offs went past its bound
        ├── ReviewRejected       a reviewer rejected a step more often than allowed
        ├── BudgetExhausted      the goal's budget ran out (the goal is cancelled)
        └── Escalation           a supervisor gave up on a step and handed it to its parent
            ├── CandidatesExhausted   every candidate child failed the step
            ├── NoCandidate           no healthy child fits the step
            └── SupervisorTripped     the supervisor exceeded its restart intensity

``trio.Cancelled`` is never wrapped in any of these: cancellation is not failure.
"""

from __future__ import annotations

__all__ = [
    "AgentUnavailable",
    "AttemptTimeout",
    "BudgetExhausted",
    "CandidatesExhausted",
    "ConfigurationError",
    "DefinitionError",
    "Escalation",
    "Failure",
    "Fatal",
    "HandoffLoop",
    "NoCandidate",
    "OverstoryError",
    "PlanError",
    "ReviewRejected",
    "RunnerClosed",
    "StartError",
    "SupervisorTripped",
]


class OverstoryError(Exception):
    """Base class of every error overstory raises."""


class DefinitionError(OverstoryError, ValueError):
    """A tree definition is invalid. ``path`` names the offending node (``agency/director``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


class ConfigurationError(OverstoryError):
    """A valid tree cannot run as configured, for example review points without a reviewer."""


class StartError(OverstoryError):
    """An agent's ``start()`` raised while the tree was starting; ``path`` names the agent.

    The original exception is chained as ``__cause__``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class RunnerClosed(OverstoryError):
    """``submit()`` was called after the runner stopped accepting goals."""


class Fatal(OverstoryError):
    """Raise from an agent to fail its step at once: no retry, no reassignment, no re-plan.

    The failure escalates through every supervisor unchanged and the goal ends FAILED.
    Use it for errors no other agent could fix (invalid input, a refused authorisation).
    """


class Failure(OverstoryError):
    """Why an attempt or a step failed inside the tree. ``path`` names where it happened."""

    #: A fatal failure is never retried or reassigned.
    fatal: bool = False

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class AttemptTimeout(Failure):
    """An attempt ran past its agent's timeout and was cancelled. Retried like any failure."""


class AgentUnavailable(Failure):
    """A stateful agent had no live instance, or its queue of waiting tasks was full."""


class PlanError(Failure):
    """A plan computed for a goal is not a valid DAG (unknown team, cycle, duplicate...)."""

    fatal = True


class HandoffLoop(Failure):
    """A chain of hand-offs went past the supervisor's ``max_handoffs`` bound."""

    fatal = True


class ReviewRejected(Failure):
    """A reviewer rejected a step's output more often than ``max_review_rounds`` allows."""

    fatal = True


class BudgetExhausted(Failure):
    """A charge took the goal past its budget; the goal is cancelled and ends
    BUDGET_EXHAUSTED. Never retried."""

    fatal = True


class Escalation(Failure):
    """A supervisor gave up on a step; its parent may reassign it to another child.

    ``step`` is the name of the step that failed; the failure that decided it is
    chained as ``__cause__``.
    """

    def __init__(self, path: str, step: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(path, message)
        self.step = step
        self.fatal = fatal


class CandidatesExhausted(Escalation):
    """Every candidate child failed the step (after its retries)."""


class NoCandidate(Escalation):
    """No healthy child fits the step: none matches, or every match is unhealthy."""


class SupervisorTripped(Escalation):
    """The supervisor saw more child failures than its intensity allows and stopped retrying."""


def error_text(error: BaseException) -> str:
    """``str(error)``, or what says it failed: an error whose ``__str__`` raises must
    still be recorded, retried and escalated like any other."""
    try:
        return str(error)
    except Exception as exc:
        return f"<str() of this {type(error).__name__} raised {type(exc).__name__}>"
