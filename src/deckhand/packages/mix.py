"""Mixes: several model packages served as one deployment (champion, canary, challengers).

A mix file is an uncompressed (ZIP_STORED) zip holding `deckhand-mix.json` and the member
packages under `models/<modelId>.dhpkg` (docs/rollouts.md has the format). The agent writes
one when a deployment's traffic is split; plugins carry it as any model artifact; the
prediction server recognises it by content (`is_mix`), checks it (`read_mix`) and extracts
the members (`extract_members`) to load each as a package of its own.

Members are stored, not deflated, so nothing in the outer zip inflates: reading checks the
entry count, the names and every member's size from the central directory before any byte
is read, and each member, once extracted, is read as a package under the package limits.

`served_model_id` is shared with the control plane: whatever else changes, its rule must
not, or agents and the control plane disagree about what a deployment serves.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from deckhand.packages.container import _ZIP_MAGIC, _directory_size, atomic_write_bytes
from deckhand.packages.errors import PackageError
from deckhand.packages.limits import DEFAULT_LIMITS, PackageLimits

MIX_ID_PREFIX = "mix-"
MIX_NAME = "deckhand-mix.json"
MIX_FORMAT = "deckhand-mix/1"
MEMBERS_DIR = "models/"
ROLES = ("champion", "canary", "challenger")
MAX_CHALLENGERS = 5
MAX_ENTRIES = 1 + 2 + MAX_CHALLENGERS  # the JSON, champion, canary, challengers
MAX_MIX_JSON_BYTES = 1024**2
_DIRECTORY_BYTES_PER_ENTRY = 512
_CHUNK = 1 << 20
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
STICKY_KINDS = ("header", "field")
ALL_COPIED = 100.0  # the challengers' copy share when the deployment sets none: every request


def served_model_id(champion_id: str, traffic: dict[str, Any] | None) -> str:
    """The champion's id when it serves alone; otherwise "mix-" + 16 hex digits of the SHA-256
    of the canonical JSON of the champion and the traffic reduced to what routes requests
    (member ids, the canary's share, the sticky key, the association-id settings, the
    challengers' copy share), so that any change of these is a new id. A deployment with
    association ids serves a mix, even of its champion alone: the mix carries the settings to
    the prediction server on every platform."""
    association = (traffic or {}).get("associationId")
    if not traffic or (not traffic.get("canary") and not traffic.get("challengers") and not association):
        return champion_id
    canary = traffic.get("canary")
    reduced = {
        "canary": None if not canary else {"modelId": canary["modelId"], "percent": canary["percent"]},
        "challengers": sorted(
            ({"modelId": c["modelId"]} for c in traffic.get("challengers") or ()), key=lambda c: c["modelId"]
        ),
        "sticky": traffic.get("sticky"),
    }
    if association:  # only then: the ids of mixes without it stay what they were
        reduced["associationId"] = association
    copy_percent = traffic.get("challengerCopyPercent")
    if copy_percent is not None and float(copy_percent) != ALL_COPIED:  # likewise
        reduced["challengerCopyPercent"] = float(copy_percent)
    canonical = json.dumps({"champion": champion_id, "traffic": reduced}, sort_keys=True, separators=(",", ":"))
    return MIX_ID_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class MixMember:
    """One model of a mix. `source` is the package file to write (write_mix); in a Mix read
    back it is None and `path` is the member's name inside the mix."""

    model_id: str
    role: str  # champion | canary | challenger
    percent: int
    sha256: str
    source: Path | None = None

    @property
    def path(self) -> str:
        return f"{MEMBERS_DIR}{self.model_id}.dhpkg"


@dataclass(frozen=True)
class Mix:
    """A checked mix file: its members and sticky rule (None, {"header": h} or {"field": f})."""

    path: Path
    served_model_id: str
    members: tuple[MixMember, ...]
    sticky: dict[str, str] | None
    # {"column": name or None, "generate": bool}: the rows' association ids (docs/accuracy.md)
    association: dict[str, Any] | None = None
    copy_percent: float = ALL_COPIED  # the share of the champion's requests copied to the challengers

    @property
    def champion(self) -> MixMember:
        return next(m for m in self.members if m.role == "champion")

    @property
    def canary(self) -> MixMember | None:
        return next((m for m in self.members if m.role == "canary"), None)

    @property
    def challengers(self) -> list[MixMember]:
        return [m for m in self.members if m.role == "challenger"]


def write_mix(
    output: Path,
    served_model_id: str,
    members: list[MixMember],
    sticky: dict[str, str] | None,
    association: dict[str, Any] | None = None,
    copy_percent: float = ALL_COPIED,
) -> None:
    """Write a mix atomically (temp file beside `output`, fsync, rename). Member packages are
    streamed into the zip in chunks; members and sticky rule are checked as read_mix checks them."""
    output = Path(output)
    document = _document(served_model_id, members, sticky, association, copy_percent)
    _check_document(document, output)  # refuse to write what no server would read
    for member in members:
        if member.source is None:
            raise PackageError(f"write_mix: member {member.model_id!r} has no source package file")

    def _write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_entry(MIX_NAME), json.dumps(document, indent=2))
            for member in members:
                entry = _entry(member.path)
                with open(member.source, "rb") as src, archive.open(entry, "w", force_zip64=True) as dst:  # type: ignore[arg-type]
                    shutil.copyfileobj(src, dst, _CHUNK)

    atomic_write_bytes(output, _write)


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry with a fixed date: the same members give the same bytes, so two control
    plane replicas (or two racing downloads) build one mix with one checksum."""
    return zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))


def _document(
    served_model_id: str,
    members: list[MixMember],
    sticky: dict[str, str] | None,
    association: dict[str, Any] | None = None,
    copy_percent: float = ALL_COPIED,
) -> dict[str, Any]:
    document = {
        "format": MIX_FORMAT,
        "servedModelId": served_model_id,
        "members": [
            {"modelId": m.model_id, "role": m.role, "percent": m.percent, "path": m.path, "sha256": m.sha256}
            for m in members
        ],
        "sticky": sticky,
    }
    if association:
        document["associationId"] = association
    if copy_percent != ALL_COPIED:  # written only then: the bytes of other mixes stay as they were
        document["challengerCopyPercent"] = float(copy_percent)
    return document


def is_mix(path: Path) -> bool:
    """Whether `path` is a zip whose central directory names deckhand-mix.json (no member read)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != _ZIP_MAGIC:
                return False
        with zipfile.ZipFile(path) as archive:
            return MIX_NAME in archive.NameToInfo
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def read_mix(path: Path, limits: PackageLimits = DEFAULT_LIMITS) -> Mix:
    """Open and check a mix: the outer zip (entries, names, stored members within the package
    size limit), the JSON (one champion, at most one canary and MAX_CHALLENGERS challengers,
    shares that add up to 100, the sticky rule) and each member's sha256 (read in chunks).
    Any problem is a PackageError naming the field and what to do."""
    path = Path(path)
    archive = _open(path, limits)
    with archive:
        info = archive.NameToInfo[MIX_NAME]
        if info.file_size > MAX_MIX_JSON_BYTES:
            raise PackageError(
                f"{path}: {MIX_NAME} is {info.file_size} bytes, over {MAX_MIX_JSON_BYTES}; rebuild the mix"
            )
        try:
            document = json.loads(archive.read(MIX_NAME))
        except (ValueError, zipfile.BadZipFile) as exc:
            raise PackageError(f"{path}: {MIX_NAME} is not valid JSON ({exc}); rebuild the mix") from exc
        mix = _check_document(document, path)
        names = {i.filename for i in archive.infolist()} - {MIX_NAME}
        expected = {m.path for m in mix.members}
        if names != expected:
            raise PackageError(
                f"{path}: the mix holds {sorted(names)} but {MIX_NAME} lists {sorted(expected)}; rebuild the mix"
            )
        for member in mix.members:
            digest = hashlib.sha256()
            with archive.open(member.path) as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            if digest.hexdigest() != member.sha256:
                raise PackageError(
                    f"{path}: members[{member.model_id}].sha256 is {member.sha256} but the member hashes to "
                    f"{digest.hexdigest()}; the mix was altered or damaged, write it again"
                )
    return mix


