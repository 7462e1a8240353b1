"""`afteraction audit`: evidence for auditors. `export` writes an incident's bundle (every
history, the record derived from them, a manifest, signed when AFTERACTION_AUDIT_SIGNING_KEY
is set); `verify` checks one offline; `report` gives a period's control evidence;
`public-key` prints the key that checks signatures.

Part of the `afteraction` app (app.cli.main registers it), so it shares its exit codes (2 for
invalid input or an unknown incident, 1 Temporal unreachable), plus 3: the bundle failed
verification, every reason printed.
"""

from __future__ import annotations

import asyncio
import io
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from temporalio.client import Client

from app.cli.common import (
    _parse_time,
    _run_client,
    _settings,
    err,
    fail,
    out,
    remote_api,
    run_remote,
    warn,
)
from app.formats.audit_bundle import BundleError, read_bundle, unzipped, write_bundle
from app.formats.audit_histories import parse_path
from app.formats.audit_report import ReportFormat, rendered
from app.services.actions import ActionItems
from app.services.audit import export_bundle, signing_key, verify_bundle
from app.services.incidents import Incidents
from app.services.period_evidence import PeriodEvidence
from domain.audit.manifest import MANIFEST, SIGNATURE, Manifest
from domain.audit.signing import GENERATE_HINT, SigningKeyError, public_key, public_pem
from domain.keys import normal_key
from domain.policy import default_policy
from settings import Settings

FAILED = 3

audit: typer.Typer = typer.Typer(
    name="audit",
    help="Evidence for auditors: export an incident's bundle, verify one, print the public key.",
    no_args_is_help=True,
)


def _signer() -> Ed25519PrivateKey | None:
    try:
        return signing_key(_settings())
    except SigningKeyError as error:
        fail(str(error), 2)


@audit.command()
def export(
    key: Annotated[str, typer.Argument(help="The incident's key, e.g. INC-261127-7KQ2.")],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write it: a path ending .zip writes a zip, any other a new folder "
            "(default: KEY-audit.zip here).",
        ),
    ] = None,
) -> None:
    """Write an incident's evidence bundle: a .zip, or a new folder.

    It holds every history of the incident and its items, the record derived from them, and a
    manifest of SHA-256s (signed when AFTERACTION_AUDIT_SIGNING_KEY is set).
    """
    target = out_path or Path(f"{normal_key(key)}-audit.zip")
    api = remote_api(_settings())
    if api is not None:
        # The API signs with its own key; the bundle is written as it came.
        path = f"/api/incidents/{quote(normal_key(key), safe='')}/audit"
        zipped = run_remote(api, lambda: api.content(path))
        try:
            files = unzipped(io.BytesIO(zipped), Path(path))
        except zipfile.BadZipFile:
            fail(f"the API at {api.base_url} answered something other than a zip", 1)
    else:
        signer = _signer()
        files = _run_client(
            lambda client, settings: export_bundle(
                client, key, key_to_sign=signer, commit=settings.git_commit
            )
        )
    try:
        write_bundle(files, target)
    except BundleError as error:
        fail(str(error), 2)
    histories = sum(1 for path in files if parse_path(path) is not None)
    signer_key = Manifest.model_validate_json(files[MANIFEST]).signing_key
    signed = f"signed by {signer_key}" if signer_key else "not signed"
    out.print(f"wrote {target}: {histories} histories, the record and the manifest ({signed})")


def _trusted(path: Path | None) -> Ed25519PublicKey | None:
    if path is None:
        signer = _signer()
        return signer.public_key() if signer else None
    try:
        return public_key(path.read_bytes())
    except OSError as error:
        fail(f"--public-key {path}: cannot read it ({error.strerror})", 2)
    except SigningKeyError as error:
        fail(f"--public-key {path}: {error}", 2)


@audit.command()
def verify(
    path: Annotated[Path, typer.Argument(help="A bundle: its folder or its .zip.")],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The PEM public key you trust to have signed it (default: that of "
            "AFTERACTION_AUDIT_SIGNING_KEY, else the key the manifest names).",
        ),
    ] = None,
) -> None:
    """Check a bundle, offline; exit 3 naming every failure.

    Every file against the manifest, the manifest against its signature, every history replayed
    on the installed code, and the record derived again from the histories.
    """
    trusted = _trusted(key_file)
    try:
        files = read_bundle(path)
    except BundleError as error:
        fail(str(error), 2)
    verdict = asyncio.run(verify_bundle(files, trusted_key=trusted, commit=_settings().git_commit))
    for note in verdict.notes:
        warn(note)
    if not verdict.ok:
        for problem in verdict.problems:
            err.print(f"[bold red]failed:[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(FAILED)
    signed = "the signature holds, " if SIGNATURE in files else ""
    out.print(
        f"verified {path}: every file matches the manifest, {signed}{verdict.replayed} "
        "histories replay on the installed code, and the record says what they say"
    )


@audit.command()
def report(
    since: Annotated[
        str,
        typer.Option(
            "--from",
            help="Incidents declared at or after: an ISO date or time, or how long ago (90d).",
        ),
    ],
    until: Annotated[
        str | None,
        typer.Option(
            "--to", help="And before: an ISO date or time, or how long ago (default now)."
        ),
    ] = None,
    form: Annotated[
        ReportFormat, typer.Option("--format", help="md, csv or html.")
    ] = ReportFormat.MD,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write it to this file (default: print it).")
    ] = None,
) -> None:
    """Control evidence for a period: per incident, its deadlines met or missed and by how
    much, how its review was held, and what became of each action item; totals first."""
    start = _parse_time(since, "--from")
    assert start is not None
    end = _parse_time(until, "--to") or datetime.now(UTC)
    api = remote_api(_settings())
    if api is not None:
        params = {"from": start.isoformat(), "to": end.isoformat(), "format": form.value}
        text = run_remote(api, lambda: api.text("/api/audit/report", params=params))
    else:

        async def made(client: Client, settings: Settings) -> str:
            # It only reads: the policy and routing of new commands play no part.
            incidents = Incidents(client, task_queue=settings.task_queue, policy=default_policy())
            evidence = PeriodEvidence(incidents, ActionItems(client))
            return rendered(await evidence.report(start, end), form)

        text = _run_client(made)
    if out_path is None:
        sys.stdout.write(text)
        return
    try:
        out_path.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"--out {out_path}: cannot write it ({error.strerror})", 2)
    out.print(f"wrote {out_path}")


@audit.command("public-key")
def public_key_command() -> None:
    """Print the public key (PEM) that checks the bundles this deployment signs."""
    signer = _signer()
    if signer is None:
        fail(
            f"AFTERACTION_AUDIT_SIGNING_KEY is not set, so bundles are not signed; {GENERATE_HINT}"
            " and set AFTERACTION_AUDIT_SIGNING_KEY to its path",
            2,
        )
    sys.stdout.write(public_pem(signer.public_key()))
