"""augpipe studio: the library (pipeline.studio) on its own, then every endpoint of the web application
served by a real uvicorn on a free loopback port, with path escapes, limits and bad requests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from studio_server import running_studio

from flows.studio import LocalLauncher, PrefectLauncher, StudioSettings, launcher_for
from pipeline import AugmentConfig, Augmenter, PixelTransform
from pipeline.config import PrepareConfig, TrainConfig
from pipeline.dataset import PreparedDataset
from pipeline.prepare import prepare
from pipeline.studio import (
    CONTROLS,
    LaunchRecord,
    PathRefused,
    RunNotFound,
    compare_with_keras,
    discover,
    export_yaml,
    form_values,
    import_yaml,
    inside,
    list_runs,
    load,
    parse_form,
    read_confusion,
    read_curves,
    read_launches,
    render_grid,
    render_sweep,
    run_folder,
    write_launch,
)

METRICS_HEADER = "epoch,phase,loss,accuracy,val_loss,val_accuracy,learning_rate,images_per_second,epoch_seconds,input_wait_fraction\n"  # noqa: E501


def _png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, "not a PNG"
    return image


def _fake_run(folder: Path, epochs: int, finished: bool, model: str = "shapes_net") -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"model: {model}\ndataset: digits\nepochs: {epochs}\n")
    rows = [
        f"{e},train,{1 / e:.4f},{0.5 + e / 20:.4f},{1.2 / e:.4f},{0.45 + e / 20:.4f},0.001,1000,1.5,0.01\n"
        for e in range(1, epochs + 1)
    ]
    (folder / "metrics.csv").write_text(METRICS_HEADER + "".join(rows))
    if finished:
        summary = {"test_accuracy": 0.9, "classes": ["0", "1"], "confusion_matrix": [[5, 1], [2, 7]]}
        (folder / "summary.json").write_text(json.dumps(summary))
        ok, png = cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))
        (folder / "confusion_matrix.png").write_bytes(png.tobytes())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A source folder (prepared digits, an .npz, a class folder, symlinks out), a folder outside it
    with what must not be read, and a runs folder (finished, running, grouped and symlinked runs)."""
    base = tmp_path_factory.mktemp("studio")
    root, outside, runs = base / "source", base / "outside", base / "runs"
    root.mkdir()
    outside.mkdir()
    prepare(PrepareConfig(source="digits", out=str(root / "prepared" / "digits")), workers=1)
    rng = np.random.default_rng(0)
    np.savez(
        root / "arrays.npz", x=rng.integers(0, 255, (20, 12, 12, 3), dtype=np.uint8), y=np.arange(20) % 4
    )
    for cls, size in (("cats", 16), ("dogs", 20)):
        (root / "flowers" / cls).mkdir(parents=True)
        for i in range(3):
            image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            cv2.imwrite(str(root / "flowers" / cls / f"{i}.png"), image)
    np.savez(outside / "secret.npz", x=np.zeros((4, 8, 8, 1), np.uint8), y=np.arange(4))
    (root / "escape.npz").symlink_to(outside / "secret.npz")
    (root / "escape_dir").symlink_to(outside)
    _fake_run(runs / "run-a", 3, finished=True)
    _fake_run(runs / "run-b", 2, finished=False)
    _fake_run(runs / "cmp" / "none", 2, finished=True)
    _fake_run(runs / "cmp" / "rotation", 2, finished=True)
    # What `augpipe compare` writes beside its runs: the table and the curves.
    table = {"name": "cmp", "model": "shapes_net", "dataset": "digits", "epochs": 2, "rows": [
        {"variant": v, "run_dir": str(runs / "cmp" / v), "epochs": 2, "weights_epoch": 2, "val_accuracy": acc,
         "test_accuracy": acc, "train_accuracy": acc, "images_per_second": 1000.0}
        for v, acc in (("none", 0.9), ("rotation", 0.92))]}  # fmt: skip
    (runs / "cmp" / "compare.json").write_text(json.dumps(table))
    png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    (runs / "cmp" / "curves.png").write_bytes(png)
    _fake_run(outside / "secret-run", 1, finished=True)
    (outside / "secret-run" / "compare.json").write_text(json.dumps(table))
    (outside / "secret-run" / "curves.png").write_bytes(b"secret")
    (runs / "link").symlink_to(outside / "secret-run")
    old = time.time() - 3600
    for path in (runs / "run-b").iterdir():
        os.utime(path, (old, old))
    os.utime(runs / "run-b", (old, old))
    return {"root": root, "outside": outside, "runs": runs}