def _open(path: Path, limits: PackageLimits) -> zipfile.ZipFile:
    """The mix's zip, after the checks its end record and central directory allow."""
    if not path.is_file():
        raise PackageError(f"{path}: no such mix file; check the path")
    with open(path, "rb") as handle:
        if handle.read(4) != _ZIP_MAGIC:
            raise PackageError(f"{path}: not a mix (not a zip file)")
        directory = _directory_size(handle)
    if directory is not None and (
        directory[0] > MAX_ENTRIES or directory[1] > MAX_ENTRIES * _DIRECTORY_BYTES_PER_ENTRY
    ):
        raise PackageError(
            f"{path}: the mix's zip has {directory[0]} entries ({directory[1]} directory bytes); "
            f"a mix holds {MIX_NAME} and at most {MAX_ENTRIES - 1} member packages"
        )
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise PackageError(f"{path}: truncated or not a zip ({exc}); write the mix again") from exc
    try:
        if MIX_NAME not in archive.NameToInfo:
            raise PackageError(f"{path}: not a mix: no {MIX_NAME} in the zip")
        for info in archive.infolist():
            _check_entry(path, info, limits)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_entry(path: Path, info: zipfile.ZipInfo, limits: PackageLimits) -> None:
    name = info.orig_filename
    member_id = name.removeprefix(MEMBERS_DIR).removesuffix(".dhpkg")
    if name != MIX_NAME and not (name == f"{MEMBERS_DIR}{member_id}.dhpkg" and _valid_id(member_id)):
        raise PackageError(
            f"{path}: unexpected entry {name!r} in the mix; "
            f"a mix holds {MIX_NAME} and {MEMBERS_DIR}<modelId>.dhpkg only"
        )
    if info.compress_type != zipfile.ZIP_STORED:
        raise PackageError(f"{path}: entry {name!r} is compressed; a mix stores its members uncompressed")
    if info.file_size > limits.max_uncompressed_bytes:
        raise PackageError(
            f"{path}: member {name!r} is {info.file_size} bytes, over the package limit of "
            f"{limits.max_uncompressed_bytes} bytes (--max-package-uncompressed-mb)"
        )


