"""Previews of what an augmentation does: augmented copies and one-option sweeps, as PNG and HTML.

>>> p = preview(images, AugmentConfig(rotation_range=20), copies=7, seed=0)
>>> from pipeline.io import png_bytes, write_atomic
>>> write_atomic("preview.png", png_bytes(p.picture))
>>> write_atomic("preview.html", preview_html(p).encode())
>>> s = sweep(images, config, "rotation_range", steps=7)     # -r .. +r, every other option off

Each cell is captioned with its drawn parameters and keeps them (``p.rows[r][c].params``), so a
caption can be checked against what was applied. Copy k of a sample with index i is what training
gives that sample in epoch k: key (seed, k, i). Images are shown before normalisation.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.augment import Augmenter
from pipeline.config import FILL_MODES, AugmentConfig, shift_is_set
from pipeline.errors import ConfigError, DataError, SourceNotFoundError
from pipeline.io import png_bytes, write_atomic
from pipeline.params import BatchParams, columns_from_dicts


# ---- what a preview holds ------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One image of a preview: its caption tokens, the Keras params dict it was rendered with (None
    for the original) and the fill mode of its warp."""

    tokens: tuple[str, ...]
    params: dict[str, Any] | None
    fill_mode: str | None = None
    image: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0, 3), np.uint8), repr=False, compare=False
    )

    @property
    def caption(self) -> str:
        return " ".join(self.tokens)


@dataclass(frozen=True)
class Layout:
    """Where the cells are in a preview picture: a regular grid of ``rows`` x ``cols`` cells, each an
    image area of ``image_height`` x ``cell_width`` above a caption area, ``pad`` pixels apart."""

    rows: int
    cols: int
    cell_width: int
    image_height: int
    caption_height: int
    pad: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (
            self.pad + self.rows * (self.image_height + self.caption_height + self.pad),
            self.pad + self.cols * (self.cell_width + self.pad),
            3,
        )

    def image_box(self, row: int, col: int) -> tuple[slice, slice]:
        """The (rows, columns) slices of cell (row, col)'s image area."""
        y = self.pad + row * (self.image_height + self.caption_height + self.pad)
        x = self.pad + col * (self.cell_width + self.pad)
        return slice(y, y + self.image_height), slice(x, x + self.cell_width)


@dataclass(frozen=True)
class Preview:
    """The picture (uint8 RGB), its cells row by row (the original first), and what made them."""

    picture: np.ndarray = field(repr=False)
    rows: list[list[Cell]]
    layout: Layout
    config: AugmentConfig
    seed: int
    indices: list[int]
    labels: list[str] | None = None
    sweep: str | None = None
    note: str = ""


# ---- captions ------------------------------------------------------------------------------------
_FORMATS = {
    "theta": "rot {:+.1f}",
    "tx": "tx {:+.1f}",
    "ty": "ty {:+.1f}",
    "shear": "sh {:+.1f}",
    "zx": "zx {:.2f}",
    "zy": "zy {:.2f}",
    "brightness": "br {:.2f}",
    "channel_shift_intensity": "ch {:+.1f}",
}
LEGEND = (
    "rot: rotation (degrees); tx, ty: shifts (pixels, Keras's axes); sh: shear (degrees); zx, zy: zoom "
    "factors; flipH, flipV: flips; br: brightness factor; ch: channel shift; +name: a pixel extra applied"
)


def caption_tokens(params: dict[str, Any], keys: Sequence[str], fill: str | None = None) -> tuple[str, ...]:
    """Compact caption of a Keras params dict: the values of ``keys`` (options that are on), flips
    that happened, the fill mode if given and the extras applied."""
    tokens = [
        re.sub(r" -(0\.0+)$", r" +\1", _FORMATS[k].format(params[k]))  # no "-0.0"
        for k in keys
        if k in _FORMATS and params.get(k) is not None
    ]
    if "flip_horizontal" in keys and params.get("flip_horizontal"):
        tokens.append("flipH")
    if "flip_vertical" in keys and params.get("flip_vertical"):
        tokens.append("flipV")
    if fill:
        tokens.append(fill)
    tokens += [f"+{e['name']}" for e in params.get("extras") or () if e.get("applied")]
    return tuple(tokens) or ("no change",)


def _fill_token(fill_mode: str, cval: float) -> str:
    return f"fill={fill_mode} cval={cval:g}" if fill_mode == "constant" else f"fill={fill_mode}"


