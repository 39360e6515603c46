"""Image sources and decoding: bundled datasets, class folders, manifests, IDX, npz, the Keras cache."""

from pipeline.ingest.bundled import load_bundled_digits, load_bundled_photos
from pipeline.ingest.decode import ImageProblem, check_and_decode, decode_image
from pipeline.ingest.idx import load_idx_dataset, read_idx
from pipeline.ingest.sources import Sample, load_keras_dataset, load_npz, read_manifest, scan_class_folders

__all__ = [
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
