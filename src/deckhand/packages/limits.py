"""The checks of PackageLimits (deckhand.package_limits): made from the zip's end record and
central directory before any member is inflated, so a small upload cannot make a reader
allocate gigabytes. The errors name the member, the limit and the flag that raises it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

from deckhand.package_limits import (
    DEFAULT_LIMITS,
    MEMBERS_FLAG,
    RATIO_FLAG,
    UNCOMPRESSED_FLAG,
    MiB,
    PackageLimits,
    env_var,
)
from deckhand.packages.errors import PackageError

__all__ = ["DEFAULT_LIMITS", "PackageLimitError", "PackageLimits", "check_directory", "check_members"]

# What the central directory may take per member allowed: its size is checked before
# zipfile parses it (parsing builds an object per entry, whatever count the end record claims).
DIRECTORY_BYTES_PER_MEMBER = 512


class PackageLimitError(PackageError):
    """A package is over one of the PackageLimits; the message names the member, the limit and its flag."""


def _over(path: Path, found: str, limit: str, flag: str) -> PackageLimitError:
    return PackageLimitError(
        f"{path}: too large: {found}, over the limit of {limit}; "
        f"if the package is trusted, raise the limit with {flag} (or {env_var(flag)})"
    )


def check_directory(path: Path, entries: int, directory_bytes: int, limits: PackageLimits) -> None:
    """Check the zip's end record, before zipfile parses the central directory it points to."""
    if entries > limits.max_members:
        raise _over(path, f"the package has {entries} members", f"{limits.max_members} members", MEMBERS_FLAG)
    budget = limits.max_members * DIRECTORY_BYTES_PER_MEMBER
    if directory_bytes > budget:
        raise _over(
            path,
            f"the zip's central directory takes {directory_bytes} bytes",
            f"{budget} bytes ({DIRECTORY_BYTES_PER_MEMBER} per member for {limits.max_members} members)",
            MEMBERS_FLAG,
        )


def check_members(path: Path, members: Sequence[zipfile.ZipInfo], limits: PackageLimits) -> None:
    """Check the declared sizes of every member. zipfile's reader stops at a member's declared
    size (then checks its CRC), so these sizes bound what reading the members inflates."""
    if len(members) > limits.max_members:
        raise _over(path, f"the package has {len(members)} members", f"{limits.max_members} members", MEMBERS_FLAG)
    total = 0
    for info in members:
        total += info.file_size
        if total > limits.max_uncompressed_bytes:
            raise _over(
                path,
                f"member {info.filename!r} ({info.file_size} bytes) brings the uncompressed size "
                f"to {total / MiB:.1f} MiB",
                f"{limits.max_uncompressed_bytes / MiB:g} MiB uncompressed",
                UNCOMPRESSED_FLAG,
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_min_bytes and ratio > limits.max_ratio:
            raise _over(
                path,
                f"member {info.filename!r} inflates {info.compress_size} bytes to {info.file_size} "
                f"(compression ratio {ratio:.0f}:1)",
                f"{limits.max_ratio}:1 for members over {limits.ratio_min_bytes} bytes",
                RATIO_FLAG,
            )