# ---- paths ----------------------------------------------------------------------------------------
def test_inside_refuses_every_way_out(world: dict[str, Path]) -> None:
    root = world["root"]
    assert inside(root, "arrays.npz") == (root / "arrays.npz").resolve()
    assert inside(root, ".") == root.resolve()
    assert inside(root, "flowers/../arrays.npz") == (root / "arrays.npz").resolve()
    for escape in ("..", "../outside/secret.npz", "/etc/passwd", "escape.npz", "escape_dir/secret.npz",
                   "flowers/../../outside", "a\x00b"):  # fmt: skip
        with pytest.raises(PathRefused):
            inside(root, escape)


# ---- sources --------------------------------------------------------------------------------------
def test_discover_offers_what_the_folder_holds_and_no_symlink(world: dict[str, Path]) -> None:
    found = discover(world["root"])
    assert found[:2] == ["digits", "photos"]
    assert set(found[2:]) == {"prepared/digits", "arrays.npz", "flowers"}
    assert discover(None) == ["digits", "photos"]


def test_every_kind_of_source_loads_with_its_description(world: dict[str, Path]) -> None:
    root = world["root"]
    digits = load(root, "digits", 8)
    assert digits.info.count == 1797 and digits.info.shape == (8, 8, 1) and digits.labels == list("01234567")
    photos = load(root, "photos", 8)
    assert photos.info.count == 2 and photos.images.shape == (2, 427, 640, 3)
    prepared = load(root, "prepared/digits", 10)
    dataset = PreparedDataset(root / "prepared" / "digits")
    _, labels = dataset.arrays("train")
    assert prepared.info.kind == "prepared" and prepared.info.count == len(labels)
    assert prepared.info.classes == dataset.classes
    assert sorted(prepared.labels) == dataset.classes  # one of each class: spread over them
    assert [dataset.classes[labels[i]] for i in prepared.indices] == prepared.labels
    arrays = load(root, "arrays.npz", 4)
    assert (
        arrays.info.count == 20 and arrays.info.shape == (12, 12, 3) and arrays.labels == ["0", "1", "2", "3"]
    )
    folder = load(root, "flowers", 4)
    assert folder.info.kind == "folder" and folder.info.count == 6 and folder.info.classes == ["cats", "dogs"]
    assert folder.images.shape == (4, 16, 16, 3) and "resized to 16x16" in folder.info.note
    with pytest.raises(PathRefused):
        load(root, "escape.npz", 4)
    with pytest.raises(PathRefused):
        load(root, "../outside/secret.npz", 4)


# ---- the grid ---------------------------------------------------------------------------------------
def test_grid_cells_are_what_training_gives_in_each_epoch(world: dict[str, Path]) -> None:
    root = world["root"]
    chosen = load(root, "prepared/digits", 6)
    config = AugmentConfig(rotation_range=30, width_shift_range=0.2, zoom_range=0.2, horizontal_flip=True)
    grid = render_grid(chosen.images, chosen.indices, config, seed=5, epoch=3, copies=4)
    picture = _png(grid.png)
    layout = grid.layout
    assert picture.shape[:2] == (layout.height, layout.width) and grid.scale == 1.0
    assert len(grid.cells) == 6 * 4 and {c.epoch for c in grid.cells} == {3, 4, 5, 6}
    # Training's own batches (the same engine, the prepared train split in order) for epochs 3 and 5.
    dataset = PreparedDataset(root / "prepared" / "digits")
    n = len(dataset.labels("train"))
    for epoch in (3, 5):
        augmenter = Augmenter(config, output_dtype=np.uint8)
        batch, _ = next(
            dataset.batches("train", batch_size=n, augment=augmenter, epoch=epoch, seed=5, shuffle=False)
        )
        col = epoch - 3 + 1
        for row, index in enumerate(chosen.indices):
            y, x = layout.origin(row, col)
            cell = picture[y : y + layout.cell_height, x : x + layout.cell_width]
            np.testing.assert_array_equal(cell, batch[index][..., 0])
    drawn = Augmenter(config).draw(chosen.images.shape[1:], chosen.indices, epoch=4, seed=5)
    for row in range(6):
        cell = next(c for c in grid.cells if c.row == row and c.col == 2)
        assert cell.params == drawn[row] and cell.index == chosen.indices[row]
        assert cell.caption.startswith("rot ")


