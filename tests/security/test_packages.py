"""Reading a model package is bounded and refuses unsafe members before inflating anything:
zip bombs, headers that lie about sizes, too many members and unsafe member names are
refused by read_manifest, load_model, `deckhand package inspect` and the control plane's
upload (a real `deckhand server` process keeps its memory while refusing a bomb).

Every hostile package carries a payload sha256 that is right for its payload as zipfile
presents it, so only the checks of names and limits can refuse it."""

from __future__ import annotations

import json
import secrets
import stat
import struct
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from tests.security.conftest import BOMB_NAME, zeros_member
from typer.testing import CliRunner

from deckhand.cli.app import build_app
from deckhand.client import ControlPlaneClient, ControlPlaneError
from deckhand.package_limits import MiB, PackageLimits
from deckhand.packages import PackageError, load_model, read_manifest
from deckhand.packages.container import MANIFEST_NAME, PAYLOAD_DIR, payload_digest, read_package, write_package
from deckhand.packages.limits import PackageLimitError
from deckhand.server.app import create_app
from deckhand.server.settings import ServerSettings
from deckhand.server.testing import ServerProcess
from deckhand.testing import peak_rss_mib, reset_peak_rss, rss_mib

URL = "/api/v1/model-packages"
OCTET = {"Content-Type": "application/octet-stream"}
TOKEN = "dh_" + secrets.token_urlsafe(32)
EVIL = b"import os  # would run at load time\n"

Member = tuple[str | zipfile.ZipInfo, bytes]


# -- building hostile packages --------------------------------------------------------


def _name(member: str | zipfile.ZipInfo) -> str:
    return member.filename if isinstance(member, zipfile.ZipInfo) else zipfile.ZipInfo(member).filename


def _with_members(demo: Path, path: Path, extra: list[Member]) -> Path:
    """The demo package plus `extra`, its payload sha256 right for the payload/ files as zipfile
    presents them (names cut at a NUL, the last of duplicates wins). zipfile cannot write a NUL
    in a name, so such names are written with '_' and patched."""
    with zipfile.ZipFile(demo) as src:
        manifest = json.loads(src.read(MANIFEST_NAME))
        members: list[Member] = [(i.filename, src.read(i)) for i in src.infolist() if i.filename != MANIFEST_NAME]
    members += extra
    payload = {
        _name(m)[len(PAYLOAD_DIR) :]: data
        for m, data in members
        if _name(m).startswith(PAYLOAD_DIR) and not _name(m).endswith("/")
    }
    manifest["payload_sha256"] = payload_digest(payload.items())
    nul_names = [m for m, _ in extra if isinstance(m, str) and "\0" in m]
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        archive.writestr(MANIFEST_NAME, json.dumps(manifest))
        for member, data in members:
            archive.writestr(member.replace("\0", "_") if isinstance(member, str) else member, data)
    raw = path.read_bytes()
    for name in nul_names:
        raw = raw.replace(name.replace("\0", "_").encode(), name.encode())
    path.write_bytes(raw)
    return path


def _central_entry(data: bytes, name: str) -> int:
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        (length,) = struct.unpack_from("<H", data, pos + 28)
        if data[pos + 46 : pos + 46 + length] == name.encode():
            return pos
        pos = data.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{name} not in the central directory")


def _declare(path: Path, name: str, size: int, crc: int | None = None) -> None:
    """Make the local header and the central directory say that `name` inflates to `size`."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo(name).header_offset
    central = _central_entry(bytes(data), name)
    struct.pack_into("<L", data, local + 22, size)
    struct.pack_into("<L", data, central + 24, size)
    if crc is not None:
        struct.pack_into("<L", data, local + 14, crc)
        struct.pack_into("<L", data, central + 16, crc)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = ServerSettings(data_dir=tmp_path_factory.mktemp("cp") / "data", bootstrap_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client


def _inspect(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(build_app(), ["package", "inspect", *args], env=env, catch_exceptions=False)


def _refused_quickly(read: Callable[..., object], path: Path, limits: PackageLimits | None = None) -> str:
    """The PackageLimitError's message; refusing must not take the time inflating would."""
    args = (path,) if limits is None else (path, limits)
    start = time.monotonic()
    with pytest.raises(PackageLimitError) as err:
        read(*args)
    assert time.monotonic() - start < 1.0, "refused only after inflating"
    return str(err.value)


# -- bombs ------------------------------------------------------------------------------


@pytest.mark.slow
def test_inflation_bomb_is_refused_from_the_central_directory(bomb: Path) -> None:
    assert bomb.stat().st_size < 2 * MiB
    for read in (read_manifest, load_model):
        message = _refused_quickly(read, bomb)
        assert repr(BOMB_NAME) in message and "compression ratio" in message
        assert "--max-package-ratio" in message and "DECKHAND_MAX_PACKAGE_RATIO" in message
    result = _inspect(str(bomb))
    assert result.exit_code == 1 and "--max-package-ratio" in result.output


