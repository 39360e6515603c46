"""Augmentation previews: the picture, its captions, sweeps, the HTML page, the flow and `augpipe preview`.

Flow tests run on the session's temporary Prefect API, the ``prefect_api`` fixture of conftest.py.
"""

from __future__ import annotations

import base64
import itertools
import re
import socket

import cv2
import numpy as np
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, FlowRunFilter, FlowRunFilterId, TaskRunFilter
from prefect.client.schemas.sorting import ArtifactSort
from typer.testing import CliRunner

from flows.cli import app
from flows.preview import ARTIFACT_KEY, preview_augmentations, render_task, run_preview
from pipeline import AugmentConfig
from pipeline.config import FILL_MODES
from pipeline.defaults import DIGITS_CONFIG
from pipeline.io import png_bytes, write_atomic
from pipeline.prepare import prepare
from pipeline.preview import (
    SWEEPABLE,
    load_samples,
    preview,
    preview_html,
    spread_over_classes,
    sweep,
)

runner = CliRunner()
RICH = AugmentConfig(
    rotation_range=30,
    width_shift_range=0.2,
    height_shift_range=0.2,
    shear_range=10,
    zoom_range=0.2,
    horizontal_flip=True,
    brightness_range=(0.6, 1.4),
    channel_shift_range=20,
    fill_mode="reflect",
)


@pytest.fixture(scope="module")
def digits():
    return load_samples("digits", 4)


def _cells(picture: np.ndarray, layout) -> list[list[np.ndarray]]:
    return [[picture[layout.image_box(r, c)] for c in range(layout.cols)] for r in range(layout.rows)]


# ---- the picture -------------------------------------------------------------------------------------
def test_png_has_one_cell_per_sample_and_copy(digits, tmp_path):
    p = preview(digits.images, DIGITS_CONFIG, samples=3, copies=5, seed=0)
    path = write_atomic(tmp_path / "p.png", png_bytes(p.picture))
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    layout = p.layout
    assert (layout.rows, layout.cols) == (3, 6) and [len(row) for row in p.rows] == [6, 6, 6]
    step_y = layout.image_height + layout.caption_height + layout.pad
    assert back.shape == (layout.pad + 3 * step_y, layout.pad + 6 * (layout.cell_width + layout.pad), 3)
    assert np.array_equal(back, p.picture)
    assert layout.image_height >= 96  # 8x8 digits upscaled to be readable
    for row in _cells(back, layout):
        for cell in row:
            assert cell.std() > 20  # a digit in every cell, not background
    assert (back[: layout.pad] == 255).all() and (back[:, : layout.pad] == 255).all()
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_augmented_cells_differ_from_each_other_and_from_the_original(digits):
    p = preview(digits.images, DIGITS_CONFIG, copies=6, seed=0)
    for r, row in enumerate(p.rows):
        assert row[0].caption == "original" and row[0].params is None
        assert np.array_equal(row[0].image[..., 0], digits.images[r, ..., 0])
        for a, b in itertools.combinations(row, 2):
            assert not np.array_equal(a.image, b.image)
    pixels = _cells(p.picture, p.layout)
    for row in pixels:
        for a, b in itertools.combinations(row, 2):
            assert not np.array_equal(a, b)


def test_copy_k_is_what_training_draws_in_epoch_k(digits):
    from pipeline import Augmenter

    p = preview(digits.images, DIGITS_CONFIG, copies=3, seed=7, indices=digits.indices)
    aug = Augmenter(DIGITS_CONFIG)
    batch, params = aug.augment_batch(digits.images, digits.indices, epoch=2, seed=7, standardize=False)
    for r, row in enumerate(p.rows):
        assert row[3].params == params[r]
        assert np.array_equal(row[3].image[..., 0], batch[r, ..., 0])


