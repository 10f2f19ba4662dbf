"""The mix file: written, recognised, read back and checked; members extracted once."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from deckhand.packages import PackageError, file_sha256
from deckhand.packages.mix import MIX_NAME, MixMember, extract_members, is_mix, read_mix, write_mix


def _members(a: Path, b: Path) -> list[MixMember]:
    return [
        MixMember("model-a", "champion", 80, file_sha256(a), a),
        MixMember("model-b", "canary", 20, file_sha256(b), b),
        MixMember("model-c", "challenger", 0, file_sha256(b), b),
    ]


def test_round_trip(demo_package: Path, second_package: Path, tmp_path: Path) -> None:
    path = tmp_path / "deployment.artifact"  # recognised by content, whatever its name
    write_mix(path, "mix-0123456789abcdef", _members(demo_package, second_package), {"header": "x-customer-id"})
    assert is_mix(path) and not is_mix(demo_package) and not is_mix(tmp_path / "missing")
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    mix = read_mix(path)
    assert mix.served_model_id == "mix-0123456789abcdef" and mix.sticky == {"header": "x-customer-id"}
    assert (mix.champion.model_id, mix.champion.percent) == ("model-a", 80)
    assert mix.canary is not None and (mix.canary.model_id, mix.canary.percent) == ("model-b", 20)
    assert [c.model_id for c in mix.challengers] == ["model-c"]

    paths = extract_members(mix, tmp_path / "members")
    assert paths["model-a"].read_bytes() == demo_package.read_bytes()
    assert paths["model-b"] == paths["model-c"]  # one file per package (sha256)
    before = paths["model-a"].stat().st_mtime_ns
    assert extract_members(mix, tmp_path / "members") == paths
    assert paths["model-a"].stat().st_mtime_ns == before  # reused, not written again


def test_the_copy_share_is_written_only_under_100_and_read_back(
    demo_package: Path, second_package: Path, tmp_path: Path
) -> None:
    every, share = tmp_path / "every.dhpkg", tmp_path / "share.dhpkg"
    write_mix(every, "mix-x", _members(demo_package, second_package), None)
    write_mix(share, "mix-x", _members(demo_package, second_package), None, copy_percent=2.5)
    with zipfile.ZipFile(every) as archive:
        assert "challengerCopyPercent" not in json.loads(archive.read(MIX_NAME))  # the bytes of before
    with zipfile.ZipFile(share) as archive:
        assert json.loads(archive.read(MIX_NAME))["challengerCopyPercent"] == 2.5
    assert (read_mix(every).copy_percent, read_mix(share).copy_percent) == (100.0, 2.5)
    with pytest.raises(PackageError, match="challengerCopyPercent is 0"):  # refused as read_mix would
        write_mix(tmp_path / "none.dhpkg", "mix-x", _members(demo_package, second_package), None, copy_percent=0)


def _rewrite(path: Path, out: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the mix at `path` whose deckhand-mix.json went through `change`."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == MIX_NAME:
                document = json.loads(data)
                change(document)
                data = json.dumps(document).encode()
            dst.writestr(info.filename, data)
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["members"][1].update(role="champion"), "exactly one champion"),
        (lambda d: d["members"][1].update(percent=30), "a total of 100"),
        (lambda d: d["members"][1].update(percent=120), "members[1].percent"),
        (lambda d: d["members"][2].update(percent=5), "0 for a challenger"),
        (lambda d: d["members"][0].update(sha256="0" * 64), "members[model-a].sha256"),
        (lambda d: d.update(sticky={"cookie": "id"}), "sticky"),
        (lambda d: d.update(sticky={"header": "X-Customer"}), "lower-case"),
        (lambda d: d.update(format="deckhand-mix/9"), "upgrade the server"),
        (lambda d: d["members"].pop(), "lists"),
        (lambda d: d.update(challengerCopyPercent=0), "challengerCopyPercent is 0; expected a number over 0"),
        (lambda d: d.update(challengerCopyPercent=100.5), "challengerCopyPercent is 100.5"),
        (lambda d: d.update(challengerCopyPercent="25"), "challengerCopyPercent is '25'"),
        (lambda d: d.update(challengerCopyPercent=True), "challengerCopyPercent is True"),
        (lambda d: d.update(challengerCopyPercent=float("nan")), "challengerCopyPercent is nan"),
    ],
)
def test_a_bad_mix_is_refused_naming_the_field(
    demo_package: Path,
    second_package: Path,
    tmp_path: Path,
    change,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    good = tmp_path / "good.dhpkg"
    write_mix(good, "mix-x", _members(demo_package, second_package), None)
    bad = _rewrite(good, tmp_path / "bad.dhpkg", change)
    with pytest.raises(PackageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_mix(bad)


def test_too_many_challengers_and_unsafe_entries_are_refused(demo_package: Path, tmp_path: Path) -> None:
    sha = file_sha256(demo_package)
    members = [MixMember("champ", "champion", 100, sha, demo_package)]
    members += [MixMember(f"c{i}", "challenger", 0, sha, demo_package) for i in range(6)]
    with pytest.raises(PackageError, match="at most 5 challengers"):
        write_mix(tmp_path / "six.dhpkg", "mix-x", members, None)

    unsafe = tmp_path / "unsafe.dhpkg"
    write_mix(unsafe, "mix-x", members[:1], None)
    with zipfile.ZipFile(unsafe, "a") as archive:
        archive.writestr("../evil.sh", b"x")
    with pytest.raises(PackageError, match="unexpected entry '../evil.sh'"):
        read_mix(unsafe)

    deflated = tmp_path / "deflated.dhpkg"
    with zipfile.ZipFile(unsafe) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist()[:2]:
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(PackageError, match="compressed"):
        read_mix(deflated)