@pytest.mark.slow
def test_total_uncompressed_size_is_capped(bomb: Path) -> None:
    limits = PackageLimits(max_ratio=100_000, max_uncompressed_bytes=512 * MiB)
    message = _refused_quickly(read_manifest, bomb, limits)
    assert repr(BOMB_NAME) in message and "512 MiB uncompressed" in message
    assert "--max-package-uncompressed-mb" in message and "DECKHAND_MAX_PACKAGE_UNCOMPRESSED_MB" in message
    # the same through the flags, and through their environment variables
    result = _inspect(str(bomb), "--max-package-ratio", "100000", "--max-package-uncompressed-mb", "512")
    assert result.exit_code == 1 and "--max-package-uncompressed-mb" in result.output
    env = {"DECKHAND_MAX_PACKAGE_RATIO": "100000", "DECKHAND_MAX_PACKAGE_UNCOMPRESSED_MB": "512"}
    result = _inspect(str(bomb), env=env)
    assert result.exit_code == 1 and "512 MiB uncompressed" in result.output


def test_header_declaring_more_than_the_limits_is_refused_before_reading(demo_package: Path, tmp_path: Path) -> None:
    path = _with_members(demo_package, tmp_path / "p.dhpkg", [("payload/small.bin", bytes(1000))])
    _declare(path, "payload/small.bin", 2 * 1024**3)  # claims 2 GiB from a few bytes
    message = _refused_quickly(read_manifest, path)
    assert "'payload/small.bin'" in message and "--max-package-ratio" in message


def test_header_declaring_less_than_it_holds_inflates_only_what_it_declares(demo_package: Path, tmp_path: Path) -> None:
    """zipfile stops at the declared size and then checks the CRC: the declared sizes, which
    the limits bound, bound what is inflated however long the compressed stream is."""
    short = _with_members(demo_package, tmp_path / "short.dhpkg", [(BOMB_NAME, bytes(1000))])
    with zipfile.ZipFile(short) as archive:
        crc = archive.getinfo(BOMB_NAME).CRC
    path = tmp_path / "long.dhpkg"  # the same package, but 64 MiB of zeros behind the 1000 bytes
    with zipfile.ZipFile(short) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename != BOMB_NAME:
                dst.writestr(item, src.read(item))
        zeros_member(dst, BOMB_NAME, 64 * MiB)

    _declare(path, BOMB_NAME, 1000)  # the CRC is still that of 64 MiB of zeros
    start = time.monotonic()
    with pytest.raises(PackageError, match=r"corrupt: member 'payload/zeros.bin' cannot be read \(Bad CRC-32"):
        read_manifest(path)
    assert time.monotonic() - start < 1.0

    _declare(path, BOMB_NAME, 1000, crc=crc)  # a CRC that fits the first 1000 bytes: only those come out
    start = time.monotonic()
    _, files = read_package(path)
    assert files["zeros.bin"] == bytes(1000) and time.monotonic() - start < 1.0
    assert read_manifest(path).payload_sha256


def test_too_many_members_are_refused_from_the_end_record(demo_package: Path, tmp_path: Path) -> None:
    extra: list[Member] = [(f"payload/f{i:05d}", b"x") for i in range(10_001)]
    path = _with_members(demo_package, tmp_path / "many.dhpkg", extra)
    message = _refused_quickly(read_manifest, path)
    assert "10003 members" in message and "--max-package-members" in message
    result = _inspect(str(path))
    assert result.exit_code == 1 and "DECKHAND_MAX_PACKAGE_MEMBERS" in result.output

    # an end record that understates the count: the members parsed, or the directory's size, refuse it
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)
    path.write_bytes(bytes(data))
    assert "10003 members" in _refused_quickly(read_manifest, path)
    message = _refused_quickly(read_manifest, path, PackageLimits(max_members=100))
    assert "central directory takes" in message and "--max-package-members" in message


def test_oversized_manifest_is_refused_before_parsing(demo_package: Path) -> None:
    message = _refused_quickly(read_manifest, demo_package, PackageLimits(max_manifest_bytes=100))
    assert "manifest.json is" in message and "limit of 100 bytes" in message


# -- unsafe member names ----------------------------------------------------------------


def _symlink(name: str, target: bytes) -> Member:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


UNSAFE: dict[str, list[Member]] = {
    "parent-dir": [("../evil.py", EVIL)],
    "parent-dir-in-payload": [("payload/../../evil.py", EVIL)],
    "absolute": [("/tmp/evil.py", EVIL)],
    "backslash": [("payload\\..\\..\\evil.py", EVIL)],
    "drive-letter": [("payload/C:evil.py", EVIL)],
    "nul-byte": [("payload/evil.py\0.txt", EVIL)],
    "dot-part": [("payload/./evil.py", EVIL)],
    "outside-payload": [("extra/evil.py", EVIL)],
    "symlink": [_symlink("payload/passwd", b"/etc/passwd")],
    "duplicate": [("payload/model.joblib", EVIL)],
    "file-used-as-directory": [("payload/model.joblib/evil.py", EVIL)],
    "deep-nesting": [("payload/" + "d/" * 600 + "evil.py", EVIL)],
}