def test_same_seed_gives_identical_files_and_another_seed_different_ones(digits, tmp_path):
    def files(seed: int, name: str) -> tuple[bytes, bytes]:
        p = preview(digits.images, RICH, copies=4, seed=seed)
        png = write_atomic(tmp_path / f"{name}.png", png_bytes(p.picture))
        page = write_atomic(tmp_path / f"{name}.html", preview_html(p, source="digits").encode())
        return png.read_bytes(), page.read_bytes()

    first, again, other = files(3, "a"), files(3, "b"), files(4, "c")
    assert first == again
    assert first[0] != other[0] and first[1] != other[1]


# ---- captions -----------------------------------------------------------------------------------------
_PATTERNS = {
    "theta": r"rot ([+-]\d+\.\d)",
    "tx": r"tx ([+-]\d+\.\d)",
    "ty": r"ty ([+-]\d+\.\d)",
    "shear": r"sh ([+-]\d+\.\d)",
    "zx": r"zx (\d+\.\d\d)",
    "zy": r"zy (\d+\.\d\d)",
    "brightness": r"br (\d+\.\d\d)",
    "channel_shift_intensity": r"ch ([+-]\d+\.\d)",
}


def test_captions_show_the_params_of_their_cell(photos_u8):
    images = np.stack([photos_u8["rgb"], photos_u8["rgb"][::-1].copy()])
    p = preview(images, RICH, copies=8, seed=1)
    flips = 0
    for row in p.rows:
        for cell in row[1:]:
            for key, pattern in _PATTERNS.items():
                match = re.search(pattern, cell.caption)
                assert match, (key, cell.caption)
                decimals = len(match[1].split(".")[1])
                assert float(match[1]) == pytest.approx(round(cell.params[key], decimals), abs=1e-9)
            assert ("flipH" in cell.tokens) == cell.params["flip_horizontal"]
            assert "flipV" not in cell.tokens and "fill=reflect" in cell.tokens
            flips += cell.params["flip_horizontal"]
    assert 0 < flips < 16


def test_captions_show_only_options_that_are_on(digits):
    p = preview(digits.images, AugmentConfig(rotation_range=20), copies=3, seed=0)
    for cell in p.rows[0][1:]:
        assert len(cell.tokens) == 1 and cell.caption == f"rot {cell.params['theta']:+.1f}"
    (cell,) = preview(digits.images[:1], AugmentConfig(), copies=1).rows[0][1:]
    assert cell.caption == "no change"


def test_extras_applied_are_captioned(photos_u8):
    cfg = AugmentConfig(extras=[{"name": "hue", "p": 0.5}])
    p = preview(photos_u8["rgb"][None], cfg, copies=8, seed=0)
    cells = p.rows[0][1:]
    applied = [c.params["extras"][0]["applied"] for c in cells]
    assert any(applied) and not all(applied)
    assert [("+hue" in c.tokens) for c in cells] == applied


# ---- sweeps -------------------------------------------------------------------------------------------
def test_rotation_sweep_goes_evenly_from_minus_r_to_plus_r_with_the_rest_off(digits):
    s = sweep(digits.images, DIGITS_CONFIG, "rotation", steps=5)
    assert s.sweep == "rotation_range" and "config range" in s.note
    for row in s.rows:
        thetas = [c.params["theta"] for c in row[1:]]
        assert thetas == pytest.approx([-15, -7.5, 0, 7.5, 15])
        assert np.all(np.diff(thetas) > 0)
        assert [c.caption for c in row[1:]] == ["rot -15.0", "rot -7.5", "rot +0.0", "rot +7.5", "rot +15.0"]
        for c in row[1:]:
            assert (c.params["tx"], c.params["shear"], c.params["zx"], c.params["brightness"]) == (
                0,
                0,
                1,
                None,
            )
        assert np.array_equal(row[3].image, row[0].image)  # 0 degrees leaves the digit unchanged
    off = sweep(digits.images, AugmentConfig(), "rotation_range", steps=3)
    assert [c.params["theta"] for c in off.rows[0][1:]] == [-30, 0, 30] and "default range" in off.note


