"""One image size per dataset without target_size: refusing sources of several sizes, and saying why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.errors import DataError
from pipeline.ingest.decode import DecodeOptions, ImageProblem, decode_checked, read_file
from pipeline.ingest.headers import group_by_size
from pipeline.prepare.records import Item

if TYPE_CHECKING:
    from pipeline.config import PrepareConfig

# Files of several sizes are refused once one file of each of two sizes decodes: at most this many
# files are tried in each of at most this many sizes.
_PROOF_FILES, _PROOF_GROUPS = 4, 8
_SIZES_NAMED, _FILES_NAMED = 5, 3  # in a mixed-size error: sizes listed, and files named for each


def refuse_mixed_sizes(cfg: PrepareConfig, items: list[Item], checked: bool) -> None:
    """Without target_size every image must decode to one size: refuse files that do not from their
    headers (9 us a small JPEG), rather than after decoding them all. ``checked``: the scan saw that
    each file is a regular one."""
    if cfg.target_size is not None:
        return
    files = [item for item in items if item.left_out is None and item.path is not None]
    groups = group_by_size([item.path for item in files if item.path is not None], checked)
    if len(groups) > 1 and _decode_to_sizes(cfg, [[files[i] for i in g] for g in groups.values()], checked):
        keys = {size: [files[i].key for i in found] for size, found in groups.items()}
        raise DataError(mixed_sizes_message(keys, "by their headers"))


def _decode_to_sizes(cfg: PrepareConfig, groups: list[list[Item]], checked: bool) -> bool:
    """Whether the files of two groups decode to two sizes, decoding a few files of each of the
    largest groups: a file whose header reads may still be quarantined (truncated, too large), and
    only files that decoding keeps are worth refusing a source for."""
    options = DecodeOptions(cfg.color_mode, None, cfg.interpolation, False, cfg.max_pixels)
    sizes: set[tuple[int, ...]] = set()
    for group in sorted(groups, key=len, reverse=True)[:_PROOF_GROUPS]:
        for item in group[:_PROOF_FILES]:
            assert item.path is not None
            try:
                data = read_file(item.path, checked, options.max_file_bytes)
                sizes.add(decode_checked(data, item.path, options).shape[:2])
                break
            except (ImageProblem, OSError):
                continue
        if len(sizes) > 1:
            return True
    return False


def mixed_sizes_message(keys_by_size: dict[tuple[int, int], list[str]], seen: str) -> str:
    """Why images of several sizes are refused without target_size: each size, its count and a few of
    its files (but for the most common size), and how to fix it. ``seen``: how the sizes were found."""
    ranked = sorted(keys_by_size.items(), key=lambda entry: (-len(entry[1]), entry[0]))
    parts = []
    for rank, ((height, width), keys) in enumerate(ranked[:_SIZES_NAMED]):
        part = f"{len(keys):,} {'is' if len(keys) == 1 else 'are'} {height}x{width}"
        if rank:
            more = f" and {len(keys) - _FILES_NAMED:,} more" if len(keys) > _FILES_NAMED else ""
            part += f" ({', '.join(keys[:_FILES_NAMED])}{more})"
        parts.append(part)
    if len(ranked) > _SIZES_NAMED:
        rest = sum(len(keys) for _, keys in ranked[_SIZES_NAMED:])
        parts.append(f"{rest:,} more in {len(ranked) - _SIZES_NAMED} other sizes")
    return (
        f"images differ in size ({seen}, height x width): {'; '.join(parts)}; set target_size "
        "(--target-size HEIGHTxWIDTH on the command line) to resize every image to one size"
    )
