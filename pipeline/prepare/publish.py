"""Moving a finished version into place under the next free number, then making it the current one."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from pipeline.prepare.records import RunDirs
from pipeline.store import next_version_name, switch_current, version_dir


def publish(run: RunDirs, tmp: Path, manifest: dict[str, Any]) -> Path:
    """Move the finished version in ``tmp`` to the next free ``versions/vNNNNN``, then switch CURRENT.

    A finalize running beside this one may take that number first: the rename then fails (a version
    folder is never empty) and the next number is tried, so that neither run loses its version.
    """
    while True:
        name = next_version_name(run.out)
        if manifest["version"] != name:
            manifest["version"] = name
            (tmp / "manifest.json").write_bytes(compact_json(manifest))
        try:
            os.rename(tmp, version_dir(run.out, name))
            break
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    return switch_current(run.out, name)  # readers see the old or the new version, whole


def compact_json(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":"))``, by orjson (installed with Prefect) where it can.

    orjson writes a 70,000-file manifest in a tenth of the time. It writes non-ASCII text as UTF-8
    where json escapes it; such text goes to json, so that manifests stay ASCII for every reader.
    """
    try:
        import orjson

        data: bytes | None = orjson.dumps(value)
    except (ImportError, TypeError):  # no orjson, or a value that only json takes
        data = None
    if data is None or not data.isascii():
        data = json.dumps(value, separators=(",", ":")).encode()
    return data
