"""CLI flags for the package-reading limits that `deckhand server`, `deckhand serve` and
`deckhand package inspect` share (deckhand.packages.limits names them in its errors)."""

from __future__ import annotations

from typing import Annotated

import typer

from deckhand.package_limits import (
    DEFAULT_LIMITS,
    MEMBERS_FLAG,
    RATIO_FLAG,
    UNCOMPRESSED_FLAG,
    MiB,
    PackageLimits,
    env_var,
)

MaxPackageUncompressedMb = Annotated[
    int,
    typer.Option(
        UNCOMPRESSED_FLAG,
        envvar=env_var(UNCOMPRESSED_FLAG),
        min=1,
        help="Largest total uncompressed size of a model package, MiB (checked before inflating anything).",
    ),
]
MaxPackageRatio = Annotated[
    int,
    typer.Option(
        RATIO_FLAG,
        envvar=env_var(RATIO_FLAG),
        min=1,
        help=f"Largest compression ratio of a package member over {DEFAULT_LIMITS.ratio_min_bytes // MiB} MiB.",
    ),
]
MaxPackageMembers = Annotated[
    int,
    typer.Option(MEMBERS_FLAG, envvar=env_var(MEMBERS_FLAG), min=1, help="Most files a model package may hold."),
]

MAX_PACKAGE_UNCOMPRESSED_MB = DEFAULT_LIMITS.max_uncompressed_bytes // MiB
MAX_PACKAGE_RATIO = DEFAULT_LIMITS.max_ratio
MAX_PACKAGE_MEMBERS = DEFAULT_LIMITS.max_members


def package_limits(uncompressed_mb: int, ratio: int, members: int) -> PackageLimits:
    """The limits as the flags give them (the size in MiB)."""
    return PackageLimits(max_uncompressed_bytes=uncompressed_mb * MiB, max_ratio=ratio, max_members=members)
