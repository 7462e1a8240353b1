"""The failure-mode library: named ways systems fail, the signals that warned early, and the
remediation recipes that worked, tagged by a taxonomy of triggers and root-cause categories.

The taxonomy is data: the defaults below, or a TOML file (AFTERACTION_TAXONOMY_FILE)

    triggers = ["binary push", "config push", "user behaviour"]
    root_causes = ["software", "network"]

An entry is checked against the taxonomy in force with `problems` (pure), which lists every
trigger and root cause the taxonomy does not know, with the values it allows.
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domain.limits import NAMES_ITEMS, Link, Name, Text, Title
from domain.policy import ActionKind

RECIPE_ITEMS = 20  # recipes of one failure mode
STEP_ITEMS = 50  # steps of one recipe
SIGNAL_ITEMS = 50  # early signals of one failure mode
SUGGESTED_ITEMS = 20  # suggested action items of one recipe
TAXONOMY_ITEMS = 100  # triggers, or root-cause categories, of a taxonomy
SLUG_CHARS = 100

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_WORDS = re.compile(r"[a-z0-9]+")
SLUG_FORM = "lowercase letters and digits, words joined by hyphens, e.g. connection-pool-exhaustion"

RESERVED_SLUGS = frozenset({"taxonomy"})  # a route of its own under /api/library

SLUG_PATTERN = _SLUG.pattern
Slug = Annotated[str, Field(max_length=SLUG_CHARS, pattern=SLUG_PATTERN)]


class TaxonomyError(Exception):
    """The taxonomy file is unusable; the message says where and why, one problem a line."""


def slug_of(name: str) -> str:
    """The slug a name gives: its lowercase words (letters and digits) joined by hyphens."""
    return "-".join(_WORDS.findall(name.lower()))[:SLUG_CHARS].strip("-")


def _distinct(values: list[str]) -> list[str]:
    stripped = [value.strip() for value in values]
    if any(not value for value in stripped):
        raise ValueError("an entry must not be empty")
    return list(dict.fromkeys(stripped))


class Taxonomy(BaseModel):
    """What a failure mode may be tagged with."""

    model_config = ConfigDict(extra="forbid")

    triggers: list[Name] = Field(min_length=1, max_length=TAXONOMY_ITEMS)
    root_causes: list[Name] = Field(min_length=1, max_length=TAXONOMY_ITEMS)
    source: str = Field(default="defaults", description="the file it was read from")

    @model_validator(mode="after")
    def _clean(self) -> Taxonomy:
        self.triggers = _distinct(self.triggers)
        self.root_causes = _distinct(self.root_causes)
        return self


DEFAULT_TAXONOMY = Taxonomy(
    triggers=[
        "binary push",
        "config push",
        "user behaviour",
        "pipeline",
        "provider change",
        "performance decay",
        "capacity",
        "hardware",
    ],
    root_causes=[
        "software",
        "development process",
        "complex system behaviour",
        "deployment planning",
        "network",
    ],
)


class SuggestedItem(BaseModel):
    """An action item a recipe suggests: what a review would add, less team and due date."""

    model_config = ConfigDict(extra="forbid")

    title: Title = Field(min_length=1)
    kind: ActionKind
    success_criteria: Text = Field(min_length=1, description="measurable: how to tell it works")
    slo_link: Link | None = None


class Recipe(BaseModel):
    """A remediation that worked: its steps and the action items it suggests."""

    model_config = ConfigDict(extra="forbid")

    name: Title = Field(min_length=1)
    steps: list[Text] = Field(default_factory=list, max_length=STEP_ITEMS)
    action_items: list[SuggestedItem] = Field(default_factory=list, max_length=SUGGESTED_ITEMS)


class FailureMode(BaseModel):
    """A named failure mode of the library."""

    model_config = ConfigDict(extra="forbid")

    slug: Slug = Field(default="", description=f"its id: {SLUG_FORM}; derived from the name")
    name: Title = Field(min_length=1)
    description: Text = ""
    triggers: list[Name] = Field(default_factory=list, max_length=NAMES_ITEMS)
    root_causes: list[Name] = Field(default_factory=list, max_length=NAMES_ITEMS)
    signals: list[Text] = Field(
        default_factory=list, max_length=SIGNAL_ITEMS, description="what warned early"
    )
    recipes: list[Recipe] = Field(default_factory=list, max_length=RECIPE_ITEMS)

    @model_validator(mode="after")
    def _slug(self) -> FailureMode:
        if not self.slug:
            self.slug = slug_of(self.name)
            if not self.slug:
                raise ValueError(
                    f"the name {self.name!r} has no letters or digits to make a slug of; "
                    f"give a slug ({SLUG_FORM})"
                )
        if self.slug in RESERVED_SLUGS:
            raise ValueError(
                f"the slug {self.slug!r} is reserved (GET /api/library/{self.slug} is the "
                "taxonomy); give another slug"
            )
        return self


class LibraryEntry(BaseModel):
    """A failure mode as the library keeps it: its version (1, then one more each edit) and
    who wrote it when (actor labels, from the credential)."""

    mode: FailureMode
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


def problems(mode: FailureMode, taxonomy: Taxonomy) -> list[str]:
    """Every trigger and root cause of `mode` the taxonomy does not know, as 'path: message'."""
    found: list[str] = []
    for field, allowed in (("triggers", taxonomy.triggers), ("root_causes", taxonomy.root_causes)):
        for index, value in enumerate(getattr(mode, field)):
            if value not in allowed:
                found.append(
                    f"{field}.{index}: {value!r} is not in the taxonomy ({taxonomy.source}); "
                    f"expected one of {', '.join(allowed)}"
                )
    return found


def load_taxonomy(path: Path | None) -> Taxonomy:
    """The taxonomy in the file, or the defaults without one (TaxonomyError: unusable)."""
    if path is None:
        return DEFAULT_TAXONOMY
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonomyError(f"{path}: no such taxonomy file") from None
    except OSError as error:
        raise TaxonomyError(f"{path}: cannot read the taxonomy file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise TaxonomyError(f"{path}: not a UTF-8 text file ({error.reason})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TaxonomyError(f"{path}: not valid TOML: {error}") from None
    if "source" in data:
        raise TaxonomyError(f"{path}: source: unknown field; expected triggers, root_causes")
    try:
        return Taxonomy.model_validate({**data, "source": str(path)})
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
            reason = str(problem["msg"]).removeprefix("Value error, ")
            if problem["type"] == "extra_forbidden":
                reason = "unknown field; expected triggers, root_causes"
            elif problem["type"] == "missing":
                reason = 'missing; give a list of names, e.g. ["software", "network"]'
            lines.append(f"{path}: {where}: {reason}")
        raise TaxonomyError("\n".join(lines)) from None
