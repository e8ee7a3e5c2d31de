"""Routing: rank a supervisor's children for a step.

A router is any async callable ``(request, candidates) -> ranked names``. The supervisor
passes only healthy children, puts an explicit ``to=`` first whatever the router says,
drops names that are not candidates, and reassigns down the ranking when a child fails.
The default :class:`LexicalRouter` is deterministic and offline.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import attrs

from overstory.hierarchy._layer import Layer

__all__ = ["Candidate", "LexicalRouter", "RouteRequest", "Router", "tokenize"]


@attrs.frozen(kw_only=True)
class Candidate:
    """A child as the router sees it. A team's skills include its members' skills."""

    name: str
    description: str
    skills: frozenset[str]
    layer: Layer


@attrs.frozen(kw_only=True)
class RouteRequest:
    """What is to be routed: a step's goal text, the skills it asks for, an explicit target."""

    goal: str
    skills: frozenset[str] = frozenset()
    to: str | None = None
    step: str | None = None
    path: str = ""


Router = Callable[[RouteRequest, Sequence[Candidate]], Awaitable[Sequence[str]]]

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "done",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "off",
        "on",
        "or",
        "our",
        "out",
        "over",
        "per",
        "that",
        "the",
        "their",
        "them",
        "then",
        "this",
        "to",
        "up",
        "via",
        "was",
        "we",
        "were",
        "will",
        "with",
        "you",
        "your",
    ]
)


def _stem(word: str) -> str:
    # A light, predictable stemmer: enough for "emails"/"email", "booking"/"book".
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            return stem + "y" if suffix == "ies" else stem
    return word


def tokenize(text: str) -> list[str]:
    """Lower-case word stems of ``text`` without stop words; ``CamelCase`` and ``snake_case``
    names split into words."""
    spaced = _CAMEL.sub(" ", text).replace("_", " ")
    words = _WORD.findall(spaced.lower())
    return [_stem(w) for w in words if len(w) > 1 and w not in _STOPWORDS]


@attrs.frozen(kw_only=True)
class LexicalRouter:
    """Rank by skills, then by BM25 relevance of the step's text to each child's name,
    description and skills; ties keep the children's declared order.

    When the step asks for skills, only children with at least one of them are ranked
    (most shared skills first); when none has any, or the step asks for none, children
    with a positive BM25 score are ranked; when none scores, every candidate is returned
    in declared order, so a one-member team always gets the work.
    """

    k1: float = 1.2
    b: float = 0.75

    async def __call__(
        self, request: RouteRequest, candidates: Sequence[Candidate]
    ) -> Sequence[str]:
        return self.rank(request, candidates)

    def rank(self, request: RouteRequest, candidates: Sequence[Candidate]) -> list[str]:
        """The synchronous ranking behind ``__call__``."""
        scores = self.scores(request, candidates)
        order = {c.name: i for i, c in enumerate(candidates)}
        if request.skills:
            overlap = {c.name: len(c.skills & request.skills) for c in candidates}
            skilled = [c.name for c in candidates if overlap[c.name] > 0]
            if skilled:
                return sorted(skilled, key=lambda n: (-overlap[n], -scores[n], order[n]))
        relevant = [c.name for c in candidates if scores[c.name] > 0]
        if relevant:
            return sorted(relevant, key=lambda n: (-scores[n], order[n]))
        return [c.name for c in candidates]

    def scores(self, request: RouteRequest, candidates: Sequence[Candidate]) -> dict[str, float]:
        """BM25 score of the request against each candidate's document."""
        documents = {
            c.name: tokenize(" ".join([c.name, c.description, *sorted(c.skills)]))
            for c in candidates
        }
        query = tokenize(" ".join([request.goal, *sorted(request.skills)]))
        if not documents or not query:
            return dict.fromkeys(documents, 0.0)
        average = sum(len(d) for d in documents.values()) / len(documents) or 1.0
        frequency = Counter(term for d in documents.values() for term in set(d))
        total = len(documents)
        scores: dict[str, float] = {}
        for name, words in documents.items():
            counts = Counter(words)
            score = 0.0
            for term in set(query):
                hits = counts.get(term, 0)
                if not hits:
                    continue
                # BM25+ style idf: always positive, even for a term in every document.
                idf = math.log(1 + (total - frequency[term] + 0.5) / (frequency[term] + 0.5))
                norm = hits + self.k1 * (1 - self.b + self.b * len(words) / average)
                score += idf * hits * (self.k1 + 1) / norm
            scores[name] = score
        return scores