def test_large_images_are_shrunk_to_the_cell_size_and_extras_are_captioned() -> None:
    photos = load(None, "photos", 2)
    config = AugmentConfig(rotation_range=10, extras=[PixelTransform(name="gaussian_blur", p=1.0)])
    grid = render_grid(photos.images, photos.indices, config, copies=2, max_cell=128)
    assert grid.layout.cell_width == 128 and grid.scale == pytest.approx(128 / 640)
    assert _png(grid.png).shape == (grid.layout.height, grid.layout.width, 3)
    assert all("+gaussian_blur" in c.caption for c in grid.cells)


def test_keras_beside_augpipe_within_parity_tolerance(photos_u8: dict[str, np.ndarray]) -> None:
    image = photos_u8["rgb"]
    config = AugmentConfig(rotation_range=30, zoom_range=0.2, shear_range=10, fill_mode="reflect")
    params = Augmenter(config).draw(image.shape, [7], epoch=2, seed=1)[0]
    result = compare_with_keras(image, config, params)
    assert result.mean <= 0.5 and result.p99 <= 4.0, (result.mean, result.p99)
    picture = _png(result.png)
    assert picture.shape[1] >= 3 * image.shape[1] and result.note == ""
    with_extras = config.model_copy(
        update={"extras": [PixelTransform(name="cutout")], "keras_shift_axes": False}
    )
    assert "extras" in compare_with_keras(image, with_extras, params).note
    assert "keras_shift_axes" in compare_with_keras(image, with_extras, params).note


def test_sweeps_of_a_range_and_of_the_fill_modes() -> None:
    digits = load(None, "digits", 3)
    rotation = render_sweep(digits.images, digits.indices, digits.labels, AugmentConfig(), "rotation", 5)
    assert rotation.option == "rotation_range" and "from -30 to 30" in rotation.note
    fills = render_sweep(digits.images, digits.indices, digits.labels, AugmentConfig(), "fill_mode")
    assert fills.option == "fill_mode" and _png(fills.png).shape[0] > 0
    with pytest.raises(ValueError):
        render_sweep(digits.images, digits.indices, digits.labels, AugmentConfig(), "nonsense")


# ---- options and YAML -------------------------------------------------------------------------------
def test_a_control_for_every_option_with_kerass_defaults() -> None:
    assert {c.name for c in CONTROLS} == set(AugmentConfig.model_fields) - {"extras"}
    defaults: dict[str, Any] = {c.name: c.default for c in CONTROLS}
    assert parse_form(defaults).config == AugmentConfig()
    assert parse_form(form_values(AugmentConfig())).config == AugmentConfig()


def test_the_engines_message_for_each_bad_value() -> None:
    result = parse_form(
        {
            "rotation_range": -5,
            "width_shift_range": "abc",
            "fill_mode": "nearst",
            "extras": [{"name": "blurr"}],
        }
    )
    assert result.config is None
    assert (
        result.errors["rotation_range"]
        == "AugmentConfig.rotation_range: rotation_range must be >= 0 (got -5)"
    )
    assert "width_shift_range must be a number or a list" in result.errors["width_shift_range"]
    assert "did you mean 'nearest'" in result.errors["fill_mode"]
    assert "did you mean 'blur'" in result.errors["extras.0"]


def test_text_fields_keep_kerass_int_and_float_meanings() -> None:
    config = parse_form({"width_shift_range": "15", "height_shift_range": "15.0", "rescale": "1/255"}).config
    assert config is not None
    assert config.width_shift_range == 15 and isinstance(config.width_shift_range, int)
    assert isinstance(config.height_shift_range, float) and config.rescale == 1 / 255
    listed = parse_form({"width_shift_range": "[4, 9, 17]"}).config
    assert listed is not None and listed.width_shift_range == [4, 9, 17]


