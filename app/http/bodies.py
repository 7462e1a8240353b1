"""Request bodies derived from the domain's commands, less the fields the server fills in from
the credential (who is acting), so they neither appear in the OpenAPI document nor can be
typed by a caller."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

_BODIES: dict[tuple[type[BaseModel], tuple[str, ...]], type[BaseModel]] = {}


def without(model: type[BaseModel], *fields: str) -> type[BaseModel]:
    """`model`'s fields and validators less `fields`; a body that sends one of them is refused
    (422) instead of having it silently ignored."""
    key = (model, fields)
    if key not in _BODIES:
        kept: dict[str, Any] = {
            name: (info.annotation, info)
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