def test_other_sweeps_vary_only_their_parameters(digits):
    shift = sweep(digits.images, AugmentConfig(width_shift_range=0.25), "width_shift_range", steps=3)
    assert [c.params["ty"] for c in shift.rows[0][1:]] == [-2, 0, 2]  # a quarter of 8 pixels
    zoom = sweep(digits.images, AugmentConfig(zoom_range=[0.5, 1.5]), "zoom", steps=3)
    assert [(c.params["zx"], c.params["zy"]) for c in zoom.rows[0][1:]] == [(0.5, 0.5), (1, 1), (1.5, 1.5)]
    bright = sweep(digits.images, AugmentConfig(), "brightness_range", steps=3)
    factors = [c.params["brightness"] for c in bright.rows[0][1:]]
    assert factors == [0.5, 1.0, 1.5]
    means = [c.image.mean() for c in bright.rows[0][1:]]
    assert means[0] < means[1] < means[2]
    for name in SWEEPABLE:
        assert len(sweep(digits.images[:1], DIGITS_CONFIG, name, steps=3).rows[0]) > 1


def test_fill_mode_sweep_shows_the_four_fill_modes_differently(digits):
    s = sweep(digits.images, DIGITS_CONFIG, "fill_mode")
    for row in s.rows:
        cells = row[1:]
        assert [c.fill_mode for c in cells] == list(FILL_MODES)
        assert [c.caption for c in cells] == [
            "fill=nearest",
            "fill=reflect",
            "fill=wrap",
            "fill=constant cval=0",
        ]
        assert len({c.params["theta"] for c in cells}) == 1 and cells[0].params["zx"] > 1  # one transform
        for a, b in itertools.combinations(cells, 2):
            assert not np.array_equal(a.image, b.image)


def test_an_option_that_cannot_be_swept_is_a_clear_error(digits):
    with pytest.raises(
        ValueError, match=r"cannot sweep option 'horizontal_flip'; accepted: rotation_range.*fill_mode"
    ):
        sweep(digits.images, DIGITS_CONFIG, "horizontal_flip")


# ---- the page -----------------------------------------------------------------------------------------
def test_html_embeds_the_png_the_config_the_seed_and_the_captions(digits):
    p = preview(digits.images, DIGITS_CONFIG, copies=2, seed=11, indices=digits.indices, labels=digits.labels)
    page = preview_html(p, source="digits")
    assert f"data:image/png;base64,{base64.b64encode(png_bytes(p.picture)).decode()}" in page
    assert "rotation_range: 15" in page and "shear_range: 10" in page
    assert "<th>seed</th><td>11</td>" in page
    for row in p.rows:
        for cell in row:
            assert f">{cell.caption}</td>" in page
    assert 'src="http' not in page and "<script" not in page  # self-contained


# ---- samples ------------------------------------------------------------------------------------------
def test_samples_are_spread_over_classes():
    assert spread_over_classes(np.array([0, 0, 0, 1, 1, 2]), 4).tolist() == [0, 1, 3, 5]
    assert spread_over_classes(np.array([[1, 0], [0, 1]]), 5).tolist() == [0, 1]
    chosen = load_samples("digits", 10)
    assert sorted(chosen.labels) == [str(d) for d in range(10)] and chosen.images.shape == (10, 8, 8, 1)
    assert load_samples("digits", 10).indices == chosen.indices


