"""Where images come from: class folders, CSV manifests and the Keras dataset cache (array sources as
parts with their splits: :mod:`pipeline.ingest.arrays`)."""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import importlib
import os
import stat
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TextIO

import numpy as np

from pipeline.errors import ConfigError, DataError
from pipeline.ingest.decode import file_extension, not_regular
from pipeline.ingest.formats import GIVEN_SPLIT_NAMES, IMAGE_EXTENSIONS
from pipeline.ingest.idx import load_idx_dataset


class KerasFile(NamedTuple):
    """A file that keras.datasets.<name>.load_data() fetches with keras.utils.get_file, as it calls it."""

    fname: str
    origin: str  # Keras's URL for it
    sha256: str | None  # the hash Keras pins (it pins none for Fashion-MNIST)
    cache_subdir: str = "datasets"
    extract: bool = False

    @property
    def cached(self) -> str:
        """Where get_file keeps it, under the Keras home folder."""
        return f"{self.cache_subdir}/{self.fname}{'_archive' if self.extract else ''}"


# Copied from keras/src/datasets/*.py (Keras 3), which keep them inside load_data: all of a dataset's
# files in the cache with these hashes means load_data stays offline.
_KERAS_STORAGE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
KERAS_FILES: dict[str, tuple[KerasFile, ...]] = {
    "mnist": (
        KerasFile(
            "mnist.npz",
            f"{_KERAS_STORAGE}mnist.npz",
            "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
        ),
    ),
    "fashion_mnist": tuple(
        KerasFile(name, f"{_KERAS_STORAGE}{name}", None, "datasets/fashion-mnist")
        for name in (
            "train-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
        )
    ),
    "cifar10": (
        KerasFile(
            "cifar-10-batches-py-target",
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            extract=True,
        ),
    ),
    "cifar100": (
        KerasFile(
            "cifar-100-python-target",
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
            extract=True,
        ),
    ),
}
# A folder (URL) holding the files of KERAS_FILES under the names their origins end with, for machines
# that cannot reach Keras's servers; the hashes Keras pins are checked all the same.
KERAS_DATASETS_URL_ENV = "AUGPIPE_KERAS_DATASETS_URL"


@dataclass(frozen=True)
class Sample:
    """One image file and its labels (one for single-label data, several for multi-label), and the
    split the source puts it in (train, validation or test), if the source gives splits."""

    path: str
    labels: tuple[str, ...]
    split: str | None = None


class Skipped(NamedTuple):
    """Something under a class-folder root that a scan leaves out, and why.

    ``path`` is relative to the root; a folder's ends with a separator, and ``*.txt`` stands for every
    file of that extension. ``reason`` is a code (symlink_not_followed, symlink_loop, dangling_symlink,
    unreadable_folder, unreadable, not_a_regular_file, not_in_a_class_folder, no_images,
    not_a_split_folder, not_an_image_extension); ``message`` says it in words and never quotes a
    file's content.
    """

    path: str
    reason: str
    message: str


class FolderScan(NamedTuple):
    """What a class-folder tree holds: (class, its image paths sorted) by class, and what was left out.

    ``split_folders``: when the root's folders are split folders (train/, val/, test/, in any case),
    each one's name and the split it gives; the classes are then the folders below them, and a
    class holds its images of every split.
    """

    classes: list[tuple[str, list[str]]]
    skipped: list[Skipped]
    split_folders: dict[str, str] = {}

    def split_of(self, relative: str) -> str | None:
        """The split a file gives by its path relative to the root, or None without split folders."""
        return self.split_folders.get(relative.split(os.sep, 1)[0]) if self.split_folders else None


# Files of other extensions (notes, CSVs, .DS_Store) are common beside images: listing each would bury
# what matters, so each extension is summed up in one entry, with its count and its first few names.
_EXAMPLES = 3


