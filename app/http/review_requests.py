"""A review as it arrives over HTTP: JSON or the YAML review file, checked all at once."""

from __future__ import annotations

import json

from pydantic import ValidationError

from app.formats.problems import problem_message
from app.formats.review_files import (
    ZONE_EXAMPLE,
    ReviewFileError,
    parse_review,
    review_text,
)
from app.formats.yaml_files import TOP_LEVEL
from domain.incident import Incident
from domain.policy import Policy
from domain.review import Review, check_review
from domain.review_tags import KnownTags, tag_problems
from domain.routing import Routing, RoutingError

_REVIEW_SOURCE = "request body"


class InvalidReview(Exception):
    """A review that cannot be accepted; `problems` lists every problem as 'path: message'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the review cannot be accepted: " + "; ".join(problems))
        self.problems = problems


YAML_TYPES = frozenset({"application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"})


def media_type(header: str | None) -> str | None:
    media = (header or "").split(";", 1)[0].strip().lower()
    return media or None


def is_json(media: str | None) -> bool:
    return media is None or media == "application/json" or media.endswith("+json")


def wants_markdown(accept: str | None) -> bool:
    """True when the Accept header prefers text/markdown to JSON (a tie goes to JSON)."""
    weights: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *parameters = (piece.strip().lower() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        weights[media] = max(quality, weights.get(media, 0.0))
    markdown = weights.get("text/markdown", weights.get("text/*", 0.0))
    as_json = weights.get("application/json", weights.get("application/*", weights.get("*/*", 0.0)))
    return markdown > 0 and markdown > as_json


def _review_from_yaml(body: bytes, incident: Incident, library: KnownTags) -> Review:
    try:
        return parse_review(
            review_text(body, _REVIEW_SOURCE),
            source=_REVIEW_SOURCE,
            policy=incident.policy,
            severity=incident.severity,
            library=library,
        )
    except ReviewFileError as error:
        prefix = f"{_REVIEW_SOURCE}: "
        raise InvalidReview([problem.removeprefix(prefix) for problem in error.problems]) from None


def _review_from_json(
    body: bytes, incident: Incident, library: KnownTags
) -> tuple[Review | None, list[str]]:
    """The review in a JSON body (None when no part of it is usable) and all its problems:
    its shape, then, for the fields that are well formed, what the policy requires."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise InvalidReview([f"{TOP_LEVEL}: not valid JSON: {error.msg} ({where})"]) from None
    except UnicodeDecodeError:
        raise InvalidReview([f"{TOP_LEVEL}: the JSON is not UTF-8 text"]) from None
    except RecursionError:
        raise InvalidReview(
            [f"{TOP_LEVEL}: nested too deeply to read; a review needs a few levels"]
        ) from None
    if not isinstance(data, dict):
        got = "null" if data is None else f"a {type(data).__name__}"
        raise InvalidReview([f"{TOP_LEVEL}: expected an object of review fields, got {got}"])
    problems: list[str] = []
    dropped: set[str] = set()
    try:
        review = Review.model_validate(data, extra="forbid")
    except ValidationError as error:
        for detail in error.errors():
            path = ".".join(str(part) for part in detail["loc"]) or TOP_LEVEL
            problems.append(f"{path}: {problem_message(detail)}")
            if detail["loc"]:
                dropped.add(str(detail["loc"][0]))
        # The fields that are well formed are checked against the policy too, so one answer
        # lists everything; a field already reported is left out of that check.
        try:
            review = Review.model_validate(
                {name: value for name, value in data.items() if name not in dropped},
                extra="forbid",
            )
        except ValidationError:
            return None, problems
    severity_policy = incident.policy.for_severity(incident.severity)
    found = check_review(review, incident.policy, severity_policy)
    found += tag_problems(review, library.taxonomy, library.slugs)
    for problem in found:
        if problem.path.split(".", 1)[0] not in dropped:
            problems.append(str(problem))
    for index, entry in enumerate(review.timeline):
        if entry.at.tzinfo is None:
            problems.append(f"timeline.{index}.at: give a time zone, e.g. {ZONE_EXAMPLE}")
    return review, problems


def _route_problems(review: Review, routing: Routing, policy: Policy) -> list[str]:
    """An item whose team the routing file does not name, as the review's problem."""
    problems = []
    for index, item in enumerate(review.action_items):
        try:
            routing.route(item.owning_team, policy)
        except RoutingError as error:
            problems.append(f"action_items.{index}.owning_team: {error}")
    return problems


def submitted_review(
    body: bytes,
    media: str | None,
    incident: Incident,
    routing: Routing,
    policy: Policy,
    library: KnownTags,
) -> Review:
    """The review in the body, or InvalidReview with every problem (unknown teams, failure
    modes, triggers and root causes too)."""
    if media in YAML_TYPES:
        review: Review | None = _review_from_yaml(body, incident, library)
        problems: list[str] = []
    else:
        review, problems = _review_from_json(body, incident, library)
    if review is not None:
        problems += _route_problems(review, routing, policy)
    if problems or review is None:
        raise InvalidReview(problems)
    return review