@pytest.fixture(params=list(UNSAFE), ids=list(UNSAFE))
def unsafe(request: pytest.FixtureRequest, demo_package: Path, tmp_path: Path) -> tuple[Path, str]:
    """A package with one unsafe member, and that member's name as the error shows it."""
    extra = UNSAFE[request.param]
    name = extra[0][0] if isinstance(extra[0][0], str) else extra[0][0].filename
    return _with_members(demo_package, tmp_path / "unsafe.dhpkg", extra), repr(name)


def test_unsafe_members_are_refused_by_read_and_load(unsafe: tuple[Path, str]) -> None:
    path, shown = unsafe
    for read in (read_manifest, load_model):
        with pytest.raises(PackageError) as err:
            read(path)
        assert "unsafe member" in str(err.value) and shown in str(err.value)


def test_unsafe_members_are_refused_by_package_inspect(unsafe: tuple[Path, str]) -> None:
    path, shown = unsafe
    result = _inspect(str(path))
    assert result.exit_code == 1, result.output
    assert "unsafe member" in result.output and shown in result.output


def test_unsafe_members_are_refused_by_the_control_plane(unsafe: tuple[Path, str], api: TestClient) -> None:
    path, shown = unsafe
    response = api.post(URL, content=path.read_bytes(), headers=OCTET)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "unsafe member" in detail and shown in detail
    assert str(path.parent) not in detail
    assert api.get(URL).json() == []


def test_packages_with_unsafe_names_cannot_be_built(demo_package: Path, tmp_path: Path) -> None:
    manifest = read_manifest(demo_package)
    for name in ("../evil.py", "C:evil.py", "sub\\evil.py"):
        with pytest.raises(PackageError, match="unsafe member name"):
            write_package(tmp_path / "p.dhpkg", manifest, {name: EVIL})
    assert list(tmp_path.iterdir()) == []


# -- the control plane --------------------------------------------------------------------


def test_control_plane_applies_its_package_limits(demo_package: Path, tmp_path: Path) -> None:
    settings = ServerSettings(
        data_dir=tmp_path / "data", bootstrap_token=TOKEN, package_limits=PackageLimits(max_members=1)
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        response = client.post(URL, content=demo_package.read_bytes(), headers=OCTET)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("body: not a valid model package: upload: too large: the package has 2 members")
    assert "--max-package-members" in detail and "DECKHAND_MAX_PACKAGE_MEMBERS" in detail


def test_server_flags_set_the_package_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import deckhand.listener
    import deckhand.server.app

    seen: list[ServerSettings] = []
    monkeypatch.setattr(deckhand.server.app, "create_app", lambda settings: seen.append(settings))
    monkeypatch.setattr(deckhand.listener, "serve", lambda *args, **kwargs: None)
    argv = ["server", "--data-dir", str(tmp_path), "--max-package-uncompressed-mb", "64", "--max-package-ratio", "7"]
    result = CliRunner().invoke(build_app(), argv, env={"DECKHAND_MAX_PACKAGE_MEMBERS": "9"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    limits = seen[0].package_limits
    assert (limits.max_uncompressed_bytes, limits.max_ratio, limits.max_members) == (64 * MiB, 7, 9)


@pytest.mark.slow
def test_real_control_plane_refuses_a_bomb_in_bounded_memory(bomb: Path, demo_package: Path, tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", bootstrap_token=TOKEN) as server:
        client = ControlPlaneClient(server.url, TOKEN)
        client.upload_package(demo_package)  # warm-up: the upload path's imports are done
        idle = rss_mib(server.pid)
        reset_peak_rss(server.pid)
        start = time.monotonic()
        with pytest.raises(ControlPlaneError) as err:
            client.upload_package(bomb)
        elapsed = time.monotonic() - start
        peak = peak_rss_mib(server.pid)
        assert len(client.list_packages()) == 1
    print(f"\nbomb upload: idle RSS {idle:.1f} MiB, peak RSS {peak:.1f} MiB, {elapsed:.2f} s")
    assert err.value.status_code == 400, err.value
    assert repr(BOMB_NAME) in err.value.message and "--max-package-ratio" in err.value.message
    assert elapsed < 5.0
    assert peak - idle < 100


# -- a normal package -------------------------------------------------------------------


def test_normal_package_inspects_uploads_and_loads_within_tight_limits(demo_package: Path, tmp_path: Path) -> None:
    flags = ["--max-package-uncompressed-mb", "1", "--max-package-ratio", "10", "--max-package-members", "2"]
    result = _inspect(str(demo_package), *flags)
    assert result.exit_code == 0, result.output
    assert "payload sha256" in result.output

    tight = PackageLimits(max_uncompressed_bytes=MiB, max_ratio=10, max_members=2)
    settings = ServerSettings(data_dir=tmp_path / "data", bootstrap_token=TOKEN, package_limits=tight)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        response = client.post(URL, content=demo_package.read_bytes(), headers=OCTET)
    assert response.status_code == 201, response.text

    model = load_model(demo_package, tight)
    try:
        assert model.manifest == read_manifest(demo_package, tight)
    finally:
        model.close()