def test_npz_and_prepared_dataset_sources(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 12, 10, 3), dtype=np.uint8)
    labels = np.repeat([5, 6, 7], 10)
    np.savez(tmp_path / "set.npz", x=images, y=labels)
    from_npz = load_samples(str(tmp_path / "set.npz"), 4)
    assert from_npz.labels == ["5", "5", "6", "7"] and from_npz.indices == [0, 1, 10, 20]
    assert np.array_equal(from_npz.images, images[[0, 1, 10, 20]])

    from pipeline.config import PrepareConfig

    prepare(PrepareConfig(source=str(tmp_path / "set.npz"), out=str(tmp_path / "prepared")))
    prepared = load_samples(str(tmp_path / "prepared"), 3)
    assert prepared.images.shape == (3, 12, 10, 3) and sorted(prepared.labels) == ["5", "6", "7"]
    assert len(preview(prepared.images, DIGITS_CONFIG, copies=2).rows) == 3


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ("{tmp}/missing.npz", FileNotFoundError, "source not found"),
        ("{tmp}", FileNotFoundError, "holds no prepared dataset"),
        ("{tmp}/notes.txt", ValueError, "cannot preview source"),
        ("{tmp}/keys.npz", ValueError, "has none of the image keys"),
    ],
)
def test_unusable_sources_are_clear_errors(tmp_path, source, error, message):
    (tmp_path / "notes.txt").write_text("hello")
    np.savez(tmp_path / "keys.npz", pixels=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(error, match=message):
        load_samples(source.format(tmp=tmp_path))


# ---- the flow and the command -------------------------------------------------------------------------
def test_render_task_logic_runs_without_the_engine(digits):
    p = render_task.fn(digits, DIGITS_CONFIG, 2, "shear", 0)
    assert p.sweep == "shear_range" and p.indices == digits.indices


def test_flow_writes_the_files_and_publishes_artifacts(prefect_api, tmp_path):
    state = preview_augmentations(
        source="digits", samples=3, copies=2, seed=5, out=str(tmp_path / "out"), return_state=True
    )
    result = state.result()
    assert result.png == tmp_path / "out" / "preview.png" and result.html.name == "preview.html"
    picture = cv2.imread(str(result.png))
    assert picture is not None and (result.rows, result.cols) == (3, 3)
    assert "data:image/png;base64," in result.html.read_text()
    assert not list((tmp_path / "out").glob(".*"))
    with get_client(sync_client=True) as client:
        # Every field given: the embedded server rejects the client's explicit nulls for the others.
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(),
            limit=10,
            offset=0,
            sort=ArtifactSort.KEY_ASC,
        )
    by_key = {a.key: a for a in artifacts}
    assert set(by_key) == {ARTIFACT_KEY}  # no link to a file:// URI on the worker's disk
    summary = by_key[ARTIFACT_KEY].data
    assert (
        "data:image/png;base64," in summary and "rotation_range: 15" in summary and str(result.png) in summary
    )
    assert f"Files on `{socket.gethostname()}`" in summary and str(result.html) in summary
    again = run_preview(source="digits", samples=3, copies=2, seed=5, out=tmp_path / "again")
    assert again.png.read_bytes() == result.png.read_bytes()


def test_cli_preview_prints_where_the_files_are(prefect_api, tmp_path):
    cfg = tmp_path / "aug.yaml"
    AugmentConfig(rotation_range=40).to_yaml(cfg)
    out = tmp_path / "previews"
    result = runner.invoke(
        app,
        ["preview", "digits", "--config", str(cfg), "--samples", "2", "--copies", "3", "--sweep", "rotation",
         "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert str(out / "preview.png") in result.output and str(out / "preview.html") in result.output
    assert "sweep of rotation_range" in result.output
    assert "rot -40.0" in (out / "preview.html").read_text()


def test_cli_preview_help_lists_the_options_and_the_sweepable_ones():
    result = runner.invoke(app, ["preview", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--config", "--samples", "--copies", "--sweep", "--seed", "--out", "--verbose"):
        assert option in result.output
    for name in SWEEPABLE:
        assert name in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "{tmp}/missing.yaml"], "config file not found"),
        (["--config", "{tmp}/bad.yaml"], "rotation_range"),
        (["--sweep", "hue"], "cannot sweep option 'hue'"),
        (["{tmp}/nowhere"], "source not found"),
        (["{tmp}/bad.yaml"], "cannot preview source"),
    ],
)
def test_cli_preview_expected_mistakes_are_one_clear_line(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text("rotation_range: -5\n")
    args = [a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(app, ["preview", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    assert not (tmp_path / "out").exists()