def _active_keys(config: AugmentConfig) -> list[str]:
    c = config
    on = {
        "theta": bool(c.rotation_range),
        # params.draw: tx comes from height_shift_range, ty from width_shift_range (Keras's naming)
        "tx": shift_is_set(c.height_shift_range),
        "ty": shift_is_set(c.width_shift_range),
        "shear": bool(c.shear_range),
        "zx": c.zoom_range != (1.0, 1.0),
        "zy": c.zoom_range != (1.0, 1.0),
        "flip_horizontal": c.horizontal_flip,
        "flip_vertical": c.vertical_flip,
        "brightness": c.brightness_range is not None,
        "channel_shift_intensity": bool(c.channel_shift_range),
    }
    return [k for k, v in on.items() if v]


# ---- previews ------------------------------------------------------------------------------------
def preview(
    images: np.ndarray,
    config: AugmentConfig,
    samples: int | None = None,
    copies: int = 7,
    seed: int = 0,
    *,
    indices: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    min_cell: int = 96,
    max_cell: int = 256,
) -> Preview:
    """One row per image (the first ``samples``, default all): the original, then ``copies``
    augmented versions, each captioned with its drawn parameters.

    ``indices``: the images' sample indices in their dataset (default 0, 1, ...); copy k of index i
    uses key (seed, epoch k, index i), exactly what training draws for it.
    """
    images, idx, labels = _take(images, samples, indices, labels)
    if copies < 1:
        raise ConfigError(f"copies must be >= 1, but got {copies}")
    augmenter = Augmenter(config)
    keys = _active_keys(config)
    fill = (
        _fill_token(config.fill_mode, config.cval)
        if config.has_geometry and config.fill_mode != "nearest"
        else None
    )
    to_u8 = _display_mapping(images)
    rows = [[Cell(("original",), None, None, to_u8(im))] for im in images]
    for k in range(copies):
        batch, params = augmenter.augment_batch(images, idx, epoch=k, seed=seed, standardize=False)
        for r in range(len(images)):
            p = params[r]
            rows[r].append(Cell(caption_tokens(p, keys, fill), p, config.fill_mode, to_u8(batch[r])))
    picture, layout = render(rows, min_cell=min_cell, max_cell=max_cell)
    return Preview(picture, rows, layout, config, seed, [int(i) for i in idx], labels)


# Ranges swept when the config has the option off, so a sweep always shows something.
DEFAULT_SWEEP_RANGES: dict[str, Any] = {
    "rotation_range": 30.0,
    "width_shift_range": 0.2,
    "height_shift_range": 0.2,
    "shear_range": 20.0,
    "zoom_range": (0.8, 1.2),
    "brightness_range": (0.5, 1.5),
    "channel_shift_range": 50.0,
}
SWEEPABLE = (*DEFAULT_SWEEP_RANGES, "fill_mode")
# The transform that shows the border in a fill_mode sweep: rotated and zoomed out.
FILL_REVEAL = {"theta": 25.0, "zx": 1.6, "zy": 1.6}


def sweep_option(option: str) -> str:
    """The Keras option name for ``option`` (``rotation`` is ``rotation_range``); ValueError if it
    cannot be swept."""
    name = option.strip().lower().replace("-", "_")
    name = name if name in SWEEPABLE else f"{name}_range"
    if name not in SWEEPABLE:
        raise ConfigError(f"cannot sweep option {option!r}; accepted: {', '.join(SWEEPABLE)}")
    return name


def sweep(
    images: np.ndarray,
    config: AugmentConfig,
    option: str,
    steps: int = 7,
    samples: int | None = None,
    *,
    indices: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    seed: int = 0,
    min_cell: int = 96,
    max_cell: int = 256,
) -> Preview:
    """One row per image: the original, then ``option`` at ``steps`` evenly spaced values across its
    range (the config's, or :data:`DEFAULT_SWEEP_RANGES` when it is off) with every other option off.

    ``fill_mode`` shows each fill mode, side by side, on a transform that reveals the border
    (:data:`FILL_REVEAL`). ``seed`` is only recorded: a sweep draws nothing.
    """
    name = sweep_option(option)
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, but got {steps}")
    images, idx, labels = _take(images, samples, indices, labels)
    # Only how warps are computed survives: the swept option is set through the params, not the config.
    base = AugmentConfig(
        fill_mode=config.fill_mode,
        cval=config.cval,
        interpolation_order=config.interpolation_order,
        keras_shift_axes=config.keras_shift_axes,
    )
    to_u8 = _display_mapping(images)
    rows = [[Cell(("original",), None, None, to_u8(im))] for im in images]
    if name == "fill_mode":
        note = f"each fill mode on rotation {FILL_REVEAL['theta']:g} and zoom {FILL_REVEAL['zx']:g}"
        params = BatchParams(columns=columns_from_dicts([FILL_REVEAL] * len(images)))
        for mode in FILL_MODES:
            out = Augmenter(base.model_copy(update={"fill_mode": mode})).transform_batch(images, params)
            for r in range(len(images)):
                rows[r].append(Cell((_fill_token(mode, config.cval),), params[0], mode, to_u8(out[r])))
    else:
        records, keys, note = _sweep_records(name, config, images.shape[1:3], steps)
        params = BatchParams(columns=columns_from_dicts(records))
        augmenter = Augmenter(base)
        for r in range(len(images)):
            out = augmenter.transform_batch(np.repeat(images[r : r + 1], len(records), axis=0), params)
            for k in range(len(records)):
                p = params[k]
                rows[r].append(Cell(caption_tokens(p, keys), p, base.fill_mode, to_u8(out[k])))
    picture, layout = render(rows, min_cell=min_cell, max_cell=max_cell)
    return Preview(picture, rows, layout, config, seed, [int(i) for i in idx], labels, name, note)


