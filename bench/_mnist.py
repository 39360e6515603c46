"""Where the benchmarks find the canonical MNIST IDX files, and the one-line refusal when they are not
there: ``add_option(parser)``, then ``require(args.mnist)`` before any work starts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
FILES = (TRAIN_IMAGES, "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mnist", type=Path, default=DEFAULT, metavar="PATH",
        help="folder of the canonical MNIST IDX files (default: ../shared/data/mnist beside the checkout)",
    )  # fmt: skip


def require(folder: Path, names: tuple[str, ...] = FILES, hint: str = "") -> Path:
    """``folder`` if it holds every file of ``names``; otherwise one line on stderr and exit status 2.

    hint: what the caller can do without the files, appended to the line.
    """
    missing = [name for name in names if not (folder / name).is_file()]
    if not missing:
        return folder
    where = f"{folder.resolve()} does not exist" if not folder.exists() else f"{folder.resolve()} lacks "
    if folder.exists():
        where += ", ".join(missing)
    print(
        f"bench/{Path(sys.argv[0]).name}: needs the canonical MNIST IDX files ({', '.join(FILES)}), but "
        f"{where}: ../shared/data/mnist holds them in this workspace; give any other copy's folder with "
        f"--mnist PATH{hint}",
        file=sys.stderr,
    )
    raise SystemExit(2)
