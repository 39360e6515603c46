"""The layout of a prepared dataset folder, and the switch that makes a version the current one.

>>> current_version("prepared/digits")        # Path("prepared/digits/versions/v00003"), None if unprepared
>>> switch_current("prepared/digits", "v00004")

Layout of a prepared dataset folder::

    OUT/CURRENT                      name of the complete version to read (replaced atomically)
    OUT/versions/v00003/manifest.json, report.json
    OUT/versions/v00003/<split>/images-00000.npy ...   uint8 (n, H, W, C) shards, memory-mappable
    OUT/versions/v00003/<split>/labels.npy
    OUT/versions/.tmp-<run id>/      a version still being written by that preparation run

A version folder is complete before it is renamed to its name, and CURRENT is switched after: a
reader sees the old version or the new one, whole.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.io import write_atomic

CURRENT = "CURRENT"
VERSIONS = "versions"
UNFINISHED = ".tmp-"  # prefix of a version folder being written, followed by its run's id


def versions_dir(out: str | Path) -> Path:
    return Path(out) / VERSIONS


def version_dir(out: str | Path, name: str) -> Path:
    """The folder of version ``name`` (``v00003``), whether or not it exists."""
    return versions_dir(out) / name


def unfinished_dir(out: str | Path, run_id: str) -> Path:
    """Where the preparation run ``run_id`` writes its version before it is named."""
    return versions_dir(out) / f"{UNFINISHED}{run_id}"


def list_versions(out: str | Path) -> list[str]:
    """Names of the complete versions in ``out``, oldest first."""
    numbered = [(int(p.name[1:]), p.name) for p in versions_dir(out).glob("v[0-9]*") if p.name[1:].isdigit()]
    return [name for _, name in sorted(numbered)]


def next_version_name(out: str | Path) -> str:
    """The name after the newest version's: ``v00001`` in an empty folder."""
    numbers = [int(name[1:]) for name in list_versions(out)]
    return f"v{max(numbers, default=0) + 1:05d}"


def current_version(out: str | Path) -> Path | None:
    """The folder of the version CURRENT names, or None when ``out`` holds no prepared dataset."""
    pointer = Path(out) / CURRENT
    if not pointer.exists():
        return None
    return version_dir(out, pointer.read_text().strip())


def switch_current(out: str | Path, name: str) -> Path:
    """Make version ``name`` the current one, in one rename; returns its folder."""
    write_atomic(Path(out) / CURRENT, f"{name}\n".encode())
    return version_dir(out, name)
