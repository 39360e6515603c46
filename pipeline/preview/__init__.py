"""Previews of what an augmentation does: augmented copies and one-option sweeps, as PNG and HTML.

>>> p = preview(images, AugmentConfig(rotation_range=20), copies=7, seed=0)
>>> from pipeline.io import png_bytes, write_atomic
>>> write_atomic("preview.png", png_bytes(p.picture))
>>> write_atomic("preview.html", preview_html(p).encode())
>>> s = sweep(images, config, "rotation_range", steps=7)     # -r .. +r, every other option off

Each cell is captioned with its drawn parameters and keeps them (``p.rows[r][c].params``), so a
caption can be checked against what was applied. Copy k of a sample with index i is what training
gives that sample in epoch k: key (seed, k, i). Images are shown before normalisation.

Modules, each importing only those listed before it: ``cells`` (what a preview holds), ``captions``,
``batch`` (the input images), ``drawing`` (the picture), ``grid`` (augmented copies), ``sweeps``,
``page`` (HTML), ``samples`` (images from a source), ``make`` (from a source to the files).
"""

from pipeline.preview.captions import LEGEND, caption_tokens
from pipeline.preview.cells import Cell, Layout, Preview
from pipeline.preview.drawing import Rendered, render, wrap
from pipeline.preview.grid import preview
from pipeline.preview.make import (
    HTML_NAME,
    PNG_NAME,
    PreviewResult,
    load_config,
    make_preview,
    render_samples,
    write_preview,
)
from pipeline.preview.page import preview_html
from pipeline.preview.samples import (
    SOURCES,
    PreviewSamples,
    load_samples,
    source_kind,
    spread_over_classes,
)
from pipeline.preview.sweeps import DEFAULT_SWEEP_RANGES, FILL_REVEAL, SWEEPABLE, sweep, sweep_option

__all__ = [
    "DEFAULT_SWEEP_RANGES",
    "FILL_REVEAL",
    "HTML_NAME",
    "LEGEND",
    "PNG_NAME",
    "SOURCES",
    "SWEEPABLE",
    "Cell",
    "Layout",
    "Preview",
    "PreviewResult",
    "PreviewSamples",
    "Rendered",
    "caption_tokens",
    "load_config",
    "load_samples",
    "make_preview",
    "preview",
    "preview_html",
    "render",
    "render_samples",
    "source_kind",
    "spread_over_classes",
    "sweep",
    "sweep_option",
    "wrap",
    "write_preview",
]