CONFIGS = [
    AugmentConfig(),
    AugmentConfig(
        rotation_range=12.5,
        width_shift_range=15,
        height_shift_range=[0.05, 0.1],
        zoom_range=0.1,
        brightness_range=(0.7, 1.3),
        fill_mode="constant",
        cval=17,
        rescale=1 / 255,
        horizontal_flip=True,
        interpolation_order=0,
        keras_shift_axes=False,
    ),  # fmt: skip
    AugmentConfig(
        shear_range=8,
        channel_shift_range=30,
        samplewise_std_normalization=True,
        extras=[
            PixelTransform(name="hue", p=0.5),
            PixelTransform(name="gaussian_blur", params={"blur_limit": (3, 5)}, p=0.3),
        ],
    ),  # fmt: skip
]


@pytest.mark.parametrize("config", CONFIGS, ids=["keras-defaults", "geometry", "extras"])
def test_exported_yaml_loads_into_exactly_the_pages_config(config: AugmentConfig, tmp_path: Path) -> None:
    # The page's config: its values through JSON, as the browser sends them (tuples become lists).
    shown = parse_form(json.loads(json.dumps(form_values(config)))).config
    assert shown is not None and shown.model_dump(mode="json") == config.model_dump(mode="json")
    path = tmp_path / "augment.yaml"
    path.write_text(export_yaml(shown))
    assert AugmentConfig.from_yaml(path) == shown
    assert import_yaml(path.read_text()) == shown
    assert parse_form(form_values(import_yaml(path.read_text()))).config == shown


def test_imported_yaml_is_bounded_and_its_errors_name_it() -> None:
    with pytest.raises(Exception, match="^imported YAML: not valid YAML"):
        import_yaml("rotation_range: [")
    with pytest.raises(Exception, match="imported YAML: .*rotaton_range.*did you mean 'rotation_range'"):
        import_yaml("rotaton_range: 10\n")
    bomb = "a: &a [x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    with pytest.raises(Exception, match="refused"):
        import_yaml(bomb)
    with pytest.raises(Exception, match="too large"):
        import_yaml("# " + "x" * (2 << 20))
    assert import_yaml("augment:\n  rotation_range: 5\n") == AugmentConfig(rotation_range=5)


# ---- runs -----------------------------------------------------------------------------------------------
def test_runs_folder_statuses_groups_curves_and_confusion(world: dict[str, Path]) -> None:
    runs = world["runs"]
    listed = {r.name: r for r in list_runs(runs)}
    assert set(listed) == {"run-a", "run-b", "cmp/none", "cmp/rotation"}  # the symlink is not followed
    assert listed["run-a"].status == "finished" and listed["run-a"].epochs_done == 3
    assert listed["run-a"].epochs_total == 3 and listed["run-a"].test_accuracy == 0.9
    assert listed["run-a"].has_confusion and listed["run-a"].model == "shapes_net"
    assert listed["run-b"].status == "stopped" and not listed["run-b"].has_confusion
    assert listed["cmp/none"].group == "cmp"
    curves = read_curves(runs, "run-a")
    assert curves.columns["epoch"] == [1.0, 2.0, 3.0] and curves.columns["val_accuracy"][-1] == pytest.approx(
        0.6
    )
    assert read_confusion(runs, "run-a") is not None and read_confusion(runs, "run-b") is None
    assert run_folder(runs, "cmp/none") == (runs / "cmp" / "none").resolve()
    for name in ("link", "../outside/secret-run", "/etc", "run-a/../../outside/secret-run"):
        with pytest.raises(PathRefused):
            run_folder(runs, name)
    for name in ("nothing", "cmp", "."):
        with pytest.raises(RunNotFound):
            run_folder(runs, name)


