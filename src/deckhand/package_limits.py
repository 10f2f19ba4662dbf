"""What reading one model package may inflate: the defaults, and the flags that change them.

`deckhand server`, `deckhand serve` and `deckhand package inspect` take the same flags (and
environment variables); deckhand.packages.limits checks the limits and names the flags in its
errors. Standard library only, so the CLI and the settings can import it at start-up without
loading deckhand.packages.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024**2

UNCOMPRESSED_FLAG = "--max-package-uncompressed-mb"
RATIO_FLAG = "--max-package-ratio"
MEMBERS_FLAG = "--max-package-members"


def env_var(flag: str) -> str:
    """The environment variable that sets the same limit as `flag`."""
    return "DECKHAND_" + flag.removeprefix("--").upper().replace("-", "_")


@dataclass(frozen=True)
class PackageLimits:
    """What reading one package may inflate; every field is checked before any member is read."""

    # load_model holds the whole payload in memory; the control plane accepts uploads of this size too.
    max_uncompressed_bytes: int = 4 * 1024**3
    # Model weights compress a few times at most; far beyond that is a bomb.
    max_ratio: int = 200
    # Members up to this size may compress as well as they like (JSON, text, a small tree).
    ratio_min_bytes: int = MiB
    max_members: int = 10_000
    # The manifest is parsed whole; it holds metadata and a training summary only.
    max_manifest_bytes: int = 64 * MiB


DEFAULT_LIMITS = PackageLimits()