class _Walk:
    """One scan of a class-folder tree: the image files found, and everything left out with its reason.

    os.scandir's entries know their type from the listing itself, so a regular file or a folder costs
    no stat call (an lstat per file to spot links was as costly as the rest of the scan); symlinks,
    FIFOs, sockets and devices are rare and may cost one. Following links, each folder costs a stat, to
    find a link that leads back to a folder it is in.
    """

    def __init__(self, root: str, follow_links: bool) -> None:
        self.cut = len(os.path.join(root, ""))
        self.follow_links = follow_links
        self.skipped: list[Skipped] = []
        self.other_counts: dict[str, int] = {}  # extension -> files left out
        self.other_names: dict[str, list[str]] = {}  # extension -> its first few files, by name
        self.top: dict[tuple[int, int], str] = {}  # (device, inode) -> path of the root, when following
        if follow_links:
            info = os.stat(root)
            self.top[info.st_dev, info.st_ino] = root

    def skip(self, path: str, reason: str, message: str) -> None:
        self.skipped.append(Skipped(path[self.cut :], reason, message))

    def other(self, path: str, ext: str) -> None:
        self.other_counts[ext] = self.other_counts.get(ext, 0) + 1
        names = self.other_names.setdefault(ext, [])
        names.append(path[self.cut :])
        if len(names) > _EXAMPLES:
            names.sort()
            names.pop()

    def place(self, entry: os.DirEntry[str], files: list[str], folders: list[str]) -> None:
        """Put an entry in ``files`` (an image file) or ``folders``, or list why it is left out."""
        if entry.is_file(follow_symlinks=False):  # a regular file, from the listing: the common case
            ext = file_extension(entry.name)
            if ext in IMAGE_EXTENSIONS:
                files.append(entry.path)
            else:
                self.other(entry.path, ext)
        elif entry.is_dir(follow_symlinks=False):
            folders.append(entry.path)
        else:
            self._place_odd(entry, files, folders)

    def _place_odd(self, entry: os.DirEntry[str], files: list[str], folders: list[str]) -> None:
        link = entry.is_symlink()
        if link and not self.follow_links:
            self.skip(entry.path, "symlink_not_followed", "symlink not followed (follow_links is off)")
            return
        try:
            mode = entry.stat(follow_symlinks=link).st_mode  # a link's target
        except OSError as err:
            self.skip(entry.path, *_stat_problem(err, link))
            return
        ext = file_extension(entry.name)
        if stat.S_ISDIR(mode):
            folders.append(entry.path)
        elif ext not in IMAGE_EXTENSIONS:
            self.other(entry.path, ext)
        elif stat.S_ISREG(mode):
            files.append(entry.path)
        else:  # a FIFO would block the read, a device might never end: named from the stat, never opened
            self.skip(entry.path, "not_a_regular_file", not_regular(mode) or "")

    def above(self, folder: str) -> dict[tuple[int, int], str]:
        """The folders that ``folder`` is in, and itself, when following links (to spot a link back)."""
        if not self.follow_links:
            return self.top
        info = os.stat(folder)
        return {**self.top, (info.st_dev, info.st_ino): folder}

    def images(self, folder: str, above: dict[tuple[int, int], str] | None = None) -> list[str] | None:
        """Image paths at any depth under folder, unsorted; None when folder itself cannot be read.
        ``above``: the folders it is in (the root by default), when following links."""
        found: list[str] = []
        pending = [(folder, self.top if above is None else above)]
        while pending:
            path, above = pending.pop()
            if self.follow_links:
                try:
                    info = os.stat(path)
                except OSError as err:
                    self.skip(path + os.sep, "unreadable_folder", f"unreadable folder: {err.strerror}")
                    continue
                key = (info.st_dev, info.st_ino)
                if key in above:
                    back = above[key][self.cut :]
                    where = f"the folder {back}{os.sep}" if back else "the root folder"
                    self.skip(path, "symlink_loop", f"symlink loop: leads back to {where}")
                    if path == folder:
                        return None
                    continue
                above = {**above, key: path}
            folders: list[str] = []
            try:
                with os.scandir(path) as entries:
                    for entry in entries:
                        self.place(entry, found, folders)
            except OSError as err:
                self.skip(path + os.sep, "unreadable_folder", f"unreadable folder: {err.strerror}")
                if path == folder:
                    return None
            pending += [(sub, above) for sub in folders]
        return found

    def left_out(self) -> list[Skipped]:
        """Everything listed as left out, by path, then one entry per extension of the other files."""
        summary = []
        for ext in sorted(self.other_counts):
            count, names = self.other_counts[ext], sorted(self.other_names[ext])
            more = f" and {count - len(names)} more" if count > len(names) else ""
            kind = f"{ext!r} is not an image extension" if ext else "no extension"
            summary.append(Skipped(
                f"*{ext}" if ext else "*(no extension)", "not_an_image_extension",
                f"{count} file{'s' if count > 1 else ''} left out, {kind}: {', '.join(names)}{more}",
            ))  # fmt: skip
        return sorted(self.skipped) + summary


