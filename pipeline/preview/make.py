"""A whole preview, from its source to its files: what ``augpipe preview`` and its flow run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config import AugmentConfig
from pipeline.defaults import augment_config_for
from pipeline.io import png_bytes, write_atomic
from pipeline.preview.cells import Preview
from pipeline.preview.grid import preview
from pipeline.preview.page import preview_html
from pipeline.preview.samples import PreviewSamples, load_samples
from pipeline.preview.sweeps import sweep

PNG_NAME, HTML_NAME = "preview.png", "preview.html"


@dataclass(frozen=True)
class PreviewResult:
    """Where a preview went and what it shows."""

    png: Path
    html: Path
    source: str
    seed: int
    rows: int
    cols: int
    sweep: str | None = None


def load_config(config_path: str | Path | None, source: str) -> AugmentConfig:
    """The options of the YAML file ``config_path``, or ``augpipe run``'s for ``source`` without one."""
    return AugmentConfig.from_yaml(config_path) if config_path else augment_config_for(source)


def render_samples(
    samples: PreviewSamples, config: AugmentConfig, copies: int, sweep_of: str | None, seed: int
) -> Preview:
    """``copies`` augmented copies of each sample, or a sweep of the option ``sweep_of`` in ``copies``
    steps."""
    if sweep_of:
        return sweep(
            samples.images,
            config,
            sweep_of,
            steps=copies,
            seed=seed,
            indices=samples.indices,
            labels=samples.labels,
        )
    return preview(
        samples.images, config, copies=copies, seed=seed, indices=samples.indices, labels=samples.labels
    )


def write_preview(p: Preview, out: str | Path, source: str) -> PreviewResult:
    """preview.png and preview.html under ``out``, each written atomically."""
    folder = Path(out).resolve()
    png = write_atomic(folder / PNG_NAME, png_bytes(p.picture))
    page = preview_html(p, title=f"augpipe preview: {source}", source=source)
    html_path = write_atomic(folder / HTML_NAME, page.encode("utf-8"))
    return PreviewResult(png, html_path, source, p.seed, p.layout.rows, p.layout.cols, p.sweep)


def make_preview(
    source: str = "digits",
    config_path: str | Path | None = None,
    samples: int = 8,
    copies: int = 7,
    sweep_of: str | None = None,
    seed: int = 0,
    out: str | Path = "previews",
) -> PreviewResult:
    """The whole preview in this process (the ``preview-augmentations`` flow runs the same steps as
    tasks): load the config and the samples, render, write the files."""
    config = load_config(config_path, source)
    chosen = load_samples(source, samples)
    return write_preview(render_samples(chosen, config, copies, sweep_of, seed), out, source)
