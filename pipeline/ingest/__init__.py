"""Image sources. This package grows with the dataset-preparation issue; today: bundled datasets."""

from pipeline.ingest.bundled import load_bundled_digits, load_bundled_photos

__all__ = ["load_bundled_digits", "load_bundled_photos"]
