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

# Their own panel in --help, with short metavars and the environment variables in the
# command's epilog: at 80 columns the long flag names leave room for little else.
PANEL = "Package limits"
ENV_HELP = (
    "The package limits may also be set in the environment: "
    + ", ".join(env_var(flag) for flag in (UNCOMPRESSED_FLAG, RATIO_FLAG, MEMBERS_FLAG))
    + "."
)

MaxPackageUncompressedMb = Annotated[
    int,
    typer.Option(
        UNCOMPRESSED_FLAG,
        envvar=env_var(UNCOMPRESSED_FLAG),
        min=1,
        metavar="N",
        help="Largest total uncompressed size of a model package, MiB (checked before inflating anything).",
        show_envvar=False,
        rich_help_panel=PANEL,
    ),
]
MaxPackageRatio = Annotated[
    int,
    typer.Option(
        RATIO_FLAG,
        envvar=env_var(RATIO_FLAG),
        min=1,
        metavar="N",
        help=f"Largest compression ratio of a package member over {DEFAULT_LIMITS.ratio_min_bytes // MiB} MiB.",
        show_envvar=False,
        rich_help_panel=PANEL,
    ),
]
MaxPackageMembers = Annotated[
    int,
    typer.Option(
        MEMBERS_FLAG,
        envvar=env_var(MEMBERS_FLAG),
        min=1,
        metavar="N",
        help="Most files a model package may hold.",
        show_envvar=False,
        rich_help_panel=PANEL,
    ),
]

MAX_PACKAGE_UNCOMPRESSED_MB = DEFAULT_LIMITS.max_uncompressed_bytes // MiB
MAX_PACKAGE_RATIO = DEFAULT_LIMITS.max_ratio
MAX_PACKAGE_MEMBERS = DEFAULT_LIMITS.max_members


def package_limits(uncompressed_mb: int, ratio: int, members: int) -> PackageLimits:
    """The limits as the flags give them (the size in MiB)."""
    return PackageLimits(max_uncompressed_bytes=uncompressed_mb * MiB, max_ratio=ratio, max_members=members)