def test_launch_records_give_the_status_of_runs_started_here(tmp_path: Path) -> None:
    write_launch(tmp_path, LaunchRecord("queued", "prefect", time.time(), flow_run_id="abc"))
    write_launch(tmp_path, LaunchRecord("broke", "local", time.time(), pid=1, exit_code=2))
    listed = {r.name: r for r in list_runs(tmp_path)}
    assert listed["queued"].status == "starting" and listed["queued"].mode == "prefect"
    assert listed["broke"].status == "failed"
    assert set(read_launches(tmp_path)) == {"queued", "broke"}


# ---- launching ------------------------------------------------------------------------------------------
FAKE_TRAIN = """
import sys, time, yaml, pathlib
config = yaml.safe_load(open(sys.argv[sys.argv.index("--config") + 1]))["train"]
run = pathlib.Path(config["runs_dir"]) / config["run_name"]
run.mkdir(parents=True)
(run / "metrics.csv").write_text("epoch,loss\\n1,0.5\\n")
print("trained", config["model"], flush=True)
if config["epochs"] > 5:
    time.sleep(120)
sys.exit(3 if config["epochs"] == 2 else 0)
"""


def _wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_local_launcher_runs_in_the_background_and_records_the_end(tmp_path: Path) -> None:
    launcher = LocalLauncher(tmp_path, command=[sys.executable, "-c", FAKE_TRAIN])
    started = []
    try:
        for name, epochs in (("ok", 1), ("fails", 2), ("long", 9)):
            cfg = TrainConfig(dataset="digits", epochs=epochs, runs_dir=str(tmp_path), run_name=name)
            started.append(launcher.start(cfg))
        _wait_for(
            lambda: (
                {n: r.exit_code for n, r in read_launches(tmp_path).items()}
                == {"ok": 0, "fails": 3, "long": None}
            )
        )
        _wait_for(lambda: (tmp_path / "long" / "metrics.csv").exists())
        listed = {r.name: r for r in list_runs(tmp_path)}
        assert listed["fails"].status == "failed" and listed["long"].status == "running"
        assert "trained shapes_net" in (tmp_path / ".studio" / "ok.log").read_text()
        assert "long" in launcher.running()
        launcher.stop_all()
        assert not launcher.running()
        _wait_for(lambda: read_launches(tmp_path)["long"].exit_code is not None)
    finally:
        for record in started:  # by id, whatever happened above
            if record.pid is not None:
                try:
                    os.killpg(record.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_prefect_launcher_runs_the_train_model_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    import prefect.deployments
    from prefect.client.schemas.objects import FlowRun

    calls = []
    created = FlowRun(id=uuid.uuid4(), flow_id=uuid.uuid4())

    def run_deployment(name: str, parameters: dict[str, Any], flow_run_name: str, timeout: float) -> FlowRun:
        calls.append((name, parameters, flow_run_name, timeout))
        return created

    monkeypatch.setattr(prefect.deployments, "run_deployment", run_deployment)
    cfg = TrainConfig(
        dataset="digits", augment=AugmentConfig(rotation_range=3), runs_dir=str(tmp_path), run_name="p1"
    )
    record = PrefectLauncher(tmp_path).start(cfg)
    assert calls == [("train-model/train-model", {"config": cfg.model_dump(mode="json")}, "p1", 0)]
    assert record.flow_run_id == str(created.id) and read_launches(tmp_path)["p1"].mode == "prefect"


def test_launcher_follows_the_prefect_api_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert isinstance(launcher_for(tmp_path), PrefectLauncher)
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "no-prefect-home"))
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "no-profiles.toml"))
    monkeypatch.chdir(tmp_path)
    assert isinstance(launcher_for(tmp_path), LocalLauncher)


# ---- the application, served for real -----------------------------------------------------------------
class FakeLauncher:
    mode = "local"

    def __init__(self) -> None:
        self.started: list[TrainConfig] = []

    def start(self, config: TrainConfig) -> LaunchRecord:
        self.started.append(config)
        return LaunchRecord(config.run_name or "", "local", time.time())

    def stop_all(self) -> None:
        pass


