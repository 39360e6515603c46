"""Every file augpipe writes goes through here: written beside its place, then renamed into it.

>>> write_atomic("run/config.yaml", text.encode())
>>> write_atomic("run/model.keras", model.save)       # a writer that takes the path it is given
>>> write_atomic("preview.png", png_bytes(picture))
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def png_bytes(picture: np.ndarray) -> bytes:
    """A uint8 RGB picture encoded as PNG; equal pictures give equal bytes."""
    # Imported on first use: store.py switches CURRENT through write_atomic and needs no OpenCV
    # (cv2 with numpy is about 120 ms of imports).
    import cv2

    ok, data = cv2.imencode(
        ".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    if not ok:
        raise ValueError(f"could not encode a picture of shape {picture.shape} as PNG")
    return data.tobytes()


def write_atomic(
    path: str | Path, data: bytes | Callable[[Path], object], *, make_parent: bool = True
) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place: readers never
    see a half-written file.

    data: the bytes, or a function that writes the file at the path it is given (``model.save``).
    make_parent: create the folder of ``path`` if it is missing; False where a missing folder means
    the write should fail (a discarded run's staging folder, renamed away under a late writer).
    Tests set AUGPIPE_TEST_DIE_AFTER_WRITES=N to have the process SIGKILL itself right after its
    N-th write: a kill between any two of the steps every file goes through.
    """
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    # The suffix repeated at the end: writers such as model.save and np.save check it.
    tmp = path.with_name(f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")
    try:
        if callable(data):
            data(tmp)
        else:
            # os.open, not mkstemp: the file gets the umask's permissions, not mkstemp's private 0600.
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
                f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    writes_left = os.environ.get("AUGPIPE_TEST_DIE_AFTER_WRITES", "")
    if writes_left == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    elif writes_left.isdigit() and int(writes_left) > 1:
        os.environ["AUGPIPE_TEST_DIE_AFTER_WRITES"] = str(int(writes_left) - 1)
    return path
