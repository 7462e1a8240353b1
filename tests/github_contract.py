"""Check GitHub emulator responses against GitHub's official OpenAPI description (issues subset).

The description is tests/contracts/github/openapi-issues-subset.json (OpenAPI 3.0.3, copied from
../shared/contracts/github/). OpenAPI 3.0 schemas are a JSON Schema draft 4/5 dialect plus
`nullable: true`; we rewrite `nullable` into a type union (or an `anyOf` with `null` where there is
no `type`) and validate with jsonschema's Draft 4 validator, resolving every `$ref` inside the file.

`RECORDER` is process-wide: every response any emulator checks during the test session is
recorded there, so a session-end hook can assert that the whole suite stayed on the contract.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT4

OPENAPI_PATH = Path(__file__).parent / "contracts" / "github" / "openapi-issues-subset.json"
_BASE_URI = "urn:github-openapi-issues-subset"
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def convert_nullable(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` → a JSON Schema that also accepts null (returns a copy)."""
    if isinstance(node, list):
        return [convert_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: convert_nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        elif kind is None:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass
class ContractResult:
    method: str
    template: str
    status: int
    documented: bool
    errors: list[str]


@dataclass
class ContractRecorder:
    """Every response checked in this process (thread-safe)."""

    results: list[ContractResult] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, result: ContractResult) -> None:
        with self._lock:
            self.results.append(result)

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return [
                f"{r.method} {r.template} {r.status}: {e}" for r in self.results for e in r.errors
            ]

    @property
    def checked(self) -> int:
        with self._lock:
            return len(self.results)


RECORDER = ContractRecorder()


class ContractChecker:
    """Validates (method, path template, status, JSON body) against the OpenAPI description.

    A subclass for another API sets `error_schema` (the body of an error status the description
    does not list) and `error_body_without_content` (whether an error status documented without
    content may still carry that error body, as Jira's narrative says its errors do)."""

    error_schema = "/components/schemas/basic-error"
    error_body_without_content = False

    def __init__(
        self, document: dict[str, Any], *, recorder: ContractRecorder | None = RECORDER
    ) -> None:
        self.document = document
        self.recorder = recorder
        self._converted = convert_nullable(document)
        resource = DRAFT4.create_resource(self._converted)
        self._registry: Registry[Any] = Registry().with_resource(_BASE_URI, resource)
        self._validators: dict[str, Draft4Validator] = {}
        self._operations = {
            (method.upper(), template)
            for template, item in document["paths"].items()
            for method in item
            if method in _HTTP_METHODS
        }
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, path: Path = OPENAPI_PATH, *, recorder: ContractRecorder | None = RECORDER
    ) -> ContractChecker:
        return cls(json.loads(path.read_text(encoding="utf-8")), recorder=recorder)

    def operations(self) -> set[tuple[str, str]]:
        """(METHOD, path template) of every operation in the description."""
        return set(self._operations)

    def _deref(self, node: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
        while "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), ref
            pointer = ref[1:]
            node = self.document
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, pointer

    def _response(self, method: str, template: str, status: int) -> tuple[dict[str, Any], str]:
        """The response object for this status (or KeyError) and its JSON pointer."""
        responses = self.document["paths"][template][method.lower()]["responses"]
        key = str(status)
        if key not in responses:
            raise KeyError(key)
        pointer = f"/paths/{_escape(template)}/{method.lower()}/responses/{key}"
        return self._deref(responses[key], pointer)

    def _validator(self, pointer: str) -> Draft4Validator:
        with self._lock:
            validator = self._validators.get(pointer)
            if validator is None:
                validator = Draft4Validator(
                    {"$ref": f"{_BASE_URI}#{pointer}"}, registry=self._registry
                )
                self._validators[pointer] = validator
            return validator

    def check(self, method: str, template: str, status: int, body: Any) -> ContractResult:
        """Errors for one response. A status the description does not list for this operation
        (GitHub sends 401, 429 and most 5xx on any endpoint) is checked as `basic-error`."""
        errors: list[str] = []
        documented = True
        if (method.upper(), template) not in self._operations:
            errors.append(f"operation {method.upper()} {template} is not in the OpenAPI file")
            result = ContractResult(method.upper(), template, status, False, errors)
            if self.recorder is not None:
                self.recorder.record(result)
            return result
        try:
            response, pointer = self._response(method, template, status)
        except KeyError:
            documented = False
            response, pointer = {}, ""
        content = response.get("content")
        if not documented:
            if status >= 400:
                schema_pointer: str | None = self.error_schema
            else:
                errors.append(f"status {status} is not documented for this operation")
                schema_pointer = None
        elif not content:
            schema_pointer = None
            if status >= 400 and self.error_body_without_content:
                schema_pointer = self.error_schema if body not in (None, b"", "") else None
            elif body not in (None, b"", ""):
                errors.append(f"status {status} is documented without a body, but one was sent")
        elif "application/json" not in content:
            errors.append(f"status {status} has no application/json content documented")
            schema_pointer = None
        elif "schema" not in (content["application/json"] or {}):
            schema_pointer = None  # JSON of an undescribed shape
        else:
            schema_pointer = f"{pointer}/content/application~1json/schema"
        if schema_pointer is not None:
            validator = self._validator(schema_pointer)
            for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
                where = "/".join(str(p) for p in error.absolute_path) or "<root>"
                errors.append(f"{where}: {error.message[:300]}")
        result = ContractResult(method.upper(), template, status, documented, errors)
        if self.recorder is not None:
            self.recorder.record(result)
        return result

    def check_request(self, method: str, template: str, body: Any) -> list[str]:
        """Problems with a request body (what the client sent) for this operation."""
        if (method.upper(), template) not in self._operations:
            return [f"operation {method.upper()} {template} is not in the OpenAPI file"]
        operation = self.document["paths"][template][method.lower()]
        if "requestBody" not in operation:
            return [] if body is None else ["this operation takes no request body"]
        pointer = f"/paths/{_escape(template)}/{method.lower()}/requestBody"
        request_body, pointer = self._deref(operation["requestBody"], pointer)
        if body is None:
            return ["a request body is required"] if request_body.get("required") else []
        validator = self._validator(f"{pointer}/content/application~1json/schema")
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message[:300]}"
            for error in validator.iter_errors(body)
        ]

    def check_webhook(self, event: str, action: str | None, payload: Any) -> list[str]:
        """Problems with a webhook payload, against `webhook-<event>-<action>` (e.g.
        webhook-issues-closed, webhook-issue-comment-created, webhook-ping)."""
        name = "-".join(["webhook", event.replace("_", "-"), *([action] if action else [])])
        if name not in self._converted["components"]["schemas"]:
            return [f"no schema {name} in the OpenAPI file"]
        validator = self._validator(f"/components/schemas/{_escape(name)}")
        return [
            f"{name} {'/'.join(str(p) for p in error.absolute_path) or '<root>'}: "
            f"{error.message[:300]}"
            for error in validator.iter_errors(payload)
        ]

    def schema(self, name: str) -> dict[str, Any]:
        """A component schema with `nullable` converted (for tests that inspect it)."""
        return copy.deepcopy(self._converted["components"]["schemas"][name])


@cache
def checker() -> ContractChecker:
    """One shared checker (the description is parsed once per process)."""
    return ContractChecker.load()
