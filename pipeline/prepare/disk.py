"""A full disk, said as such and naming the folder being written."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class DiskFullError(OSError):
    """Writing failed for want of space (errno ENOSPC) or quota (EDQUOT); the message names the folder
    being written, without the "[Errno 28]" prefix."""

    def __str__(self) -> str:
        return str(self.strerror)


# numpy's message for a short write (array.tofile), which carries no errno: a full disk, in practice.
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


@contextmanager
def naming_a_full_disk(folder: Path) -> Iterator[None]:
    """Turn a full disk's errors ("[Errno 28] ...", numpy's "1572864 requested and 515968 written")
    into one DiskFullError that says so and names ``folder``."""
    try:
        yield
    except OSError as err:
        quota = err.errno == getattr(errno, "EDQUOT", None)
        if err.errno == errno.ENOSPC or quota or (err.errno is None and _SHORT_WRITE.search(str(err))):
            what = "disk quota exceeded" if quota else "disk full"
            code = errno.EDQUOT if quota else errno.ENOSPC
            raise DiskFullError(code, f"{what} while writing {folder}") from err
        raise
