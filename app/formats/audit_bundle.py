"""An audit bundle on disk: a folder, or a `.zip` whose bytes depend only on its files.

A zip's entries are sorted, stamped 1980-01-01 00:00 (the earliest time a zip can hold) and
given the same permissions, so the same files always make the same zip, and its SHA-256 can be
compared with another export's. Reading is bounded, so a crafted zip cannot fill the memory.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from domain.audit.manifest import MAX_FILES

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
READ_LIMIT = 1024 * 1024 * 1024  # all files of a bundle together, uncompressed


class BundleError(Exception):
    """A bundle that cannot be read or written; the message names the path and what to do."""


def is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


def zip_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever system wrote it
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[path])
    return out.getvalue()


def write_bundle(files: dict[str, bytes], out: Path) -> None:
    """Write the bundle as a zip (a path ending .zip) or into a new folder."""
    try:
        if is_zip(out):
            out.write_bytes(zip_bytes(files))
            return
        if out.exists() and any(out.iterdir()):
            raise BundleError(f"{out} is a folder that is not empty; give a new folder or a .zip")
        for path, data in files.items():
            target = out.joinpath(*path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    except OSError as error:
        raise BundleError(f"{out}: cannot write the bundle ({error.strerror})") from None


def _checked(count: int, total: int, where: Path) -> None:
    if count > MAX_FILES + 2 or total > READ_LIMIT:
        raise BundleError(
            f"{where} holds more than an audit bundle can ({MAX_FILES} files, "
            f"{READ_LIMIT // 1024**3} GiB): it is not a bundle afteraction wrote"
        )


def unzipped(source: Path | io.BytesIO, where: Path) -> dict[str, bytes]:
    """Every file of a zip (`where` names it in errors)."""
    with zipfile.ZipFile(source) as archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        _checked(len(entries), sum(info.file_size for info in entries), where)
        return {info.filename: archive.read(info) for info in entries}


def read_bundle(where: Path) -> dict[str, bytes]:
    """Every file of a bundle folder or zip, by its path in the bundle."""
    try:
        if where.is_dir():
            return _read_folder(where)
        return unzipped(where, where)
    except zipfile.BadZipFile:
        raise BundleError(f"{where} is neither a bundle folder nor a zip") from None
    except FileNotFoundError:
        raise BundleError(f"{where}: no such file or folder") from None
    except OSError as error:
        raise BundleError(f"{where}: cannot read the bundle ({error.strerror})") from None


def _read_folder(where: Path) -> dict[str, bytes]:
    paths = [path for path in sorted(where.rglob("*")) if not path.is_dir()]
    _checked(len(paths), sum(path.lstat().st_size for path in paths), where)
    files = {}
    for path in paths:
        if path.is_symlink():
            raise BundleError(f"{path} is a link; a bundle holds only files")
        files[path.relative_to(where).as_posix()] = path.read_bytes()
    return files