def _stat_problem(err: OSError, link: bool) -> tuple[str, str]:
    if link and err.errno == errno.ELOOP:
        return "symlink_loop", "symlink loop: its target leads back to itself"
    if link and err.errno == errno.ENOENT:
        return "dangling_symlink", "dangling symlink: its target does not exist"
    return "unreadable", f"unreadable: {err.strerror}"


def scan_folders(root: str | os.PathLike[str], follow_links: bool = False) -> FolderScan:
    """The class folders under root and their image files, and every file, folder and symlink left out.

    Files in nested subfolders belong to their first-level folder; extensions are case-insensitive.
    When the first-level folders are split folders (train, val, valid, validation, test, in any
    case), they give the splits, and the classes are the folders below them (their union: a class
    may lack images in a split); some split folders beside other folders are refused (DataError).
    Left out, each listed with its reason: symlinks (unless follow_links; then loops and dangling ones),
    unreadable folders, class folders without images, FIFOs, sockets and devices, image files beside
    the class folders; files of other extensions are summed up per extension.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"class-folder root {os.fspath(root)!r} does not exist or is not a folder")
    top = os.fspath(root)
    walk = _Walk(top, follow_links)
    loose: list[str] = []
    class_dirs: list[str] = []
    with os.scandir(top) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            walk.place(entry, loose, class_dirs)
    split_folders = _split_folders(top, [os.path.basename(folder) for folder in class_dirs])
    if not split_folders:
        by_class = _class_images(walk, top, loose, class_dirs, None)
        classes = sorted(by_class.items())
    else:
        for path in loose:
            walk.skip(
                path, "not_in_a_class_folder", "image file beside the split folders, not in a class folder"
            )
        for folder in class_dirs:
            if os.path.basename(folder) not in split_folders:  # hidden: .ipynb_checkpoints, .cache
                walk.skip(folder + os.sep, "not_a_split_folder", "hidden folder beside the split folders")
        class_dirs = [folder for folder in class_dirs if os.path.basename(folder) in split_folders]
        by_class = {}
        for folder in class_dirs:
            try:
                above = walk.above(folder)
                inner_loose: list[str] = []
                inner_dirs: list[str] = []
                with os.scandir(folder) as entries:
                    for entry in sorted(entries, key=lambda e: e.name):
                        walk.place(entry, inner_loose, inner_dirs)
            except OSError as err:
                walk.skip(folder + os.sep, "unreadable_folder", f"unreadable folder: {err.strerror}")
                continue
            for name, paths in _class_images(walk, folder, inner_loose, inner_dirs, above).items():
                by_class.setdefault(name, []).extend(paths)
        classes = [(name, sorted(paths)) for name, paths in sorted(by_class.items())]
    if not classes:
        where = f" in the split folders {', '.join(sorted(split_folders))}" if split_folders else ""
        raise DataError(
            f"no images under {os.fspath(root)!r}{where} in {len(class_dirs)} class folders; "
            f"looked for extensions {sorted(IMAGE_EXTENSIONS)}"
        )
    return FolderScan(classes, walk.left_out(), split_folders)


def _split_folders(root: str, names: list[str]) -> dict[str, str]:
    """The split each of ``names`` (the root's folders) gives, when they are split folders; {} when
    none is. Some split folders beside other folders, or two folders for one split, are refused."""
    given = {name: GIVEN_SPLIT_NAMES[name.lower()] for name in names if name.lower() in GIVEN_SPLIT_NAMES}
    if not given:
        return {}
    accepted = ", ".join(f"{name}/" for name in GIVEN_SPLIT_NAMES)
    others = [name for name in names if name not in given and not name.startswith(".")]
    if others:
        shown = ", ".join(f"{name}/" for name in others[:_LISTED])
        more = f" and {len(others) - _LISTED} more" if len(others) > _LISTED else ""
        raise DataError(
            f"{root!r} holds the split folders {', '.join(f'{name}/' for name in given)} beside the folders "
            f"{shown}{more}: either every folder there is a split folder ({accepted}, any case) holding "
            "class folders, or every folder there is a class folder; move or rename the others"
        )
    for split in set(given.values()):
        folders = [name for name, s in given.items() if s == split]
        if len(folders) > 1:
            raise DataError(
                f"{root!r} holds {' and '.join(f'{name}/' for name in folders)}, which all give the "
                f"{split} split: keep one of them"
            )
    return given


def _class_images(
    walk: _Walk,
    folder: str,
    loose: list[str],
    class_dirs: list[str],
    above: dict[tuple[int, int], str] | None,
) -> dict[str, list[str]]:
    """The image paths (sorted) of each class folder of ``folder`` that holds images; loose image
    files beside the class folders, and class folders without images, are listed as left out."""
    for path in loose:
        walk.skip(path, "not_in_a_class_folder", "image file beside the class folders, not in one")
    found = {}
    for class_dir in class_dirs:
        paths = walk.images(class_dir, above)
        if paths:
            found[os.path.basename(class_dir)] = sorted(paths)
        elif paths is not None:
            walk.skip(class_dir + os.sep, "no_images", "class folder holds no image files")
    return found


def class_folder_files(
    root: str | os.PathLike[str], follow_links: bool = False
) -> list[tuple[str, list[str]]]:
    """(class, its image paths sorted) for each first-level folder of root that holds images, by class.

    Files in nested subfolders belong to their first-level folder; extensions are case-insensitive.
    scan_folders also says what was left out.
    """
    return scan_folders(root, follow_links).classes


def scan_class_folders(root: str | os.PathLike[str], follow_links: bool = False) -> list[Sample]:
    """One Sample per image under root/<class>/..., class = first-level folder, sorted by class then path;
    under split folders (root/train/<class>/..., see scan_folders), each Sample has its split.

    Files in nested subfolders belong to their class folder; extensions are case-insensitive.
    """
    found = scan_folders(root, follow_links)
    cut = len(os.path.join(os.fspath(root), ""))
    return [
        Sample(path, (name,), found.split_of(path[cut:])) for name, paths in found.classes for path in paths
    ]


# How many rows or label sets one message lists before it says how many more there are: a manifest
# that repeats one file a million times still gets a one-line message.
_LISTED = 10


@dataclass(frozen=True)
class LeftOutRows:
    """Rows of a manifest that name one file and are not used: ``reason`` is empty_label,
    conflicting_labels or conflicting_splits (the file is left out) or duplicate_rows (the file is
    used once, from its first row); ``message`` names the manifest, the rows and the labels."""

    path: str
    reason: str
    message: str


@dataclass(frozen=True)
class Manifest:
    """What a CSV manifest lists: the files to use with their labels, and the rows left out; with a
    split column, the split each file is given (train, validation or test)."""

    root: str  # the manifest's folder, resolved
    labels: dict[str, tuple[str, ...]]  # resolved path -> its labels, in the order of first rows
    left_out: list[LeftOutRows]
    splits: dict[str, str] = field(default_factory=dict)  # resolved path -> its split; {} without a column

    @property
    def samples(self) -> list[Sample]:
        return [Sample(path, labels, self.splits.get(path)) for path, labels in self.labels.items()]

    def key(self, path: str) -> str:
        """``path`` relative to the manifest's folder (starting with ``..`` if it is outside it)."""
        prefix = self.root.rstrip(os.sep) + os.sep  # os.path.join(root, ""), in a third of the time
        return path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, self.root)


