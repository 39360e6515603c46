"""The ``preview-augmentations`` Prefect flow: what a config does to a few images, as PNG and HTML.

Run it with :func:`run_preview` (what ``augpipe preview`` calls), on Prefect's embedded ephemeral API
unless one is configured. The work lives in :mod:`pipeline.preview`; the tasks only wrap it. A preview
is one picture of a handful of images, so it stays in this process between tasks.
"""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipeline import preview as pv
from pipeline.config import AugmentConfig
from pipeline.preview import HTML_NAME, PNG_NAME, PreviewResult

__all__ = ["HTML_NAME", "PNG_NAME", "PreviewResult", "preview_augmentations", "run_preview"]
# Above this, the markdown artifact links to the files instead of inlining the picture.
INLINE_LIMIT = 512 * 1024
ARTIFACT_KEY = "augpipe-preview"


@task(name="load-config", cache_policy=NO_CACHE)
def load_config_task(config_path: str | None, source: str) -> AugmentConfig:
    return pv.load_config(config_path, source)


@task(name="load-samples", cache_policy=NO_CACHE)
def load_samples_task(source: str, samples: int) -> pv.PreviewSamples:
    return pv.load_samples(source, samples)


@task(name="render", cache_policy=NO_CACHE)
def render_task(
    samples: pv.PreviewSamples, config: AugmentConfig, copies: int, sweep: str | None, seed: int
) -> pv.Preview:
    return pv.render_samples(samples, config, copies, sweep, seed)


@task(name="write-files", cache_policy=NO_CACHE)
def write_task(preview: pv.Preview, out: str, source: str) -> PreviewResult:
    return pv.write_preview(preview, out, source)


@task(name="report", cache_policy=NO_CACHE)
def report_task(result: PreviewResult, config: AugmentConfig) -> None:
    """A markdown artifact: what was previewed, where the files are, the picture if small, the config.
    The picture is inlined rather than linked: a link to the worker's disk opens nowhere else."""
    create_markdown_artifact(
        summary_markdown(result, config), key=ARTIFACT_KEY, description="augpipe preview"
    )


def summary_markdown(result: PreviewResult, config: AugmentConfig) -> str:
    what = f"sweep of `{result.sweep}`" if result.sweep else f"{result.cols - 1} augmented copies per image"
    png = result.png.read_bytes()
    picture = (
        f"![augmentation preview](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
        if len(png) <= INLINE_LIMIT
        else f"(the picture is {len(png) // 1024} KB, too large to show here: open the files above)"
    )
    return "\n".join(
        [
            f"# Augmentation preview of `{result.source}`",
            "",
            f"{result.rows} images, {what}, seed {result.seed}.",
            "",
            f"Files on `{socket.gethostname()}`:",
            "",
            f"- picture: `{result.png}`",
            f"- page: `{result.html}`",
            "",
            picture,
            "",
            "## Config",
            "",
            "```yaml",
            config.to_yaml().rstrip(),
            "```",
        ]
    )


@flow(name="preview-augmentations", log_prints=False)
def preview_augmentations(
    source: str = "digits",
    config_path: str | None = None,
    samples: int = 8,
    copies: int = 7,
    sweep: str | None = None,
    seed: int = 0,
    out: str = "previews",
) -> PreviewResult:
    """Preview ``config_path`` (default: ``augpipe run``'s config) on ``samples`` images of ``source``:
    each original and ``copies`` augmented versions, or a sweep of one option in ``copies`` steps.
    Writes preview.png and preview.html under ``out``."""
    config = load_config_task(config_path, source)
    chosen = load_samples_task(source, samples)
    picture = render_task(chosen, config, copies, sweep, seed)
    result = write_task(picture, out, source)
    report_task(result, config)
    return result


def run_preview(
    source: str = "digits",
    config_path: str | Path | None = None,
    samples: int = 8,
    copies: int = 7,
    sweep: str | None = None,
    seed: int = 0,
    out: str | Path = "previews",
) -> PreviewResult:
    """Run the flow (on Prefect's embedded ephemeral API unless one is configured).

    A bad config or source fails here, before that API starts (20 s), with the path as given; the
    flow run records the config's absolute path, which names the file whatever its working folder."""
    pv.load_config(config_path, source)
    pv.source_kind(source)
    return preview_augmentations(
        source=source,
        config_path=None if config_path is None else os.path.abspath(config_path),
        samples=samples,
        copies=copies,
        sweep=sweep,
        seed=seed,
        out=str(out),
    )