def _sweep_records(
    name: str, config: AugmentConfig, size: tuple[int, int], steps: int
) -> tuple[list[dict[str, Any]], list[str], str]:
    """Keras params dicts for ``steps`` values of option ``name``, the keys to caption, a note."""
    value = getattr(config, name)
    on = value not in (None, (1.0, 1.0)) and (len(value) > 0 if isinstance(value, list) else bool(value))
    spec = value if on else DEFAULT_SWEEP_RANGES[name]
    origin = "config" if on else "default"
    if name in ("width_shift_range", "height_shift_range"):
        # As params.draw: tx from height_shift_range over the rows, ty from width_shift_range over the
        # columns; a spec below 1 is a fraction of that side, otherwise pixels.
        key, side = ("tx", size[0]) if name == "height_shift_range" else ("ty", size[1])
        choices = spec if isinstance(spec, list) else (range(spec) if isinstance(spec, int) else [spec])
        extent = max(abs(float(c)) for c in choices) * (side if np.max(spec) < 1 else 1)
        lo, hi, keys = -extent, extent, [key]
    elif name in ("zoom_range", "brightness_range"):
        lo, hi = spec
        keys = ["zx", "zy"] if name == "zoom_range" else ["brightness"]
    else:
        lo, hi = -float(spec), float(spec)
        keys = {"rotation_range": ["theta"], "shear_range": ["shear"]}.get(name, ["channel_shift_intensity"])
    values = np.linspace(lo, hi, steps)
    records = [{k: float(v) for k in keys} for v in values]
    unit = " pixels" if keys[0] in ("tx", "ty") else ""
    note = f"{name} from {lo:g} to {hi:g}{unit} in {steps} steps ({origin} range), every other option off"
    return records, keys, note


def _take(
    images: np.ndarray,
    samples: int | None,
    indices: Sequence[int] | None,
    labels: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or not len(images):
        raise DataError(f"expected a non-empty batch of (N, H, W, C) images, but got shape {images.shape}")
    if samples is not None:
        if samples < 1:
            raise ConfigError(f"samples must be >= 1, but got {samples}")
        images = images[:samples]
    n = len(images)
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)[:n]
    if idx.shape != (n,):
        raise ValueError(f"indices must give one index per image ({n}), but got {len(idx)}")
    return np.ascontiguousarray(images), idx, None if labels is None else [str(v) for v in labels][:n]


def _display_mapping(images: np.ndarray) -> Any:
    """One mapping to uint8 RGB for a whole preview, so that brightness changes stay visible (a
    per-cell min-max scaling would undo them). Float images within 0-1 are taken as 0-1."""
    scale = 255.0 if images.dtype.kind == "f" and float(images.max()) <= 1.0 else 1.0

    def to_u8(image: np.ndarray) -> np.ndarray:
        x = image if image.dtype == np.uint8 else np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)
        if x.shape[-1] < 3:
            return np.repeat(x[..., :1], 3, axis=-1)
        return np.ascontiguousarray(x[..., :3])

    return to_u8


# ---- drawing -------------------------------------------------------------------------------------
_FONT, _FONT_SCALE, _THICKNESS = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1
_MARGIN = 4  # pixels around a caption line
_TEXT = (30, 30, 30)
_ORIGINAL = (20, 70, 160)


def _text_width(text: str) -> int:
    return cv2.getTextSize(text, _FONT, _FONT_SCALE, _THICKNESS)[0][0]


def _line_height() -> tuple[int, int]:
    (_, h), baseline = cv2.getTextSize("Ag", _FONT, _FONT_SCALE, _THICKNESS)
    return h + baseline + 3, h