def read_manifest(
    csv_path: str | os.PathLike[str],
    path_column: str = "path",
    label_column: str = "label",
    label_separator: str = " ",
    allow_outside_root: bool = False,
    split_column: str = "split",
) -> Manifest:
    """The files a CSV manifest lists and their labels; relative paths are resolved against its folder.

    The manifest is UTF-8 (a BOM is accepted) with the columns ``path_column`` and ``label_column``,
    and optionally ``split_column``, in any order. A split cell names the file's split: train, val,
    valid, validation or test, in any case (anything else, or nothing, raises DataError naming the
    row); a file whose rows name different splits is left out. A label cell holding several labels
    separated by ``label_separator`` (any whitespace for " ") makes a multi-label file; labels are
    sorted. Rows are grouped by the file they name, after resolving ``.``, ``..`` and symlinks: a file
    with no label or with different labels in its rows is left out, and rows that repeat one are
    listed (see LeftOutRows). Absolute paths and paths that leave the folder are refused unless
    allow_outside_root, so that a shared manifest cannot make the pipeline read arbitrary files.
    Anything else wrong (columns, a row's field count, a NUL, bytes that are not UTF-8, a field
    over csv's size limit, no rows) raises DataError naming the manifest and the row or line.
    """
    name = os.fspath(csv_path)
    root = os.path.realpath(os.path.dirname(os.path.abspath(name)))
    inside = os.path.join(root, "")
    resolve = _resolver(root)
    files: dict[str, tuple[str, ...]] = {}  # resolved path -> labels of its first row
    first_rows = array("L")  # the row of each file of ``files``, in the same order
    repeats: dict[str, list[int]] = {}  # path -> its rows after the first (up to _LISTED of them)
    repeat_count: dict[str, int] = {}
    conflicts: dict[str, list[tuple[str, ...]]] = {}  # path -> its distinct labels (up to _LISTED + 1)
    given: dict[str, str] = {}  # path -> the split of its first row, with a split column
    split_conflicts: dict[str, list[str]] = {}  # path -> the distinct splits of its rows
    outside: list[str] = []
    outside_count = 0
    parsed: dict[str, tuple[str, ...]] = {}  # label cell -> labels: one tuple per distinct cell
    number = 0  # the row being read, counted as a spreadsheet shows them: the header is row 1
    try:
        with _open_manifest(name) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            number = 1
            path_at, label_at, split_at, width = _manifest_columns(
                name, header, path_column, label_column, split_column
            )
            for number, row in enumerate(reader, start=2):  # number: read by the except clauses
                if len(row) != width:
                    if not row:
                        continue  # a blank line
                    hint = ": quote a path or label that holds a comma" if len(row) > width else ""
                    raise DataError(
                        f"manifest {name!r} row {number} has {len(row)} field{'s' * (len(row) > 1)} but "
                        f"its header has {width}{hint}"
                    )
                raw = row[path_at].strip()
                cell = row[label_at]
                if not raw:
                    raise DataError(f"manifest {name!r} row {number} has an empty {path_column!r}")
                if "\0" in raw or "\0" in cell:
                    raise DataError(
                        f"manifest {name!r} row {number} holds a NUL character: is it a text file?"
                    )
                labels = parsed.get(cell)
                if labels is None:
                    labels = parsed[cell] = _split_labels(cell, label_separator)
                split = None if split_at is None else _given_split(name, number, split_column, row[split_at])
                path = resolve(raw)
                if not allow_outside_root and (not path.startswith(inside) or raw.startswith(os.sep)):
                    outside_count += 1
                    if outside_count <= _LISTED:
                        outside.append(f"row {number}: {_shorten(raw)}")
                    continue
                seen = files.get(path)
                if seen is None:
                    files[path] = labels
                    first_rows.append(number)
                    if split is not None:
                        given[path] = split
                    continue
                count = repeat_count[path] = repeat_count.get(path, 0) + 1
                if count <= _LISTED:
                    repeats.setdefault(path, []).append(number)
                if labels != seen:
                    distinct = conflicts.setdefault(path, [seen])
                    if labels not in distinct and len(distinct) <= _LISTED:
                        distinct.append(labels)
                if split is not None and split != given[path]:
                    splits = split_conflicts.setdefault(path, [given[path]])
                    if split not in splits:
                        splits.append(split)
    except UnicodeDecodeError:
        raise DataError(f"manifest {name!r} is not UTF-8 at {_undecodable(name)}: save it as UTF-8") from None
    except csv.Error as err:
        if str(err).startswith("field larger than field limit"):
            problem = (
                f"has a field over {csv.field_size_limit():,} characters, the most a field may hold "
                "(an unclosed quote makes one field of the rest of the file)"
            )
        else:
            problem = f"is not valid CSV: {err}"
        raise DataError(f"manifest {name!r} row {number + 1} {problem}") from None
    if outside_count:
        more = f"; and {outside_count - _LISTED} more" if outside_count > _LISTED else ""
        raise DataError(
            f"manifest {name!r} has {outside_count} path{'s' * (outside_count > 1)} outside its folder "
            f"{root!r} (--allow-outside-root, or allow_outside_root=True, accepts them): "
            f"{'; '.join(outside)}{more}"
        )
    if not files:
        raise DataError(f"manifest {name!r} has no rows under its header")
    if not (repeats or any(not labels for labels in parsed.values())):
        return Manifest(root, files, [], given)  # the common case: every file once, with labels
    kept: dict[str, tuple[str, ...]] = {}
    left_out: list[LeftOutRows] = []
    for first, (path, labels) in zip(first_rows, files.items(), strict=True):
        rows = _rows_text(first, repeats.get(path, []), repeat_count.get(path, 0))
        if path in conflicts:
            shown = ", ".join(repr(label_separator.join(labs)) for labs in conflicts[path][:_LISTED])
            more = " and others" if len(conflicts[path]) > _LISTED else ""
            left_out.append(LeftOutRows(
                path, "conflicting_labels", f"{name} {rows} give it different labels: {shown}{more}"
            ))  # fmt: skip
        elif path in split_conflicts:
            left_out.append(LeftOutRows(
                path, "conflicting_splits",
                f"{name} {rows} put it in different splits: {', '.join(split_conflicts[path])}",
            ))  # fmt: skip
        elif not labels:
            left_out.append(LeftOutRows(path, "empty_label", f"{name} {rows}: the {label_column!r} is empty"))
        else:
            kept[path] = labels
            if path in repeats:
                again = _rows_text(None, repeats[path], repeat_count[path])
                left_out.append(LeftOutRows(
                    path, "duplicate_rows", f"{name} {again} repeat row {first}: the file is used once"
                ))  # fmt: skip
    return Manifest(root, kept, left_out, {path: given[path] for path in kept} if given else {})


