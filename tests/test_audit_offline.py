"""The parts of an audit bundle that need no server: the signing key as
AFTERACTION_AUDIT_SIGNING_KEY gives it (a PEM, or the path of one), what a wrong one is told,
never echoing it; a manifest that names every change; a record that says which runs retention
removed and what a refused command was refused for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    EllipticCurvePrivateKey,
    generate_private_key,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from app.formats.audit_record import record_markdown
from app.services.audit import signing_key
from app.stack import StackError, preflight
from domain.audit.events import EventKind, HistoryEvent, RunHistory
from domain.audit.manifest import Manifest, digests, file_problems
from domain.audit.record import derive_record
from domain.audit.signing import SigningKeyError, public_key, public_raw
from settings import Settings


def _pem(key: Ed25519PrivateKey | EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_the_key_is_read_from_the_variable_or_from_the_file_it_names(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "key.pem").write_text(_pem(key))
    expected = public_raw(key.public_key())
    for value in (_pem(key), str(tmp_path / "key.pem")):
        found = signing_key(Settings(home=tmp_path, audit_signing_key=SecretStr(value)))
        assert found is not None and public_raw(found.public_key()) == expected
    assert signing_key(Settings(home=tmp_path)) is None
    assert public_raw(public_key(expected.encode())) == expected


def test_a_wrong_key_is_refused_with_what_to_do_and_without_its_text(tmp_path: Path) -> None:
    secret_looking = (
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXNlY3JldC1zZWNyZXQ=\n-----END PRIVATE KEY-----"
    )
    elliptic = _pem(generate_private_key(SECP256R1()))
    cases = {
        secret_looking: "not an unencrypted PEM private key",
        elliptic: "not an Ed25519 key",
        str(tmp_path / "missing.pem"): "cannot be read",
    }
    for value, reason in cases.items():
        with pytest.raises(SigningKeyError) as refused:
            signing_key(Settings(home=tmp_path, audit_signing_key=SecretStr(value)))
        message = str(refused.value)
        assert (reason in message and "openssl genpkey" in message) or "PEM" in message
        assert "c2VjcmV0" not in message and "PRIVATE KEY-----\n" not in message
    # `make run` says so before it starts anything.
    with pytest.raises(StackError, match="not an unencrypted PEM private key"):
        preflight(
            Settings(home=tmp_path, policy_file=None, audit_signing_key=SecretStr(secret_looking))
        )


def test_the_manifest_names_a_changed_a_missing_and_an_added_file() -> None:
    files = {"record/a.csv": b"1\n", "record/b.md": b"# b\n", "histories/x/y.json": b"{}"}
    manifest = Manifest.model_validate(
        {
            "incident_key": "INC-261127-7KQ2",
            "exported_at": "2026-12-02T12:00:00Z",
            "code_version": {"afteraction": "0.1.0", "temporalio": "1.35.0"},
            "files": [d.model_dump() for d in digests(files)],
        }
    )
    changed = {**files, "record/a.csv": b"2\n", "extra.txt": b""}
    del changed["record/b.md"]
    problems = file_problems(manifest, changed)
    assert [p.split(":")[0] for p in problems] == ["record/a.csv", "record/b.md", "extra.txt"]
    assert file_problems(manifest, files) == []
    with pytest.raises(ValueError, match="not a plain relative path"):
        Manifest.model_validate(
            {**manifest.model_dump(), "files": [{"path": "../etc", "sha256": "0" * 64, "bytes": 0}]}
        )


def _event(event_id: int, kind: EventKind, **fields: object) -> HistoryEvent:
    at = datetime(2026, 12, 2, 12, 0, event_id, tzinfo=UTC)
    return HistoryEvent(event_id=event_id, at=at, kind=kind, **fields)


def test_the_record_names_the_runs_retention_removed_and_why_a_command_failed() -> None:
    """The second run of an incident, whose first run's history is gone: it names the run
    before it; a facilitator that could not be proposed fails the command after acceptance."""
    actor = {"kind": "token", "subject": "ci-bot", "display_name": "CI", "via": "ci-bot"}
    later = RunHistory(
        workflow_id="incident/INC-261127-7KQ2",
        run_id="run-2",
        workflow_type="IncidentWorkflow",
        events=[
            _event(1, EventKind.STARTED, ref="run-1", data=[{"carried_over": {}}]),
            _event(
                5,
                EventKind.UPDATE_ACCEPTED,
                name="schedule_review",
                ref="schedule_review:1",
                data=[{"at": "2026-12-03T15:00:00Z", "actor": actor}],
            ),
            _event(7, EventKind.UPDATE_COMPLETED, ref="schedule_review:1", failure="no pool"),
            _event(9, EventKind.CONTINUED_AS_NEW, ref="run-3"),
        ],
    )
    record = derive_record("INC-261127-7KQ2", [later])
    assert record.missing_runs == [
        ("incident/INC-261127-7KQ2", "run-1"),
        ("incident/INC-261127-7KQ2", "run-3"),
    ]
    [command] = record.commands  # a continuation's start is not a declaration
    assert (command.command, command.actor, command.outcome, command.reason) == (
        "schedule_review",
        "token:ci-bot",
        "refused",
        "no pool",
    )
    assert "**Runs missing**" in record_markdown(record)
