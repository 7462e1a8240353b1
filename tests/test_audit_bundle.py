"""The evidence bundle of an incident that continued as new, with action items on all three
trackers (local, the GitHub emulator, the Jira emulator): it holds every run's history and a
record that says what they say; verify finds a one-byte change in any kind of file, a
workflow change that replay catches, and a record that no longer says what the histories say.
The real worker on the dev server, the real clients, the emulators."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from app.formats.audit_bundle import read_bundle, write_bundle, zip_bytes
from app.formats.audit_histories import load_history, parse_path
from app.services.audit import export_bundle, verify_bundle
from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemState,
    StartActionItem,
    TicketStatus,
    VerifyItem,
    action_workflow_id,
)
from domain.audit.manifest import MANIFEST, SIGNATURE, Manifest, digests
from domain.commands import AddTimelineEvent, Transition
from domain.identity import Actor, ActorKind, Role
from domain.incident import workflow_id_for
from domain.review import SubmitReview
from settings import Settings
from tests.api_server import serving_api
from tests.auth import bearer, token_secret
from tests.cli import Cli, cli_env
from tests.emulators.github import GitHubEmulator, github_serving
from tests.emulators.jira import JiraEmulator
from tests.helpers import declare, eventually
from tests.reviews import full_review, item_spec, item_state, quick_items_policy
from tests.reviews import signal_ticket as local_ticket_changed
from tests.test_accepted_tickets import (
    GITHUB_TOKEN,
    JIRA_EMAIL,
    JIRA_TOKEN,
    REPO,
    WORKFLOW,
    three_routes,
    three_trackers,
)
from worker import build_worker
from workflows.action_item import ActionItemWorkflow
from workflows.incident import IncidentWorkflow

ALICE = Actor(kind=ActorKind.TOKEN, subject="alice-bot", display_name="Alice", via="alice-bot")
APPROVER = Actor(kind=ActorKind.OIDC, subject="0042", display_name="Vera Eng", via="idp")


@dataclass
class Exported:
    key: str
    files: dict[str, bytes]
    signer: Ed25519PrivateKey
    client: Client
    item_ids: list[str]


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubEmulator]:
    with github_serving(REPO, token=GITHUB_TOKEN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def jira() -> Iterator[JiraEmulator]:
    emulator = JiraEmulator(flavor="cloud", email=JIRA_EMAIL, api_token=JIRA_TOKEN).start()
    emulator.add_project("OPS", issue_types=("Task",), workflow=WORKFLOW)
    try:
        yield emulator
    finally:
        emulator.stop()


async def _opened(client: Client, workflow_id: str) -> ActionItem:
    return await eventually(
        lambda: item_state(client, workflow_id),
        lambda item: item.state is ActionItemState.OPEN and len(item.escalations) >= 2,
    )


async def _verifying(client: Client, workflow_id: str) -> None:
    await eventually(
        lambda: item_state(client, workflow_id),
        lambda item: item.state is ActionItemState.VERIFYING,
    )


@pytest.fixture(scope="module")
async def exported(
    dev_env: WorkflowEnvironment,
    github: GitHubEmulator,
    jira: JiraEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Exported]:
    """One incident, run once for the module: notes past a tiny history limit (so it continues
    as new), a review with an item per tracker, due at once (so each is reminded and escalated
    to the owner and the team lead), then the GitHub item's risk accepted and the other two
    closed and verified."""
    client = dev_env.client
    settings = three_trackers(tmp_path_factory.mktemp("audit"), github, jira)
    task_queue = f"tq-{uuid.uuid4()}"
    routes = three_routes()
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await declare(
            client, task_queue, quick_items_policy(), history_limit=20, actor=ALICE
        )
        first_run = (await handle.describe()).run_id
        for number in range(6):
            await handle.execute_update(
                IncidentWorkflow.add_timeline_event,
                AddTimelineEvent(text=f"note {number}", actor=ALICE),
            )
        await eventually(
            lambda: client.get_workflow_handle(handle.id).describe(),
            lambda described: described.run_id != first_run,
        )
        current = client.get_workflow_handle(handle.id)
        await current.execute_update(IncidentWorkflow.resolve, Transition(actor=ALICE))
        items = [item_spec(team, f"Fix it for {team}") for team in routes]
        await current.execute_update(
            IncidentWorkflow.submit_review,
            SubmitReview(review=full_review(*items), routes=routes, by="alice", actor=ALICE),
        )
        key = (await current.query(IncidentWorkflow.state)).key
        ids = [action_workflow_id(key, number) for number in (1, 2, 3)]
        _, jira_item, local_item = await asyncio.gather(
            *(_opened(client, workflow_id) for workflow_id in ids)
        )
        await client.get_workflow_handle(ids[0]).execute_update(
            "accept_risk",
            AcceptRisk(rationale="replaced by the rewrite", approver="vera", actor=APPROVER),
        )
        for workflow_id, item in ((ids[1], jira_item), (ids[2], local_item)):
            assert item.ticket is not None
            await local_ticket_changed(client, workflow_id, item.ticket.key, TicketStatus.CLOSED)
            await _verifying(client, workflow_id)
            await client.get_workflow_handle(workflow_id).execute_update(
                "verify",
                VerifyItem(evidence="https://grafana.example/d/errors", by="bob", actor=ALICE),
            )
        await current.result()
    signer = Ed25519PrivateKey.generate()
    files = await export_bundle(client, key, key_to_sign=signer)
    yield Exported(key=key, files=files, signer=signer, client=client, item_ids=ids)


def _histories(files: dict[str, bytes]) -> dict[str, list[str]]:
    """Run ids of each workflow whose history the bundle holds."""
    runs: dict[str, list[str]] = {}
    for path in files:
        where = parse_path(path)
        if where is not None:
            runs.setdefault(where[0], []).append(where[1])
    return runs


def _rows(files: dict[str, bytes], path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(files[path].decode())))


async def test_the_bundle_holds_every_run_of_the_incident_and_of_each_item(
    exported: Exported,
) -> None:
    runs = _histories(exported.files)
    assert set(runs) == {workflow_id_for(exported.key), *exported.item_ids}
    for workflow_id, run_ids in runs.items():
        listed = [
            execution.run_id
            async for execution in exported.client.list_workflows(f'WorkflowId = "{workflow_id}"')
        ]
        assert sorted(run_ids) == sorted(listed), workflow_id
    assert len(runs[workflow_id_for(exported.key)]) >= 2, "the incident did not continue as new"
    for path, data in exported.files.items():
        if parse_path(path) is not None:
            history = load_history(path, data)
            assert history.events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED


def _events(files: dict[str, bytes], event_type: EventType.ValueType) -> list[HistoryEvent]:
    """Every event of a type in the bundle's histories, read straight from the protobufs."""
    return [
        event
        for path, data in files.items()
        if parse_path(path) is not None
        for event in load_history(path, data).events
        if event.event_type == event_type
    ]


