"""Evidence bundles: export an incident's every history with the record derived from them and
a signed manifest; verify a bundle (its files, its signature, a replay of every history on the
installed code, and its record derived again). `audit export` and `audit verify`, and the
API's GET /api/incidents/{key}/audit, share these.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from app.formats.audit_histories import (
    HistoryFileError,
    history_json,
    history_path,
    load_history,
    parse_path,
    run_history,
)
from app.formats.audit_record import record_files
from app.services.audit_replay import replay_histories
from app.services.incidents import IncidentNotFound, TemporalUnavailable, unavailable_message
from domain.audit.events import RunHistory
from domain.audit.manifest import (
    MANIFEST,
    SIGNATURE,
    CodeVersion,
    Files,
    Manifest,
    digests,
    file_problems,
)
from domain.audit.record import derive_record
from domain.audit.signing import (
    SigningKeyError,
    private_key,
    public_key,
    public_raw,
    sign,
    signature_problem,
)
from domain.incident import workflow_id_for
from domain.keys import KEY_EXAMPLE, is_incident_key, normal_key
from settings import Settings
from workflows.action_item import ActionItemWorkflow
from workflows.incident import IncidentWorkflow

# What a bundle holds and what its replay runs: the workflow code installed here.
AUDITED_WORKFLOWS: list[type] = [IncidentWorkflow, ActionItemWorkflow]
SOURCE = Path(__file__).resolve().parents[2]


def code_version(commit: str | None = None) -> CodeVersion:
    """The installed code: `commit` where the build knows it (AFTERACTION_GIT_COMMIT, which
    the image sets); otherwise `git rev-parse` in the source folder, when it is a checkout."""
    return CodeVersion(
        afteraction=importlib.metadata.version("afteraction"),
        commit=commit or _git_commit(),
        temporalio=importlib.metadata.version("temporalio"),
    )


def _git_commit() -> str | None:
    if not (SOURCE / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(SOURCE), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def signing_key(settings: Settings) -> Ed25519PrivateKey | None:
    """The key that signs bundles: AFTERACTION_AUDIT_SIGNING_KEY holds the PEM itself, or the
    path of a file that does (a deployment's secret file). None when it is not set."""
    if settings.audit_signing_key is None:
        return None
    value = settings.audit_signing_key.get_secret_value()
    if value.lstrip().startswith("-----BEGIN"):
        return private_key(value.encode())
    path = Path(value.strip()).expanduser()
    try:
        return private_key(path.read_bytes())
    except OSError as error:
        raise SigningKeyError(
            f"AFTERACTION_AUDIT_SIGNING_KEY names the file {path}, which cannot be read "
            f"({error.strerror}); give a PEM private key or the path of one"
        ) from None


# ---- export --------------------------------------------------------------------------------


def _linked_runs(history: WorkflowHistory) -> set[str]:
    """Runs a history names: the first of its chain, the one before it, the one it continued
    as or was reset to."""
    started = history.events[0].workflow_execution_started_event_attributes
    runs = {started.first_execution_run_id, started.continued_execution_run_id}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            runs.add(
                event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            )
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            runs.add(event.workflow_task_failed_event_attributes.new_run_id)
    runs.discard("")
    return runs


def _children(history: WorkflowHistory) -> set[str]:
    return {
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    }


async def _every_run(client: Client, workflow_id: str) -> dict[str, WorkflowHistory]:
    """The history of every run of `workflow_id`: those visibility lists, and those the
    histories name (visibility lags behind a run that has just continued as new)."""
    wanted: set[str] = set()
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        wanted.add(execution.run_id)
    wanted.add((await client.get_workflow_handle(workflow_id).describe()).run_id)
    histories: dict[str, WorkflowHistory] = {}
    gone: set[str] = set()  # named by a history, removed by retention: the record says so
    while wanted - set(histories) - gone:
        for run_id in sorted(wanted - set(histories) - gone):
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            try:
                histories[run_id] = await handle.fetch_history()
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    raise
                gone.add(run_id)
                continue
            wanted |= _linked_runs(histories[run_id])
    return histories


async def export_bundle(
    client: Client,
    key: str,
    *,
    key_to_sign: Ed25519PrivateKey | None = None,
    commit: str | None = None,
) -> dict[str, bytes]:
    """Every file of the incident's evidence bundle, by its path in the bundle."""
    key = normal_key(key)
    if not is_incident_key(key):
        # Never sent: it would be part of a visibility query.
        raise IncidentNotFound(
            f"no incident {key[:60]!r}: keys look like {KEY_EXAMPLE}; "
            "`afteraction list` shows the incidents"
        )
    incident_id = workflow_id_for(key)
    try:
        runs = {incident_id: await _every_run(client, incident_id)}
        children = sorted(set().union(*(_children(h) for h in runs[incident_id].values())))
        for child in children:
            runs[child] = await _every_run(client, child)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise IncidentNotFound(
                f"no incident {key}, or retention has removed its history; "
                "`afteraction list` shows the incidents"
            ) from None
        raise TemporalUnavailable(
            unavailable_message(client.service_client.config.target_host, error.message)
        ) from None
    files: dict[str, bytes] = {}
    decoded: list[RunHistory] = []
    converter = client.data_converter.payload_converter
    for workflow_id, histories in runs.items():
        for run_id, history in histories.items():
            files[history_path(workflow_id, run_id)] = history_json(history)
            decoded.append(run_history(history, run_id, converter))
    files.update(record_files(derive_record(key, decoded)))
    manifest = Manifest(
        incident_key=key,
        exported_at=datetime.now(UTC),
        code_version=code_version(commit),
        signing_key=public_raw(key_to_sign.public_key()) if key_to_sign else None,
        files=digests(files),
    )
    files[MANIFEST] = manifest.encoded()
    if key_to_sign is not None:
        files[SIGNATURE] = sign(key_to_sign, files[MANIFEST])
    return files


# ---- verify --------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What `audit verify` found: `problems` fail it; `notes` are worth knowing."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    histories: int = 0
    replayed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _manifest(files: Files, verdict: Verdict) -> Manifest | None:
    data = files.get(MANIFEST)
    if data is None:
        verdict.problems.append(f"{MANIFEST}: missing; this is not an audit bundle")
        return None
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as error:
        verdict.problems.append(
            f"{MANIFEST}: not a manifest afteraction wrote ({error.error_count()} problems, "
            f"the first: {error.errors()[0]['msg']})"
        )
        return None


def _check_signature(
    files: Files, manifest: Manifest, trusted: Ed25519PublicKey | None, verdict: Verdict
) -> None:
    signature = files.get(SIGNATURE)
    if signature is None:
        if trusted is not None or manifest.signing_key is not None:
            verdict.problems.append(f"{SIGNATURE}: missing; the bundle is not signed")
        else:
            verdict.notes.append("the bundle is not signed: its files are checked, not its origin")
        return
    key = trusted
    if key is None:
        if manifest.signing_key is None:
            verdict.problems.append(f"{SIGNATURE}: present, but the manifest names no key")
            return
        try:
            key = public_key(manifest.signing_key.encode())
        except SigningKeyError as error:
            verdict.problems.append(f"{MANIFEST}: signing_key: {error}")
            return
        verdict.notes.append(
            f"signature checked against the key the manifest names ({manifest.signing_key}); "
            "give --public-key with the key you trust to check who signed it"
        )
    problem = signature_problem(key, files[MANIFEST], signature)
    if problem:
        verdict.problems.append(problem)


def _first_difference(expected: bytes, found: bytes) -> str:
    ours, theirs = expected.decode(errors="replace"), found.decode(errors="replace")
    pairs = zip(ours.splitlines(), theirs.splitlines(), strict=False)
    for number, (line, other) in enumerate(pairs, 1):
        if line != other:
            return f"line {number} reads {other[:120]!r}; the histories say {line[:120]!r}"
    return "the histories say the record is " + (
        "longer" if len(expected) > len(found) else "shorter"
    )


async def verify_bundle(
    files: Files,
    *,
    trusted_key: Ed25519PublicKey | None = None,
    workflows: Sequence[type] = AUDITED_WORKFLOWS,
    converter: DataConverter = pydantic_data_converter,
    commit: str | None = None,
) -> Verdict:
    """Check every file against the manifest and the manifest against its signature (with
    `trusted_key`, else the key the manifest names), replay every history with `workflows`,
    and derive the record again from the histories."""
    verdict = Verdict()
    manifest = _manifest(files, verdict)
    if manifest is not None:
        _check_signature(files, manifest, trusted_key, verdict)
        verdict.problems += file_problems(manifest, files)
        installed = code_version(commit)
        if manifest.code_version.model_dump(exclude={"commit"}) != installed.model_dump(
            exclude={"commit"}
        ) or (manifest.code_version.commit or "") != (installed.commit or ""):
            verdict.notes.append(
                f"exported by {manifest.code_version.model_dump()}; replayed on "
                f"{installed.model_dump()}"
            )
    loaded: list[tuple[str, WorkflowHistory]] = []
    decoded: list[RunHistory] = []
    for path in sorted(files):
        where = parse_path(path)
        if where is None:
            continue
        try:
            history = load_history(path, files[path])
        except HistoryFileError as error:
            verdict.problems.append(str(error))
            continue
        loaded.append((path, history))
        decoded.append(run_history(history, where[1], converter.payload_converter))
    verdict.histories = len(loaded)
    if not loaded:
        verdict.problems.append("histories/: no workflow history in the bundle")
    replayed = await replay_histories(loaded, workflows, converter)
    verdict.replayed = replayed.count
    verdict.problems += replayed.problems
    if manifest is not None:
        for path, expected in record_files(derive_record(manifest.incident_key, decoded)).items():
            found = files.get(path)
            if found is None:
                verdict.problems.append(f"{path}: missing from the bundle")
            elif found != expected:
                verdict.problems.append(
                    f"{path}: does not say what the histories say: "
                    f"{_first_difference(expected, found)}"
                )
    return verdict