def _open_manifest(name: str) -> TextIO:
    """The manifest opened for csv.reader; something else than a file is refused without a read,
    which on a FIFO named .csv would wait forever."""
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once this way
    try:
        problem = not_regular(os.fstat(fd).st_mode)
        if problem:
            raise DataError(f"manifest {name!r} is {problem}")
        os.set_blocking(fd, True)
        return open(fd, newline="", encoding="utf-8-sig")
    except BaseException:
        os.close(fd)
        raise


def _manifest_columns(
    name: str, header: list[str] | None, path_column: str, label_column: str, split_column: str
) -> tuple[int, int, int | None, int]:
    """Where the path, label and split (None: no such column) columns are in a manifest's header row,
    and how many columns it has."""
    if header is None:
        raise DataError(
            f"manifest {name!r} is empty: expected a header row with the columns "
            f"{path_column!r} and {label_column!r}"
        )
    columns = [c.strip() for c in header]
    missing = [c for c in (path_column, label_column) if c not in columns]
    if missing:
        raise DataError(f"manifest {name!r} header row lacks columns {missing}; found columns {columns}")
    twice = sorted({c for c in columns if columns.count(c) > 1})
    unknown = [c for c in columns if c not in (path_column, label_column, split_column)]
    if twice or unknown:
        what = f"names {twice} twice" if twice else f"has the unknown columns {unknown}"
        raise DataError(
            f"manifest {name!r} header row {what}: a manifest has exactly the columns "
            f"{path_column!r} and {label_column!r}, and optionally {split_column!r}"
        )
    split_at = columns.index(split_column) if split_column in columns else None
    return columns.index(path_column), columns.index(label_column), split_at, len(columns)


