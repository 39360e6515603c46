"""Paths a studio request may name: only inside the folders it was given, symlinks resolved first."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import AugpipeError


class PathRefused(AugpipeError, PermissionError):
    """A request named a path outside the folders the studio may read; the message says which folder."""


def inside(root: Path, relative: str) -> Path:
    """``root / relative`` with every symlink and ``..`` resolved, if it stays inside ``root``.

    Absolute paths, ``..`` that climbs out and links that point out are all refused the same way: the
    check is on the resolved path, whatever the request spelled.
    """
    base = root.resolve()
    if "\x00" in relative:
        raise PathRefused(f"path refused: NUL in {relative[:80]!r}")
    target = (base / relative).resolve()
    if target != base and not target.is_relative_to(base):
        raise PathRefused(f"path refused: {relative[:200]!r} is outside {base}")
    return target
