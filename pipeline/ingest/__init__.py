"""Image sources and decoding: bundled datasets, class folders, manifests, IDX, npz, the Keras cache.

Names load on first use: ``pipeline.ingest.formats`` (extensions, limits) imports nothing heavy, and
neither does reaching it through this package.
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.ingest.arrays import load_npz
    from pipeline.ingest.bundled import load_bundled_digits, load_bundled_photos
    from pipeline.ingest.decode import DecodeOptions, ImageProblem, check_and_decode, decode_image
    from pipeline.ingest.idx import load_idx_dataset, read_idx
    from pipeline.ingest.sources import (
        Sample,
        load_keras_dataset,
        read_manifest,
        scan_class_folders,
    )

_WHERE = {
    "DecodeOptions": "pipeline.ingest.decode",
    "ImageProblem": "pipeline.ingest.decode",
    "Sample": "pipeline.ingest.sources",
    "check_and_decode": "pipeline.ingest.decode",
    "decode_image": "pipeline.ingest.decode",
    "load_bundled_digits": "pipeline.ingest.bundled",
    "load_bundled_photos": "pipeline.ingest.bundled",
    "load_idx_dataset": "pipeline.ingest.idx",
    "load_keras_dataset": "pipeline.ingest.sources",
    "load_npz": "pipeline.ingest.arrays",
    "read_idx": "pipeline.ingest.idx",
    "read_manifest": "pipeline.ingest.sources",
    "scan_class_folders": "pipeline.ingest.sources",
}
__all__ = [
    "DecodeOptions",
    "ImageProblem",
    "Sample",
    "check_and_decode",
    "decode_image",
    "load_bundled_digits",
    "load_bundled_photos",
    "load_idx_dataset",
    "load_keras_dataset",
    "load_npz",
    "read_idx",
    "read_manifest",
    "scan_class_folders",
]


def __getattr__(name: str) -> object:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pipeline.ingest' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