def _fit_two_lines(tokens: tuple[str, ...]) -> int:
    """The narrowest width at which ``tokens`` fit on at most two lines."""
    widths = [_text_width(" ".join(tokens))]
    for cut in range(1, len(tokens)):
        widths.append(max(_text_width(" ".join(tokens[:cut])), _text_width(" ".join(tokens[cut:]))))
    return min(widths)


def wrap(tokens: tuple[str, ...], width: int) -> list[str]:
    """Greedy line breaks between tokens at ``width`` pixels (a token is never split)."""
    lines: list[str] = []
    for token in tokens:
        if lines and _text_width(f"{lines[-1]} {token}") <= width:
            lines[-1] = f"{lines[-1]} {token}"
        else:
            lines.append(token)
    return lines


def render(
    rows: list[list[Cell]], min_cell: int = 96, max_cell: int = 256, pad: int = 6
) -> tuple[np.ndarray, Layout]:
    """Draw cells as a grid with captions below each image; small images are upscaled (nearest) to
    at least ``min_cell`` pixels, and further to fill their caption's width; large ones are shrunk
    (area) to at most ``max_cell``."""
    h = max(c.image.shape[0] for row in rows for c in row)
    w = max(c.image.shape[1] for row in rows for c in row)
    text_w = max(_fit_two_lines(c.tokens) for row in rows for c in row) + 2 * _MARGIN
    side = max(h, w)
    if side > max_cell:
        scale = max_cell / side
    else:
        scale = min(max(math.ceil(min_cell / side), text_w // w), max(1, max_cell // side))
    img_h, img_w = max(1, round(h * scale)), max(1, round(w * scale))
    cell_w = max(img_w, text_w)
    lines = [[wrap(c.tokens, cell_w - 2 * _MARGIN) for c in row] for row in rows]
    line_h, ascent = _line_height()
    caption_h = max(len(ls) for row in lines for ls in row) * line_h + 2 * _MARGIN
    layout = Layout(len(rows), max(len(r) for r in rows), cell_w, img_h, caption_h, pad)
    canvas = np.full(layout.shape, 255, np.uint8)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            ys, xs = layout.image_box(r, c)
            ch, cw = cell.image.shape[:2]
            size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
            shown = cv2.resize(cell.image, size, interpolation=interp)
            y0, x0 = ys.start + (img_h - size[1]) // 2, xs.start + (cell_w - size[0]) // 2
            canvas[y0 : y0 + size[1], x0 : x0 + size[0]] = shown
            color = _ORIGINAL if cell.params is None else _TEXT
            for k, line in enumerate(lines[r][c]):
                x = xs.start + (cell_w - _text_width(line)) // 2
                y = ys.stop + _MARGIN + k * line_h + ascent + 1
                cv2.putText(canvas, line, (x, y), _FONT, _FONT_SCALE, color, _THICKNESS, cv2.LINE_AA)
    return canvas, layout


# ---- HTML ----------------------------------------------------------------------------------------
def preview_html(p: Preview, title: str = "augpipe preview", source: str | None = None) -> str:
    """A self-contained page: the picture (embedded PNG), the seed, the config as YAML and a table of
    every cell's caption (hover a caption for its full parameters)."""
    png = base64.b64encode(png_bytes(p.picture)).decode("ascii")
    esc = html.escape
    facts = [("seed", str(p.seed)), ("samples", str(len(p.rows))), ("cells per row", str(p.layout.cols))]
    if source is not None:
        facts.insert(0, ("source", source))
    if p.sweep:
        facts.append(("sweep", f"{p.sweep}: {p.note}"))
    header = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    body = []
    for r, row in enumerate(p.rows):
        name = f"#{p.indices[r]}" + (f" ({p.labels[r]})" if p.labels else "")
        cells = "".join(
            f'<td title="{esc(json.dumps(c.params, default=str, sort_keys=True))}">{esc(c.caption)}</td>'
            for c in row
        )
        body.append(f"<tr><th>{esc(name)}</th>{cells}</tr>")
    head = "".join(f"<th>{'original' if c == 0 else c}</th>" for c in range(p.layout.cols))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left}}