@pytest.fixture(scope="module")
def studio(world: dict[str, Path]) -> Any:
    launcher = FakeLauncher()
    settings = StudioSettings(world["root"], world["runs"], launcher=launcher)
    with running_studio(settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.launcher = launcher  # type: ignore[attr-defined]
        yield client


def _no_traceback(response: httpx.Response) -> None:
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"]


def test_pages_and_static_files(studio: httpx.Client) -> None:
    for path, kind in (("/", "text/html"), ("/runs", "text/html"), ("/static/studio.js", "javascript"),
                       ("/static/runs.js", "javascript"), ("/static/studio.css", "text/css")):  # fmt: skip
        response = studio.get(path)
        assert response.status_code == 200 and kind in response.headers["content-type"], path
    options = studio.get("/api/options").json()
    assert {c["name"] for c in options["controls"]} == set(AugmentConfig.model_fields) - {"extras"}
    assert "hue" in {e["name"] for e in options["extras"]} and "shapes_net" in options["models"]
    sources = studio.get("/api/sources").json()["sources"]
    assert sources == ["digits", "photos", "arrays.npz", "flowers", "prepared/digits"]
    info = studio.get("/api/source", params={"source": "prepared/digits", "samples": 4}).json()
    assert info["info"]["kind"] == "prepared" and len(info["labels"]) == 4


def test_grid_endpoint_sends_a_png_and_each_cells_parameters(studio: httpx.Client) -> None:
    config = {"rotation_range": 20, "width_shift_range": "2"}
    body = {"source": "digits", "config": config, "seed": 3, "epoch": 2, "samples": 4, "copies": 3}
    grid = studio.post("/api/grid", json=body).json()
    picture = studio.get(grid["image"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert _png(picture.content).shape[:2] == (grid["layout"]["height"], grid["layout"]["width"])
    chosen = load(None, "digits", 4)
    expected = render_grid(
        chosen.images, chosen.indices, parse_form(body["config"]).config, seed=3, epoch=2, copies=3
    )
    assert picture.content == expected.png
    assert [c["params"]["theta"] for c in grid["cells"]] == [c.params["theta"] for c in expected.cells]
    assert grid["config"]["width_shift_range"] == "2" and grid["render_ms"] > 0
    changed = studio.post("/api/grid", json={**body, "config": {"rotation_range": 40}}).json()
    assert changed["image"] != grid["image"]
    assert studio.get("/api/image/0123456789abcdef.png").status_code == 404


def test_what_the_images_cannot_take_is_a_400_with_the_engines_message(studio: httpx.Client) -> None:
    for extra, words in (
        ({"name": "hue"}, "needs RGB"),
        ({"name": "center_crop", "params": {"height": 9, "width": 9}}, "8x8"),
    ):
        response = studio.post("/api/grid", json={"config": {"extras": [extra]}})
        assert response.status_code == 400 and words in response.json()["detail"], response.text
        _no_traceback(response)


def test_invalid_values_come_back_per_field(studio: httpx.Client) -> None:
    response = studio.post("/api/grid", json={"config": {"rotation_range": -1, "zoom_range": [2, 1]}})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"rotation_range", "zoom_range"} and "must be >= 0" in errors["rotation_range"]


def test_keras_sweep_export_import_endpoints(studio: httpx.Client) -> None:
    config = {"rotation_range": 25, "fill_mode": "reflect", "extras": [{"name": "cutout", "p": 0.5}]}
    cell = {"source": "photos", "samples": 2, "config": config, "row": 1, "col": 2}
    keras = studio.post("/api/keras", json=cell).json()
    assert keras["mean"] <= 0.5 and keras["p99"] <= 4.0 and "extras" in keras["note"]
    assert studio.get(keras["image"]).headers["content-type"] == "image/png" and keras["epoch"] == 1
    missing = studio.post("/api/keras", json={"config": config, "row": 9, "col": 1, "samples": 4})
    assert missing.status_code == 400
    _no_traceback(missing)
    sweep = studio.post("/api/sweep", json={"config": config, "option": "fill_mode"}).json()
    assert studio.get(sweep["image"]).status_code == 200 and sweep["option"] == "fill_mode"
    bad = studio.post("/api/sweep", json={"config": config, "option": "nonsense"})
    assert bad.status_code == 400 and "cannot sweep" in bad.json()["detail"]
    exported = studio.post("/api/export", json={"config": config})
    assert exported.headers["content-type"].startswith("application/x-yaml")
    assert "attachment" in exported.headers["content-disposition"]
    imported = studio.post(
        "/api/import", content=exported.content, headers={"content-type": "application/x-yaml"}
    )
    assert parse_form(imported.json()["config"]).config == parse_form(config).config
    broken = studio.post("/api/import", content=b"rotaton_range: 3", headers={"content-type": "text/yaml"})
    assert broken.status_code == 400 and "imported YAML" in broken.json()["detail"]
    _no_traceback(broken)
    not_text = studio.post("/api/import", content=b"\xff\xfe", headers={"content-type": "text/yaml"})
    assert not_text.status_code == 400


def test_runs_endpoints(studio: httpx.Client) -> None:
    runs = {r["name"]: r for r in studio.get("/api/runs").json()["runs"]}
    assert set(runs) == {"run-a", "run-b", "cmp/none", "cmp/rotation"}
    metrics = studio.get("/api/runs/run-a/metrics").json()
    assert metrics["columns"]["loss"][0] == 1.0 and metrics["confusion"]["matrix"] == [[5, 1], [2, 7]]
    assert studio.get("/api/runs/cmp/none/metrics").json()["name"] == "cmp/none"
    assert studio.get("/api/runs/run-a/confusion.png").headers["content-type"] == "image/png"
    assert studio.get("/api/runs/run-b/confusion.png").status_code == 404
    assert studio.get("/api/runs/run-a/log").text == ""
    assert studio.get("/api/runs/nothing/metrics").status_code == 404


def test_comparisons_are_listed_with_their_runs_and_curves(studio: httpx.Client) -> None:
    (comparison,) = studio.get("/api/runs").json()["comparisons"]  # not the symlinked one
    assert comparison["name"] == "cmp" and comparison["has_curves"]
    rows = [(r["variant"], r["run"]) for r in comparison["rows"]]
    assert rows == [("none", "cmp/none"), ("rotation", "cmp/rotation")]
    curves = studio.get("/api/comparisons/cmp/curves.png")
    assert curves.status_code == 200 and curves.content[:4] == b"\x89PNG"
    for name in ("link", "run-a", "..", "%2E%2E%2Foutside%2Fsecret-run"):
        response = studio.get(f"/api/comparisons/{name}/curves.png")
        assert 400 <= response.status_code < 500 and b"secret" not in response.content


def test_starting_a_run_with_the_pages_config(studio: httpx.Client, world: dict[str, Path]) -> None:
    launcher: FakeLauncher = studio.launcher  # type: ignore[attr-defined]
    config = {"rotation_range": 10, "rescale": "1/255"}
    body = {
        "source": "prepared/digits",
        "config": config,
        "model": "shapes_net",
        "epochs": 1,
        "run_name": "t1",
    }
    assert studio.post("/api/runs", json=body).json() == {"run": "t1", "mode": "local", "flow_run_id": None}
    started = launcher.started[-1]
    assert started.dataset == str((world["root"] / "prepared" / "digits").resolve())
    assert started.augment == parse_form(config).config and started.runs_dir == str(world["runs"].resolve())
    for bad, status, words in (
        ({"run_name": "run-a"}, 400, "exists already"),
        ({"run_name": "../x"}, 400, "run name"),
        ({"source": "photos"}, 400, "photos"),
        ({"source": "../outside/secret.npz"}, 403, "outside"),
        ({"model": "resnet99"}, 400, "unknown model"),
        ({"config": {"rotation_range": "x"}}, 422, "rotation_range"),
        ({"epochs": 0}, 422, "epochs"),
    ):
        response = studio.post("/api/runs", json={**body, "run_name": "t2", **bad})
        assert response.status_code == status and words in response.json()["detail"], (bad, response.text)
        _no_traceback(response)
    assert len(launcher.started) == 1


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/api/grid", {"source": "../outside/secret.npz"}),
        ("POST", "/api/grid", {"source": "/etc"}),
        ("POST", "/api/grid", {"source": "escape.npz"}),
        ("POST", "/api/grid", {"source": "escape_dir/secret.npz"}),
        ("POST", "/api/grid", {"source": "flowers/../../outside/secret.npz"}),
        ("GET", "/api/source?source=..%2Foutside%2Fsecret.npz", None),
        ("GET", "/api/runs/link/metrics", None),
        ("GET", "/api/runs/link/confusion.png", None),
        ("GET", "/api/runs/..%2F..%2Foutside%2Fsecret-run/metrics", None),
        ("GET", "/api/runs/%2e%2e/outside/secret-run/confusion.png", None),
        ("GET", "/api/runs/run-a%2F..%2F..%2Foutside%2Fsecret-run/metrics", None),
    ],
)
def test_paths_outside_the_folders_are_refused(
    studio: httpx.Client, method: str, path: str, body: Any
) -> None:
    response = studio.request(method, path, json=body) if body is not None else studio.get(path)
    assert response.status_code in (403, 404), response.text
    assert "secret" not in response.text or "outside" in response.text  # a message, never the content
    _no_traceback(response)
    if response.status_code == 404:  # the router's own 404 for a path it normalised away: no file read either
        assert "Not Found" in response.text or "no run" in response.text


