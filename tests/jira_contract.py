"""Check Jira emulator responses against Atlassian's official OpenAPI description (issues subset).

The description is tests/contracts/jira/openapi-issues-subset.json (OpenAPI 3.0.1, REST API v3,
copied from ../shared/contracts/jira/). The checking itself is tests.github_contract's
(`nullable` rewritten, Draft 4 validation, every `$ref` resolved inside the file); this module
adds what Jira needs on top:

* **REST API v2.** The `jira` library calls `/rest/api/2/...`. Atlassian publishes no v2
  description; its narrative (anchor `version` in the file) says v2 and v3 offer the same
  operations, except that v3 uses the Atlassian Document Format (ADF) where v2 uses plain strings
  (comment `body`, issue `description` and `environment`, textarea custom fields). So each v2 path
  listed in the file's `x-rest-api-2-paths` is checked against its v3 operation, in a copy of the
  schemas where every property documented as ADF also accepts a string. The copies live in
  `components/schemasRestApi2`, so a v3 response is still checked against the unrelaxed schemas.
* **Errors.** Jira documents most error statuses without content, but its narrative (anchor
  `status-codes`) says an error may carry an `ErrorCollection` body, so such bodies are checked
  against `ErrorCollection`; so are statuses the description does not list (401/429/5xx).
* **One correction.** `GET .../remotelink` is described as answering one `RemoteIssueLink`, which
  is what Jira sends when `globalId` is given; without it Jira sends the array of all links (the
  operation's own description says so, and the example in the file is an array). The response
  schema accepts either.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from tests.github_contract import RECORDER, ContractChecker, ContractRecorder

OPENAPI_PATH = Path(__file__).parent / "contracts" / "jira" / "openapi-issues-subset.json"
V2_SCHEMAS = "schemasRestApi2"
_SCHEMAS_REF = "#/components/schemas/"
_ADF = "Atlassian Document Format"
_REMOTE_LINKS = "/issue/{issueIdOrKey}/remotelink"


def _retarget(node: Any) -> Any:
    """A copy whose component `$ref`s point at the v2 copies of the schemas."""
    if isinstance(node, list):
        return [_retarget(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _retarget(value) for key, value in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith(_SCHEMAS_REF):
        out["$ref"] = f"#/components/{V2_SCHEMAS}/{ref[len(_SCHEMAS_REF) :]}"
    return out


def relax_adf(node: Any) -> Any:
    """A copy in which every schema property documented as ADF also accepts a plain string."""
    if isinstance(node, list):
        return [relax_adf(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: relax_adf(value) for key, value in node.items()}
    properties = out.get("properties")
    if isinstance(properties, dict):
        for name, schema in properties.items():
            if isinstance(schema, dict) and _ADF in str(schema.get("description", "")):
                described = {k: v for k, v in schema.items() if k != "description"}
                properties[name] = {
                    "description": schema.get("description"),
                    "anyOf": [described, {"type": "string"}],
                }
    return out


def _accept_link_list(paths: dict[str, Any], template: str, schemas: str) -> None:
    media = paths[template]["get"]["responses"]["200"]["content"]["application/json"]
    item = {"$ref": f"#/components/{schemas}/RemoteIssueLink"}
    media["schema"] = {"anyOf": [item, {"type": "array", "items": item}]}


def with_rest_api_2(document: dict[str, Any]) -> dict[str, Any]:
    """The description plus the v2 paths (ADF relaxed), with the remote-link correction."""
    out = copy.deepcopy(document)
    schemas = document["components"]["schemas"]
    out["components"][V2_SCHEMAS] = relax_adf(_retarget(schemas))
    for v2_path, v3_path in document["x-rest-api-2-paths"].items():
        out["paths"][v2_path] = relax_adf(_retarget(document["paths"][v3_path]))
    _accept_link_list(out["paths"], "/rest/api/3" + _REMOTE_LINKS, "schemas")
    _accept_link_list(out["paths"], "/rest/api/2" + _REMOTE_LINKS, V2_SCHEMAS)
    return out


class JiraContractChecker(ContractChecker):
    """Validates Jira responses (v2 and v3 paths) and request bodies against the description."""

    error_schema = "/components/schemas/ErrorCollection"
    error_body_without_content = True

    def __init__(
        self, document: dict[str, Any], *, recorder: ContractRecorder | None = RECORDER
    ) -> None:
        super().__init__(with_rest_api_2(document), recorder=recorder)
        self.original = document

    @classmethod
    def load(
        cls, path: Path = OPENAPI_PATH, *, recorder: ContractRecorder | None = RECORDER
    ) -> JiraContractChecker:
        return cls(json.loads(path.read_text(encoding="utf-8")), recorder=recorder)

    def v2_schema(self, name: str) -> dict[str, Any]:
        """A v2 (ADF-relaxed) component schema, `nullable` converted (for tests)."""
        return copy.deepcopy(self._converted["components"][V2_SCHEMAS][name])


@cache
def jira_checker() -> JiraContractChecker:
    """One shared checker (the description is parsed once per process)."""
    return JiraContractChecker.load()


__all__ = ["OPENAPI_PATH", "JiraContractChecker", "jira_checker", "relax_adf", "with_rest_api_2"]
