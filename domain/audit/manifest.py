"""The bundle's manifest: the SHA-256 of every file and the code that wrote them.

A bundle is a set of files by relative path (`Files`); the manifest lists every one but itself
and its signature, so changing, adding or removing any byte of any file is found and named.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, Field

FORMAT: Final = "afteraction-audit/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_FILES = 10_000  # an incident of 100 items that each continued as new a hundred times
PATH_CHARS = 500

Files = Mapping[str, bytes]


def _relative(path: str) -> str:
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{path[:80]!r} is not a plain relative path inside the bundle")
    return path


BundlePath = Annotated[str, Field(min_length=1, max_length=PATH_CHARS), AfterValidator(_relative)]


class CodeVersion(BaseModel):
    afteraction: str = Field(max_length=100, description="the installed package's version")
    commit: str | None = Field(
        default=None, max_length=100, description="the git commit, where it was known"
    )
    temporalio: str = Field(max_length=100, description="the Temporal SDK that replays")


class FileDigest(BaseModel):
    path: BundlePath
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(BaseModel):
    format: Literal["afteraction-audit/1"] = FORMAT
    incident_key: str = Field(max_length=100)
    exported_at: datetime
    code_version: CodeVersion
    signing_key: str | None = Field(
        default=None,
        max_length=100,
        description="the Ed25519 public key that signed manifest.sig (raw, base64), if signed",
    )
    files: list[FileDigest] = Field(max_length=MAX_FILES)

    def encoded(self) -> bytes:
        """The manifest's bytes as written and signed: the same manifest, the same bytes."""
        text = json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)
        return (text + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests(files: Files) -> list[FileDigest]:
    return [
        FileDigest(path=path, sha256=sha256(data), bytes=len(data))
        for path, data in sorted(files.items())
        if path not in (MANIFEST, SIGNATURE)
    ]


def file_problems(manifest: Manifest, files: Files) -> list[str]:
    """Every file that differs from what the manifest says of it, by name."""
    problems = []
    listed = {entry.path for entry in manifest.files}
    for entry in manifest.files:
        data = files.get(entry.path)
        if data is None:
            problems.append(f"{entry.path}: listed in the manifest, missing from the bundle")
        elif sha256(data) != entry.sha256:
            problems.append(
                f"{entry.path}: changed since export (SHA-256 {sha256(data)}, the manifest says "
                f"{entry.sha256})"
            )
    for path in sorted(set(files) - listed - {MANIFEST, SIGNATURE}):
        problems.append(f"{path}: not in the manifest (added after export)")
    return problems