def test_static_files_stay_in_the_package(studio: httpx.Client) -> None:
    for path in ("/static/..%2F..%2Fapp.py", "/static/%2e%2e/%2e%2e/pyproject.toml", "/static/../app.py"):
        response = studio.get(path)
        assert response.status_code == 404, path
        assert "import" not in response.text


def test_limits_and_bad_requests_get_a_message(studio: httpx.Client) -> None:
    big = studio.post(
        "/api/grid", content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"}
    )
    assert big.status_code == 413 and "limit" in big.json()["detail"]

    def chunks() -> Any:
        for _ in range(40):
            yield b" " * 10_000

    streamed = studio.post("/api/grid", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    upload = studio.post("/api/import", content=b"#" * (2 << 20), headers={"content-type": "text/yaml"})
    assert upload.status_code == 413
    for response, status in (
        (studio.post("/api/grid", content=b"{}", headers={"content-type": "text/plain"}), 415),
        (studio.post("/api/import", content=b"a: 1", headers={"content-type": "application/json"}), 415),
        (studio.post("/api/grid", content=b"{nope", headers={"content-type": "application/json"}), 422),
        (studio.post("/api/grid", json={"samples": 1000}), 422),
        (studio.post("/api/grid", json={"unknown": 1}), 422),
        (studio.post("/api/grid", json={"source": "nowhere"}), 400),
        (studio.get("/api/source", params={"samples": 0}), 400),
        (studio.get("/api/nothing"), 404),
        (studio.get("/", headers={"host": "attacker.example"}), 400),
    ):
        assert response.status_code == status, (status, response.text)
        if status != 400 or response.headers["content-type"].startswith("application/json"):
            assert "Traceback" not in response.text


def test_a_bug_is_a_500_with_a_message_not_a_traceback(
    studio: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.studio.app

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(flows.studio.app, "render_grid", broken)
    response = studio.post("/api/grid", json={"config": {}})
    assert response.status_code == 500 and "RuntimeError" in response.json()["detail"]
    assert "secret internals" not in response.text
    _no_traceback(response)


def test_the_command_line_starts_and_refuses_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["studio", "--help"])
    assert result.exit_code == 0 and "--runs" in result.output and "127.0.0.1" in result.output
    missing = runner.invoke(app, ["studio", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "source not found" in missing.output
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = runner.invoke(app, ["studio", "--port", str(port), "--runs", str(tmp_path / "runs")])
    assert taken.exit_code == 2 and "in use" in taken.output


def test_the_command_serves_until_terminated(tmp_path: Path) -> None:
    from studio_server import free_port

    port = free_port()
    script = Path(sys.executable).with_name("augpipe")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]
    process = subprocess.Popen([*command, "studio", "--port", str(port), "--runs", str(tmp_path / "runs")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the studio exited before answering"
                assert time.monotonic() < deadline, "the studio did not answer"
                time.sleep(0.3)
        assert response.status_code == 200 and response.json()["runs"] == []
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
        assert f"http://127.0.0.1:{port}/" in output and str((tmp_path / "runs").resolve()) in output
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()  # reaps it and closes its output pipe