def _valid_id(model_id: Any) -> bool:
    return isinstance(model_id, str) and bool(_MODEL_ID.match(model_id)) and ".." not in model_id


def _check_document(document: Any, path: Path) -> Mix:
    """The Mix a deckhand-mix.json describes, or a PackageError naming the field at fault."""

    def bad(field: str, found: Any, expected: str) -> PackageError:
        return PackageError(f"{path}: {MIX_NAME}: {field} is {found!r}; expected {expected}")

    if not isinstance(document, dict):
        raise bad("the document", type(document).__name__, "a JSON object")
    if document.get("format") != MIX_FORMAT:
        raise bad("format", document.get("format"), f"{MIX_FORMAT!r} (a newer agent wrote it? upgrade the server)")
    served = document.get("servedModelId")
    if not isinstance(served, str) or not served:
        raise bad("servedModelId", served, "the deployment's served model id")
    raw_members = document.get("members")
    if not isinstance(raw_members, list) or not raw_members:
        raise bad("members", raw_members, "a non-empty list")
    members = []
    for index, raw in enumerate(raw_members):
        where = f"members[{index}]"
        if not isinstance(raw, dict):
            raise bad(where, raw, "an object with modelId, role, percent, path and sha256")
        model_id, role, percent, sha = raw.get("modelId"), raw.get("role"), raw.get("percent"), raw.get("sha256")
        if not _valid_id(model_id):
            raise bad(f"{where}.modelId", model_id, "an id of letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise bad(f"{where}.role", role, " | ".join(ROLES))
        if type(percent) is not int or not 0 <= percent <= 100:
            raise bad(f"{where}.percent", percent, "an integer from 0 to 100")
        if role == "challenger" and percent != 0:
            raise bad(f"{where}.percent", percent, "0 for a challenger (it answers no request)")
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise bad(f"{where}.sha256", sha, "64 lower-case hex digits")
        member = MixMember(str(model_id), role, percent, sha)
        if raw.get("path", member.path) != member.path:
            raise bad(f"{where}.path", raw.get("path"), repr(member.path))
        members.append(member)
    ids = [m.model_id for m in members]
    if len(set(ids)) != len(ids):
        raise bad("members[].modelId", ids, "each model once")
    roles = [m.role for m in members]
    if roles.count("champion") != 1:
        raise bad("members[].role", roles, "exactly one champion")
    if roles.count("canary") > 1:
        raise bad("members[].role", roles, "at most one canary")
    if roles.count("challenger") > MAX_CHALLENGERS:
        raise bad("members[].role", roles, f"at most {MAX_CHALLENGERS} challengers")
    share = sum(m.percent for m in members if m.role != "challenger")
    if share != 100:
        raise bad("members[].percent (champion + canary)", share, "a total of 100")
    sticky = document.get("sticky")
    if sticky is not None:
        if not (
            isinstance(sticky, dict)
            and len(sticky) == 1
            and next(iter(sticky)) in STICKY_KINDS
            and isinstance(next(iter(sticky.values())), str)
            and next(iter(sticky.values()))
        ):
            raise bad("sticky", sticky, 'null, {"header": "<name>"} or {"field": "<feature>"}')
        if "header" in sticky and sticky["header"] != sticky["header"].lower():
            raise bad("sticky.header", sticky["header"], "a lower-case header name")
    association = document.get("associationId")
    if association is not None:
        column, generate = (
            (association.get("column"), association.get("generate")) if isinstance(association, dict) else (None, None)
        )
        if (
            not isinstance(association, dict)
            or set(association) - {"column", "generate"}
            or not (column is None or (isinstance(column, str) and 0 < len(column) <= 200))
            or type(generate) is not bool
            or (column is None and not generate)
        ):
            raise bad("associationId", association, '{"column": "<request column>" or null, "generate": true or false}')
    copy_percent = document.get("challengerCopyPercent", ALL_COPIED)
    if type(copy_percent) not in (int, float) or not 0 < copy_percent <= ALL_COPIED:  # NaN fails too
        raise bad("challengerCopyPercent", copy_percent, "a number over 0 and at most 100 (the share copied)")
    return Mix(Path(path), served, tuple(members), sticky, association, float(copy_percent))


def extract_members(mix: Mix, directory: Path) -> dict[str, Path]:
    """Each member package as a file `<sha256>.dhpkg` in `directory` (model id -> path). A file
    already there is reused; a new one is copied in chunks to a temp file, hashed, and renamed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    archive: zipfile.ZipFile | None = None
    try:
        for member in mix.members:
            target = directory / f"{member.sha256}.dhpkg"
            if not target.is_file():
                archive = archive or zipfile.ZipFile(mix.path)
                _extract(archive, member, target, mix.path)
            out[member.model_id] = target
    finally:
        if archive is not None:
            archive.close()
    return out


def _extract(archive: zipfile.ZipFile, member: MixMember, target: Path, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, archive.open(member.path) as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != member.sha256:  # the mix changed since it was read
            raise PackageError(
                f"{path}: member {member.model_id!r} hashes to {digest.hexdigest()}, not {member.sha256}; "
                "the mix was replaced while it was read, load it again"
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