def _scheduled(files: dict[str, bytes], activity: str) -> int:
    scheduled = _events(files, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    return sum(
        1
        for e in scheduled
        if e.activity_task_scheduled_event_attributes.activity_type.name == activity
    )


async def test_the_record_says_what_the_histories_say(exported: Exported) -> None:
    files = exported.files
    commands = _rows(files, "record/commands.csv")
    updates = [row for row in commands if row["command"] != "declare"]
    assert len(updates) == len(
        _events(files, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    )
    assert [row["actor"] for row in commands if row["command"] == "declare"] == ["token:alice-bot"]
    assert [row["command"] for row in commands if row["subject"] == exported.key] == [
        "declare",
        *["add_timeline_event"] * 6,
        "resolve",
        "submit_review",
    ]
    [accepted] = [row for row in commands if row["command"] == "accept_risk"]
    assert (accepted["actor"], accepted["outcome"]) == ("oidc:Vera Eng", "accepted")
    assert json.loads(accepted["input"]) == {
        "approver": "vera",
        "rationale": "replaced by the rewrite",
    }

    deadlines = _rows(files, "record/deadlines.csv")
    escalations = [row for row in deadlines if row["kind"] == "escalation"]
    assert len(escalations) == _scheduled(files, "notify_escalation")
    local_id = f"{exported.key}-3"
    assert {"platform-oncall", "platform-lead"} <= {
        row["recipients"] for row in escalations if row["subject"] == local_id
    }
    assert any(row["kind"] == "reminder" and row["subject"] == local_id for row in deadlines)
    assert all(row["outcome"] == "delivered" for row in escalations)

    tickets = _rows(files, "record/tickets.csv")
    created = {row["subject"]: row for row in tickets if row["event"] == "created"}
    assert created[f"{exported.key}-1"]["link"].endswith(f"/{REPO}/issues/1")
    assert created[f"{exported.key}-2"]["link"].endswith("/browse/OPS-1")
    assert created[local_id]["ticket"].startswith("LOCAL-")
    assert [row["status"] for row in tickets if row["event"] == "changed"] == ["closed", "closed"]
    calls = [row for row in tickets if row["event"] != "changed"]
    assert len(calls) == sum(
        _scheduled(files, name) for name in ("ensure_ticket", "comment_on_ticket", "update_ticket")
    )

    [review] = json.loads(files["record/reviews.json"])
    assert [item["owning_team"] for item in review["review"]["action_items"]] == [
        "payments",
        "ops",
        "platform",
    ]
    markdown = files["record/record.md"].decode()
    assert "https://grafana.example/d/errors" in markdown
    assert "| " + f"{exported.key}-1" in markdown and "replaced by the rewrite" in markdown


async def test_verify_accepts_the_bundle_as_exported_from_a_folder_and_a_zip(
    exported: Exported, tmp_path: Path
) -> None:
    write_bundle(exported.files, tmp_path / "bundle.zip")
    write_bundle(exported.files, tmp_path / "folder")
    for where in (tmp_path / "bundle.zip", tmp_path / "folder"):
        files = read_bundle(where)
        assert files == exported.files
        verdict = await verify_bundle(files, trusted_key=exported.signer.public_key())
        assert verdict.problems == []
        assert verdict.replayed == sum(len(runs) for runs in _histories(files).values())
    # The same files make the same zip, byte for byte.
    assert (tmp_path / "bundle.zip").read_bytes() == zip_bytes(read_bundle(tmp_path / "folder"))


def _first(files: dict[str, bytes], prefix: str) -> str:
    return next(path for path in sorted(files) if path.startswith(prefix))


@pytest.mark.parametrize(
    "kind", ["histories/", "record/record.md", "record/commands.csv", MANIFEST, SIGNATURE]
)
async def test_a_one_byte_edit_to_any_kind_of_file_is_found_and_named(
    exported: Exported, kind: str
) -> None:
    files = dict(exported.files)
    path = _first(files, kind)
    data = bytearray(files[path])
    data[len(data) // 2] ^= 0x01
    files[path] = bytes(data)
    verdict = await verify_bundle(files, trusted_key=exported.signer.public_key())
    assert verdict.problems, f"a changed byte in {path} went unnoticed"
    assert any(problem.startswith(f"{path}:") for problem in verdict.problems) or (
        path == MANIFEST and any(MANIFEST in problem for problem in verdict.problems)
    ), verdict.problems


@workflow.defn(name="ActionItemWorkflow", sandboxed=False)
class ActionItemWorkflowThatClosesBeforeItComments(ActionItemWorkflow):
    """A plausible bad change: accepting the risk closes the ticket before it comments why."""

    _deferred: tuple[str, str] | None = None

    @workflow.init
    def __init__(self, start: StartActionItem) -> None:
        super().__init__(start)

    @workflow.run
    async def run(self, start: StartActionItem) -> ActionItem:
        return await super().run(start)

    def _comment(self, text: str, *, key: str) -> None:
        if key == "acceptance":
            self._deferred = (text, key)
            return
        super()._comment(text, key=key)

    def _update_ticket(self, change: object) -> None:
        super()._update_ticket(change)  # type: ignore[arg-type]
        deferred = self._deferred
        if deferred is not None:
            self._deferred = None
            super()._comment(deferred[0], key=deferred[1])


async def test_replay_with_a_reordered_workflow_names_the_history_it_breaks(
    exported: Exported,
) -> None:
    verdict = await verify_bundle(
        exported.files,
        trusted_key=exported.signer.public_key(),
        workflows=[IncidentWorkflow, ActionItemWorkflowThatClosesBeforeItComments],
    )
    github_item = exported.item_ids[0]
    assert len(verdict.problems) == 1, verdict.problems
    [problem] = verdict.problems
    [path] = [
        p for p in exported.files if p.startswith(f"histories/{quote(github_item, safe='')}/")
    ]
    assert problem.startswith(f"{path}: workflow {github_item} does not replay"), problem
    # The event named is the acceptance's comment, as the history recorded it.
    [comment] = [
        event
        for event in load_history(path, exported.files[path]).events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and b"/acceptance" in event.activity_task_scheduled_event_attributes.input.payloads[0].data
    ]
    assert f" {comment.event_id} activity_task_scheduled comment_on_ticket;" in problem
    assert "Nondeterminism error: Activity type of scheduled event 'comment_on_ticket'" in problem


async def test_a_bundle_signed_by_another_key_than_the_trusted_one_is_refused(
    exported: Exported,
) -> None:
    verdict = await verify_bundle(
        exported.files, trusted_key=Ed25519PrivateKey.generate().public_key()
    )
    assert [p.split(":")[0] for p in verdict.problems] == [SIGNATURE]
    assert "the signature does not match" in verdict.problems[0]


async def test_a_record_edited_under_a_fresh_manifest_no_longer_says_what_the_histories_say(
    exported: Exported,
) -> None:
    """Whoever rewrites a record and its manifest (without the key) is still caught."""
    files = dict(exported.files)
    files["record/commands.csv"] = files["record/commands.csv"].replace(
        b"oidc:Vera Eng", b"oidc:Someone Else"
    )
    manifest = Manifest.model_validate_json(files[MANIFEST])
    rewritten = manifest.model_copy(update={"signing_key": None, "files": digests(files)})
    files[MANIFEST] = rewritten.encoded()
    del files[SIGNATURE]
    verdict = await verify_bundle(files)
    assert verdict.problems == [
        next(p for p in verdict.problems if p.startswith("record/commands.csv: does not say"))
    ]
    assert "oidc:Someone Else" in verdict.problems[0]
    # With the key it trusts, the auditor also learns the bundle is no longer signed.
    signed = await verify_bundle(files, trusted_key=exported.signer.public_key())
    assert f"{SIGNATURE}: missing; the bundle is not signed" in signed.problems


def _pem(signer: Ed25519PrivateKey) -> bytes:
    return signer.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


async def test_the_cli_exports_a_signed_zip_that_verify_accepts_and_a_changed_one_it_refuses(
    exported: Exported, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    key_file = tmp_path / "audit-signing.pem"
    key_file.write_bytes(_pem(exported.signer))
    env = cli_env(tmp_path, dev_env.client.service_client.config.target_host)
    env["AFTERACTION_AUDIT_SIGNING_KEY"] = str(key_file)
    audit = Cli(home=tmp_path, env=env, prefix=("audit",))

    done = await audit("export", exported.key.lower(), "--out", "bundle.zip")
    assert done.returncode == 0, done.stderr
    assert "signed by" in done.stdout
    printed = await audit("public-key")
    assert printed.stdout.encode() == exported.signer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "public.pem").write_text(printed.stdout)
    without_key = {
        name: value for name, value in env.items() if name != "AFTERACTION_AUDIT_SIGNING_KEY"
    }
    auditor = Cli(home=tmp_path, env=without_key, prefix=("audit",))

    verified = await auditor("verify", "bundle.zip", "--public-key", "public.pem")
    assert verified.returncode == 0, verified.stderr
    assert "the signature holds" in verified.stdout

    files = read_bundle(tmp_path / "bundle.zip")
    files["record/tickets.csv"] = files["record/tickets.csv"].replace(b"OPS-1", b"OPS-2", 1)
    (tmp_path / "changed.zip").write_bytes(zip_bytes(files))
    refused = await auditor("verify", "changed.zip", "--public-key", "public.pem")
    assert refused.returncode == 3, refused.stderr
    assert "failed: record/tickets.csv: changed since export" in refused.stderr


async def test_auditors_get_the_bundle_from_the_api_and_through_it_the_cli(
    exported: Exported, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path,
        temporal_address=dev_env.client.service_client.config.target_host,
        policy_file=None,
        routing_file=None,
        audit_signing_key=SecretStr(_pem(exported.signer).decode()),
    )
    auditor_token = token_secret(settings, role=Role.AUDITOR)
    path = f"/api/incidents/{exported.key}/audit"
    with serving_api(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            answer = await http.get(path, headers=bearer(auditor_token))
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/zip"
            with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
                files = {name: archive.read(name) for name in archive.namelist()}
            verdict = await verify_bundle(files, trusted_key=exported.signer.public_key())
            assert verdict.problems == []
            assert _histories(files) == _histories(exported.files)

            viewer = bearer(token_secret(settings, role=Role.VIEWER))
            refused = await http.get(path, headers=viewer)
            assert refused.status_code == 403
            assert "auditor" in refused.json()["detail"]
            unknown = await http.get("/api/incidents/INC-261127-ZZZZ/audit", headers=viewer)
            assert unknown.status_code == 403, "the permission is checked before anything"
            missing = await http.get(
                "/api/incidents/INC-261127-ZZZZ/audit", headers=bearer(auditor_token)
            )
            assert missing.status_code == 404, missing.text

        env = cli_env(tmp_path, "127.0.0.1:1")  # no Temporal: the CLI goes through the API
        env |= {"AFTERACTION_API_URL": url, "AFTERACTION_API_TOKEN": auditor_token}
        done = await Cli(home=tmp_path, env=env, prefix=("audit",))(
            "export", exported.key, "--out", "through-the-api"
        )
        assert done.returncode == 0, done.stderr
        assert read_bundle(tmp_path / "through-the-api").keys() == files.keys()