def _given_split(name: str, number: int, column: str, cell: str) -> str:
    """The split a manifest's split cell names (``val`` gives validation), or DataError naming the row."""
    split = GIVEN_SPLIT_NAMES.get(cell.strip().lower())
    if split is None:
        got = f"an empty {column!r}" if not cell.strip() else f"the {column!r} {_shorten(cell.strip())!r}"
        raise DataError(
            f"manifest {name!r} row {number} has {got}; accepted: {', '.join(GIVEN_SPLIT_NAMES)} (any case)"
        )
    return split


def _split_labels(cell: str, separator: str) -> tuple[str, ...]:
    parts = cell.split() if separator == " " else [part.strip() for part in cell.split(separator)]
    return tuple(sorted(set(parts) - {""}))


def _resolver(root: str) -> Callable[[str], str]:
    """os.path.realpath(os.path.join(root, path)) for a manifest's paths, each folder resolved and listed
    once: realpath makes a system call for every part of the whole path (a million rows took 30 s),
    and a folder's listing tells which of its files are symlinks, to resolve too, without a stat each."""
    folders: dict[str, tuple[str, frozenset[str] | None]] = {}
    join, islink, realpath, sep = os.path.join, os.path.islink, os.path.realpath, os.sep

    def resolve(raw: str) -> str:
        cut = raw.rfind(sep) + 1
        name = raw[cut:]
        if name in ("", ".", ".."):
            return realpath(join(root, raw))
        known = folders.get(raw[:cut])
        if known is None:
            real = realpath(join(root, raw[:cut]))
            known = folders[raw[:cut]] = (join(real, ""), _symlinks_in(real))
        prefix, links = known
        if links is None:  # a folder that cannot be listed
            return realpath(prefix + name) if islink(prefix + name) else prefix + name
        return realpath(prefix + name) if name in links else prefix + name

    return resolve


