"""Request bodies derived from the domain's commands, less the fields the server fills in from
the credential (who is acting), so they neither appear in the OpenAPI document nor can be
typed by a caller. Their times may be given as the CLI takes them: a duration, counted from
now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, create_model
from pydantic.fields import FieldInfo

from domain.action_item import ExtendDeadline
from domain.commands import AddTimelineEvent, NewIncident, Transition
from domain.moments import relative
from domain.review import ScheduleReview

_BODIES: dict[tuple[type[BaseModel], tuple[str, ...]], type[BaseModel]] = {}

# The times a body may give as a duration: how long ago something happened, or how long from
# now something is due or will be held ("45m", "2d").
_AGO: dict[type[BaseModel], tuple[str, ...]] = {
    NewIncident: ("started_at", "detected_at"),
    AddTimelineEvent: ("at",),
    Transition: ("at",),
}
_AHEAD: dict[type[BaseModel], tuple[str, ...]] = {
    ScheduleReview: ("at",),
    ExtendDeadline: ("due_at",),
}


def _counted(value: object, *, ahead: bool) -> object:
    if isinstance(value, str):
        return relative(value, now=datetime.now(UTC), ahead=ahead) or value
    return value


def counted_from_now(*, ahead: bool) -> BeforeValidator:
    """Reads a duration as that long from now (`ahead`) or ago; any other value is left to the
    field's own type."""
    return BeforeValidator(lambda value: _counted(value, ahead=ahead))


def _field(model: type[BaseModel], name: str, info: FieldInfo) -> tuple[Any, FieldInfo]:
    ahead = name in _AHEAD.get(model, ())
    if not ahead and name not in _AGO.get(model, ()):
        return info.annotation, info
    form = "how long from now, e.g. '2d'" if ahead else "how long ago, e.g. '45m'"
    described = FieldInfo.merge_field_infos(
        info, description=f"{info.description or 'a time'}: ISO 8601, or {form}"
    )
    return Annotated[info.annotation, counted_from_now(ahead=ahead)], described


def without(model: type[BaseModel], *fields: str) -> type[BaseModel]:
    """`model`'s fields less `fields`; a body that sends one of them is refused (422) instead of
    having it silently ignored. The command's own validators run in `command`."""
    key = (model, fields)
    if key not in _BODIES:
        kept: dict[str, Any] = {
            name: _field(model, name, info)
            for name, info in model.model_fields.items()
            if name not in fields
        }
        body = create_model(
            f"{model.__name__}Body",
            __config__=ConfigDict(extra="forbid"),
            __doc__=model.__doc__,
            **kept,
        )
        _BODIES[key] = body
    return _BODIES[key]


def command(model: type[BaseModel], body: BaseModel, **server_fields: Any) -> Any:
    """The domain command from a caller's body and what the server fills in; the command's own
    validators run on the whole."""
    return model.model_validate({**body.model_dump(exclude_unset=True), **server_fields})
