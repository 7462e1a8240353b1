"""`afteraction review`: schedule the review, write its template, submit it, show it."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group

from app.cli.common import (
    IncidentService,
    JsonOption,
    _emit,
    _model,
    _run,
    _settings,
    cli_actor,
    err,
    fail,
    parse_due,
    remote_api,
    run_remote,
    warn,
)
from app.cli.library import MODE_OPTION, using_library
from app.cli.remote import RemoteIncidents
from app.cli.render import status
from app.formats.review_files import ReviewFileError, parse_review, review_template, review_text
from app.formats.review_markdown import review_markdown
from domain.functions import ReviewFunction
from domain.incident import IncidentStatus
from domain.keys import normal_key
from domain.limits import REVIEW_FILE_BYTES
from domain.review import Participant, Review, ReviewSchedule, ScheduleReview
from domain.review_tags import tag_warnings

review = typer.Typer(
    name="review",
    help="The post-incident review: schedule, template, submit, show.",
    no_args_is_help=True,
)


def _participant(text: str) -> Participant:
    name, _, function = text.rpartition(":")
    try:
        role = ReviewFunction(function.strip().lower())
    except ValueError:
        allowed = ", ".join(f.value for f in ReviewFunction)
        fail(f"--participant {text!r}: expected NAME:FUNCTION, FUNCTION one of {allowed}", 2)
    return _model(Participant, name=name.strip(), function=role)


@review.command()
def schedule(
    key: str,
    at: Annotated[str, typer.Option("--at", help="When: ISO time, or how long from now (2d).")],
    facilitator: Annotated[
        str | None,
        typer.Option("--facilitator", help="Who runs it; left out, the rotation proposes one."),
    ] = None,
    participant: Annotated[
        list[str] | None,
        typer.Option("--participant", help="NAME:FUNCTION, e.g. ana:product (repeatable)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Schedule the review of a resolved incident."""
    command = _model(
        ScheduleReview,
        at=parse_due(at, "--at"),
        facilitator=facilitator,
        participants=[_participant(text) for text in participant or []],
        actor=cli_actor(),
    )

    async def scheduled(incidents: IncidentService) -> tuple[IncidentStatus, ReviewSchedule | None]:
        result = await incidents.command(key, "schedule_review", command)
        return result, (await incidents.get(key)).review_schedule

    result, plan = _run(scheduled)
    _emit(result, as_json, Group(status(result), *_planned(plan)))


def _planned(plan: ReviewSchedule | None) -> list[str]:
    """When the review is, and who facilitates it (and whether the rotation chose them)."""
    if plan is None:
        return []
    lines = [f"review on {plan.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"]
    if plan.facilitator is None:
        lines.append(
            "no facilitator yet: name one with --facilitator, or give the policy a "
            "`facilitators` pool for the rotation to choose from"
        )
    elif plan.facilitator_proposed:
        lines.append(
            f"facilitated by {plan.facilitator}, chosen by the rotation: of the policy's "
            "facilitators, the one who facilitated least recently"
        )
    else:
        lines.append(f"facilitated by {plan.facilitator}")
    if plan.participants:
        people = ", ".join(f"{p.name} ({p.function.value})" for p in plan.participants)
        lines.append(f"participants: {people}")
    return lines


@review.command()
def template(
    key: str,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write (default review-KEY.yaml).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    failure_mode: Annotated[
        list[str] | None,
        typer.Option(
            "--failure-mode",
            help="A failure mode of the library the review names, by slug (repeatable): its "
            "recipes prefill the action items, as the incident's own failure modes do.",
        ),
    ] = None,
) -> None:
    """Write a review file to fill in, prefilled from the incident and its failure modes."""
    key = normal_key(key)
    target = (out or Path(f"review-{key}.yaml")).absolute()
    if target.exists() and not force:
        fail(f"{target} exists; fill it in and submit it, or pass --force to start over", 2)
    slugs = failure_mode or []
    api = remote_api(_settings())
    if api is not None:
        text = run_remote(api, lambda: RemoteIncidents(api).review_template(key, slugs))
    else:
        incident = _run(lambda incidents: incidents.get(key))
        text = using_library(
            lambda library: review_template(
                incident,
                taxonomy=library.taxonomy,
                modes=library.named(slugs, declared=incident.failure_modes, field=MODE_OPTION),
            )
        )
    target.write_text(text, encoding="utf-8")
    err.print(f"wrote {target}; fill it in, then: afteraction review submit {key} {target}")


@review.command()
def submit(key: str, file: Path, as_json: JsonOption = False) -> None:
    """Validate a review file and submit it; its action items become tracked tickets."""
    try:
        with file.open("rb") as opened:
            # One byte past the limit is enough to know the file is over it.
            data = opened.read(REVIEW_FILE_BYTES + 1)
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror}", 2)
    try:
        text = review_text(data, str(file))
    except ReviewFileError as error:
        fail(f"{file} cannot be submitted:\n{error}", 2)

    api = remote_api(_settings())
    if api is not None:
        # The API reads the file under the deployment's policy and routing, listing every
        # problem with its line, as it does for any client.
        result = run_remote(api, lambda: RemoteIncidents(api).submit_review_file(key, text))
        _emit(result, as_json, f"review accepted: {status(result)}")
        # Accepted by the API, so it reads here too (without the policy and the library),
        # unless this CLI is older than the API; then the warnings are the API's to give.
        with contextlib.suppress(ReviewFileError):
            _warn_of(parse_review(text, source=str(file)))
        return
    known = using_library(lambda library: library.known())

    async def go(incidents: IncidentService) -> tuple[IncidentStatus, Review]:
        incident = await incidents.get(key)
        try:
            parsed = parse_review(
                text,
                source=str(file),
                policy=incident.policy,
                severity=incident.severity,
                library=known,
            )
        except ReviewFileError as error:
            fail(f"{file} cannot be submitted:\n{error}", 2)
        return await incidents.submit_review(key, parsed, actor=cli_actor()), parsed

    result, accepted = _run(go, uses_policy=True)
    _emit(result, as_json, f"review accepted: {status(result)}")
    _warn_of(accepted)


def _warn_of(review: Review) -> None:
    for warning in tag_warnings(review):
        warn(warning)


@review.command()
def show(key: str, as_json: JsonOption = False) -> None:
    """Render the submitted review as Markdown (executive summary first)."""
    api = remote_api(_settings())
    if api is not None and not as_json:
        markdown = run_remote(api, lambda: RemoteIncidents(api).review_markdown(key))
        sys.stdout.write(markdown.rstrip("\n") + "\n")
        return
    incident = _run(lambda incidents: incidents.get(key))
    if incident.review is None:
        fail(
            f"{incident.key} has no review yet; write one with "
            f"`afteraction review template {incident.key}`",
            2,
        )
    if as_json:
        _emit(incident.review, True, "")
        return
    names = using_library(lambda library: library.names())
    sys.stdout.write(review_markdown(incident, names) + "\n")
