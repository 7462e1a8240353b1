"""A review's failure modes and contributing factors, checked against the taxonomy in force and
the library: pure, so the CLI, the API and the tests share one check without I/O.

A review may name no contributing factor: some incidents are understood only later, and a
refusal would push facilitators to invent one. `tag_warnings` says so instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from domain.failure_modes import Taxonomy
from domain.review import Review, ReviewProblem


@dataclass(frozen=True)
class KnownTags:
    """What a review may name: the taxonomy in force, and the library's slugs."""

    taxonomy: Taxonomy
    slugs: frozenset[str]


LIST_HINT = "`afteraction library list` shows the entries, `afteraction library add FILE` adds one"


def unknown_slugs(field: str, slugs: Iterable[str], known: Collection[str]) -> list[ReviewProblem]:
    """A problem for each slug (at `field.N`) the library does not hold."""
    return [
        ReviewProblem(
            path=f"{field}.{index}",
            message=f"{slug!r} is not a failure mode of the library; {LIST_HINT}",
        )
        for index, slug in enumerate(slugs)
        if slug not in known
    ]


def _not_in(value: str, allowed: list[str], what: str, taxonomy: Taxonomy) -> str:
    return (
        f"{value!r} is not a {what} of the taxonomy ({taxonomy.source}); expected one of "
        f"{', '.join(allowed)} (`afteraction library taxonomy` shows them)"
    )


def tag_problems(
    review: Review, taxonomy: Taxonomy, known_slugs: Collection[str]
) -> list[ReviewProblem]:
    """Every failure mode the library does not hold, and every trigger and root cause of a
    contributing factor the taxonomy does not know, each with its dotted path."""
    found = unknown_slugs("failure_modes", review.failure_modes, known_slugs)
    for index, factor in enumerate(review.contributing_factors):
        path = f"contributing_factors.{index}"
        if factor.trigger is not None and factor.trigger not in taxonomy.triggers:
            message = _not_in(factor.trigger, taxonomy.triggers, "trigger", taxonomy)
            found.append(ReviewProblem(path=f"{path}.trigger", message=message))
        if factor.root_cause is not None and factor.root_cause not in taxonomy.root_causes:
            message = _not_in(factor.root_cause, taxonomy.root_causes, "root cause", taxonomy)
            found.append(ReviewProblem(path=f"{path}.root_cause", message=message))
    return found


def tag_warnings(review: Review) -> list[str]:
    """What the review may leave out but a reader will miss."""
    if review.contributing_factors:
        return []
    return [
        "the review names no contributing factor: later readers and the repeat-incident "
        "search learn only what the review names; add them under contributing_factors"
    ]