img{{max-width:100%;image-rendering:pixelated}} pre{{background:#f6f6f6;padding:8px}}</style></head>
<body><h1>{esc(title)}</h1>
<table>{header}</table>
<img alt="augmentation preview" src="data:image/png;base64,{png}">
<h2>Captions</h2><p>{esc(LEGEND)}</p>
<table><tr><th>sample</th>{head}</tr>{"".join(body)}</table>
<h2>Config</h2><pre>{esc(p.config.to_yaml())}</pre>
</body></html>
"""


# ---- samples -------------------------------------------------------------------------------------
SOURCES = "'digits', 'photos', a prepared dataset folder or an .npz file"


@dataclass(frozen=True)
class PreviewSamples:
    """Images to preview, their indices in their source and their labels (None when unlabelled)."""

    images: np.ndarray
    indices: list[int]
    labels: list[str] | None
    source: str


def spread_over_classes(labels: np.ndarray, n: int) -> np.ndarray:
    """``n`` indices taking each class's first image in turn (classes sorted), then each one's second,
    and so on; in index order."""
    labels = np.asarray(labels)
    if labels.ndim != 1:  # multi-label or one-hot: no single class to spread over
        return np.arange(min(n, len(labels)))
    _, inverse = np.unique(labels, return_inverse=True)
    rank = np.empty(len(labels), np.int64)  # how many earlier images share the class
    for cls in range(inverse.max() + 1 if len(labels) else 0):
        members = np.flatnonzero(inverse == cls)
        rank[members] = np.arange(len(members))
    order = np.lexsort((inverse, rank))  # by rank, then class
    return np.sort(order[:n])


def source_kind(source: str) -> str:
    """What ``source`` is, ``digits``, ``photos``, ``prepared`` or ``npz``, without loading it;
    SourceNotFoundError, ConfigError or DataError with one clear line otherwise."""
    if source in ("digits", "photos"):
        return source
    path = Path(source)
    if not path.exists():
        raise SourceNotFoundError(source, expected=SOURCES)
    if path.is_dir():
        from pipeline.dataset import PreparedDataset

        if "train" not in PreparedDataset(path).splits:  # raises if the folder holds no prepared dataset
            raise DataError(f"{source}: the prepared dataset has no train split")
        return "prepared"
    if path.suffix.lower() == ".npz":
        return "npz"
    raise ConfigError(f"cannot preview source {source}: expected {SOURCES}")


def load_samples(source: str, samples: int = 8) -> PreviewSamples:
    """``samples`` images of ``source``, chosen deterministically and spread over classes: ``digits``
    (scikit-learn's 8x8 digits, 0-255), ``photos`` (scikit-learn's sample photographs), a prepared
    dataset folder (its train split) or an .npz file (image and label keys as for ``augpipe prepare``)."""
    from pipeline.ingest import load_bundled_digits, load_bundled_photos, load_npz

    if samples < 1:
        raise ConfigError(f"samples must be >= 1, but got {samples}")
    kind = source_kind(source)
    if kind == "digits":
        images, labels, _ = load_bundled_digits()
        return _chosen(images, labels, samples, source)
    if kind == "photos":
        photos, names = load_bundled_photos()
        n = min(samples, len(photos))
        return PreviewSamples(photos[:n], list(range(n)), names[:n], source)
    if kind == "prepared":
        from pipeline.dataset import PreparedDataset

        dataset = PreparedDataset(source)
        images, labels = dataset.arrays("train")
        chosen = spread_over_classes(labels, samples)
        if labels.ndim == 1:
            shown = [dataset.classes[int(v)] for v in labels[chosen]]
        else:  # multi-hot rows: the names of the classes present
            shown = ["+".join(dataset.classes[j] for j in np.flatnonzero(row)) for row in labels[chosen]]
        return PreviewSamples(images[chosen], [int(i) for i in chosen], shown, source)
    try:
        images, labels = load_npz(source)
    except KeyError as err:  # a missing key: say so in one line, without KeyError's quotes
        raise DataError(err.args[0]) from None
    return _chosen(images, labels, samples, source)


def _chosen(images: np.ndarray, labels: np.ndarray, samples: int, source: str) -> PreviewSamples:
    chosen = spread_over_classes(labels, samples)
    return PreviewSamples(
        np.ascontiguousarray(images[chosen]),
        [int(i) for i in chosen],
        [str(v) for v in labels[chosen]],
        source,
    )


# ---- a preview, from its source to its files -----------------------------------------------------
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
    from pipeline.defaults import augment_config_for

    return AugmentConfig.from_yaml(config_path) if config_path else augment_config_for(source)


def render_samples(
    samples: PreviewSamples, config: AugmentConfig, copies: int, sweep_of: str | None, seed: int
) -> Preview:
    """``copies`` augmented copies of each sample, or a sweep of the option ``sweep_of`` in ``copies``
    steps."""
    common = {"indices": samples.indices, "labels": samples.labels}
    if sweep_of:
        return sweep(samples.images, config, sweep_of, steps=copies, seed=seed, **common)
    return preview(samples.images, config, copies=copies, seed=seed, **common)


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