def _symlinks_in(folder: str) -> frozenset[str] | None:
    """The names of the symlinks in a folder, from its listing; None if it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(entry.name for entry in entries if entry.is_symlink())
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()  # no folder: no file in it, and no link
    except OSError:
        return None


def _rows_text(first: int | None, later: list[int], count: int) -> str:
    """A file's rows as "rows 2, 7 and 3 more": its first row, later rows listed, how many later rows."""
    rows = ([first] if first is not None else []) + later
    more = f" and {count - len(later):,} more" if count > len(later) else ""
    return f"row{'s' if len(rows) > 1 or more else ''} {', '.join(map(str, rows))}{more}"


def _undecodable(name: str) -> str:
    """Where a manifest stops being UTF-8, found by reading it again as bytes (on this error only)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(name, "rb") as f:
        while piece := f.readline(1 << 16):  # bounded: a file may have no line breaks
            try:
                decoder.decode(piece)
            except UnicodeDecodeError as err:
                return f"line {line} (byte 0x{err.object[err.start]:02x})"
            line += piece.endswith(b"\n")
    return "its end (a character cut short)"


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text):,} characters)"


def _check_keras_home(home: Path) -> None:
    """Refuse to call Keras's load_data when Keras, imported earlier, caches elsewhere than ``home``
    (KERAS_HOME changed since): it would download into its own cache what is in ``home`` already."""
    config = sys.modules.get("keras.src.backend.config")
    theirs = getattr(config, "keras_home", None)
    if theirs is not None and Path(theirs()).resolve() != home.resolve():
        raise ConfigError(
            f"Keras was imported with its cache in {theirs()}, but KERAS_HOME now names {home}: set "
            "KERAS_HOME before anything imports Keras (e.g. in the environment of the process)"
        )


def keras_home() -> Path:
    """The folder Keras 3 caches into (``datasets/`` below it), found as keras.utils.get_file finds it,
    without importing Keras."""
    if "KERAS_HOME" in os.environ:
        base = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        # Keras's get_file falls back to /tmp/.keras when the base is not writable.
        base = os.path.join("/tmp", ".keras")
    return Path(base)


def keras_datasets_dir() -> Path:
    """The folder keras.datasets caches into."""
    return keras_home() / "datasets"


def keras_file_url(file: KerasFile) -> str:
    """Where ``file`` is downloaded from: the folder that AUGPIPE_KERAS_DATASETS_URL names, else Keras's."""
    mirror = os.environ.get(KERAS_DATASETS_URL_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{file.origin.rsplit('/', 1)[1]}" if mirror else file.origin


def _keras_files(name: str) -> tuple[KerasFile, ...]:
    if name not in KERAS_FILES:
        raise ConfigError(f"unknown Keras dataset {name!r}; expected one of {sorted(KERAS_FILES)}")
    return KERAS_FILES[name]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _matches_pin(path: Path, file: KerasFile) -> bool:
    return file.sha256 is None or _sha256(path) == file.sha256


def fetch_keras_dataset(name: str) -> None:
    """Download the files of keras.datasets.<name> that Keras's cache lacks (or holds damaged), with
    keras.utils.get_file, from AUGPIPE_KERAS_DATASETS_URL if set, else from Keras's servers.

    A file whose sha256 is not the one Keras pins raises DataError and is not kept; a failed download
    raises ConnectionError.
    """
    home = keras_home()
    for file in _keras_files(name):
        path = home / file.cached
        if not (path.is_file() and _matches_pin(path, file)):
            _download(home, file)


def _download(home: Path, file: KerasFile) -> None:
    from keras.utils import get_file  # imports TensorFlow: only when there is something to download

    url = keras_file_url(file)
    target = home / file.cached
    try:
        get_file(
            file.fname, origin=url, file_hash=file.sha256, cache_subdir=file.cache_subdir,
            cache_dir=os.fspath(home), extract=file.extract, force_download=True,
        )  # fmt: skip
    except BaseException as err:
        # get_file leaves a file that fails its hash in the cache, where it would be taken next time.
        actual = _sha256(target) if file.sha256 is not None and target.is_file() else None
        if actual is not None and actual != file.sha256:
            target.unlink()
            mirror = os.environ.get(KERAS_DATASETS_URL_ENV)
            source = f"the mirror {KERAS_DATASETS_URL_ENV}={mirror!r}" if mirror else "the server"
            raise DataError(
                f"{url} is not the {file.fname} Keras expects: its sha256 is {actual}, but Keras pins "
                f"{file.sha256}; it was not kept in {target.parent}. Check that {source} serves Keras's "
                "original files"
            ) from None
        if isinstance(err, Exception) and not target.is_file():  # HTTP or URL errors, a bad URL
            raise ConnectionError(f"downloading {url} into {target.parent} failed: {err}") from err
        raise


def load_keras_dataset(
    name: str, allow_download: bool = False
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """keras.datasets.<name>.load_data() from Keras's cache, images as (N, H, W, C), labels as int64 (N,).

    A dataset not cached raises FileNotFoundError, rather than fetch tens of megabytes unasked;
    allow_download fetches it first (see fetch_keras_dataset).
    """
    files = _keras_files(name)
    if allow_download:
        fetch_keras_dataset(name)
    home = keras_home()
    missing = [file for file in files if not (home / file.cached).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Keras dataset {name!r} is not cached in {home / 'datasets'}; download it with --download on "
            "the command line (download=True in PrepareConfig, allow_download=True to load_keras_dataset), "
            f"from {KERAS_DATASETS_URL_ENV} if set, else from Keras's servers "
            f"(missing: {', '.join(file.cached.removeprefix('datasets/') for file in missing)})"
        )
    damaged = [file for file in files if not _matches_pin(home / file.cached, file)]
    if damaged:
        raise DataError(
            f"Keras dataset {name!r}: {', '.join(os.fspath(home / f.cached) for f in damaged)} does not have "
            "the sha256 Keras pins; download it again with --download on the command line "
            "(download=True in PrepareConfig)"
        )
    if name == "mnist":
        # Read here as load_data reads it: load_data would check the hash again, and on a mismatch
        # download the file from Keras's servers rather than the mirror.
        with np.load(home / files[0].cached, allow_pickle=False) as f:
            x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    elif name == "fashion_mnist":
        # Four IDX files, read here from the cache found above: Keras's load_data would look in the
        # cache it found when it was imported, and download into it if KERAS_HOME changed since.
        folder = home / files[0].cached.rsplit("/", 1)[0]
        x_train, y_train = load_idx_dataset(
            folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
        )
        x_test, y_test = load_idx_dataset(
            folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
        )
    else:
        _check_keras_home(home)
        module = importlib.import_module(f"keras.datasets.{name}")
        (x_train, y_train), (x_test, y_test) = module.load_data()

    def tidy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x[..., None] if x.ndim == 3 else x), np.asarray(y).reshape(-1).astype(np.int64)

    return tidy(x_train, y_train), tidy(x_test, y_test)
