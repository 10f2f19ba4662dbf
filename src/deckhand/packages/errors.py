"""The one error a package operation raises; its message names the problem and the fix."""

from __future__ import annotations


class PackageError(Exception):
    """A package could not be built, read or loaded.

    The message starts with the file and says which problem it is (no such file,
    unknown format, truncated, corrupt, checksum mismatch, or a builder/loader problem).
    """
