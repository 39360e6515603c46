"""The studio's web application: pages and static files from the package, a JSON API over
``pipeline.studio``, pictures as PNG responses.

Safe by default: only the source folder and the runs folder given are read (every path a request
names is resolved, symlinks included, and refused outside them); request bodies are bounded and typed
(``guard``); the Host header must name this machine, so that a rebound DNS name cannot reach it;
errors are one-line JSON messages, never tracebacks.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

import models
from flows.studio.guard import IMPORT_PATH, BodyGuard
from flows.studio.launch import Launcher, launcher_for
from flows.studio.requests import CellRequest, RunRequest, SweepRequest, ViewRequest, json_safe
from pipeline.augment import Augmenter
from pipeline.config import AugmentConfig, TrainConfig
from pipeline.defaults import DIGITS_CONFIG
from pipeline.errors import AugpipeError, ConfigError
from pipeline.preview import SWEEPABLE
from pipeline.studio import (
    CONTROLS,
    GROUPS,
    HEAT_FULL_SCALE,
    MAX_CELL_CHOICES,
    MAX_COPIES,
    MAX_STEPS,
    PANELS,
    PathRefused,
    RunNotFound,
    StudioSamples,
    compare_with_keras,
    comparison_picture,
    confusion_picture,
    discover,
    export_yaml,
    extra_controls,
    form_values,
    import_yaml,
    inside,
    keras_generator,
    launches_dir,
    list_comparisons,
    list_runs,
    load,
    parse_form,
    read_confusion,
    read_curves,
    read_log,
    render_grid,
    render_sweep,
)

log = logging.getLogger("augpipe.studio")

STATIC = files("flows.studio") / "static"
MAX_IMAGES_CACHED = 64
MAX_SOURCES_CACHED = 8
# augpipe run's digits config, with training's default rescale: ready to train on as it is.
INITIAL_CONFIG = DIGITS_CONFIG.model_copy(update={"rescale": TrainConfig().augment.rescale})
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class StudioSettings:
    """What a studio serves: ``source_root`` (None: only the bundled sources) and ``runs_dir``."""

    source_root: Path | None
    runs_dir: Path
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    launcher: Launcher | None = None
    warm_keras: bool = False  # import Keras in the background at start: the first comparison is then quick


class StudioRequestError(AugpipeError):
    """A request that cannot be served as asked (a cell that is not in the grid, a source that cannot
    train); the message says what."""


class InvalidConfig(ConfigError):
    """The page's values do not make a config: the engine's message for each bad field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def _config(values: dict[str, Any]) -> AugmentConfig:
    result = parse_form(values)
    if result.config is None:
        raise InvalidConfig(result.errors)
    return result.config


@contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's refusals of what the images cannot take (an RGB-only extra on grayscale images)
    as a 400 with their message: some are plain ValueErrors, not AugpipeErrors."""
    try:
        yield
    except AugpipeError:
        raise
    except ValueError as err:
        raise StudioRequestError(str(err)) from None


class ImageCache:
    """Rendered pictures by content key, the least recently used dropped first."""

    def __init__(self, size: int = MAX_IMAGES_CACHED):
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()[:32]
        with self._lock:
            self._items[key] = data
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data


# ---- middleware ---------------------------------------------------------------------------------
# ---- the application ----------------------------------------------------------------------------
def create_app(settings: StudioSettings) -> FastAPI:
    """The studio for ``settings``; serve it with uvicorn (``flows.studio.serve``)."""
    runs_dir = settings.runs_dir
    launcher = settings.launcher or launcher_for(runs_dir)
    images = ImageCache()
    samples_cache: OrderedDict[tuple[str, int], StudioSamples] = OrderedDict()
    samples_lock = threading.Lock()
    render_lock = threading.Lock()  # one render at a time: the targets are for one core

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.warm_keras:
            threading.Thread(target=keras_generator, args=(AugmentConfig(),), daemon=True).start()
        yield
        launcher.stop_all()

    app = FastAPI(title="augpipe studio", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.hosts))
    app.add_middleware(BodyGuard)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    # -- errors: one-line JSON messages, never a traceback --
    @app.exception_handler(InvalidConfig)
    async def invalid_config(request: Request, err: InvalidConfig) -> JSONResponse:
        return JSONResponse({"detail": str(err), "errors": err.errors}, status_code=422)

    @app.exception_handler(AugpipeError)
    async def augpipe_error(request: Request, err: AugpipeError) -> JSONResponse:
        status = 403 if isinstance(err, PathRefused) else 404 if isinstance(err, RunNotFound) else 400
        return JSONResponse({"detail": str(err)}, status_code=status)

    @app.exception_handler(FileNotFoundError)
    async def not_found(request: Request, err: FileNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        lines = []
        for problem in err.errors()[:10]:
            where = ".".join(str(p) for p in problem["loc"] if p != "body")
            lines.append(f"{where or 'body'}: {problem['msg']}")
        return JSONResponse({"detail": "; ".join(lines)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(err.detail)}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("studio: %s %s failed", request.method, request.url.path)
        return JSONResponse(
            {"detail": f"internal error ({type(err).__name__}); the studio's log has the details"},
            status_code=500,
        )

    def samples_of(source: str, count: int) -> StudioSamples:
        key = (source, count)
        with samples_lock:
            chosen = samples_cache.get(key)
        if chosen is None:
            chosen = load(settings.source_root, source, count)
        with samples_lock:
            samples_cache[key] = chosen
            samples_cache.move_to_end(key)
            while len(samples_cache) > MAX_SOURCES_CACHED:
                samples_cache.popitem(last=False)
        return chosen

    # -- pages --
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/runs", include_in_schema=False)
    def runs_page() -> FileResponse:
        return FileResponse(str(STATIC / "runs.html"))

    # -- what the page is made of --
    @app.get("/api/options")
    def options() -> dict[str, Any]:
        return {
            "groups": GROUPS,
            "controls": [asdict(c) for c in CONTROLS],
            "extras": [asdict(e) for e in extra_controls()],
            "defaults": form_values(AugmentConfig()),
            "initial": form_values(INITIAL_CONFIG),
            "models": models.names(),
            "max_cell": list(MAX_CELL_CHOICES),
            "max_copies": MAX_COPIES,
            "max_steps": MAX_STEPS,
            "sweepable": SWEEPABLE,
            "panels": PANELS,
            "heat_full_scale": HEAT_FULL_SCALE,
            "launch_mode": launcher.mode,
        }  # fmt: skip

    @app.get("/api/sources")
    def sources() -> dict[str, Any]:
        return {"sources": discover(settings.source_root), "root": str(settings.source_root or "")}

    @app.get("/api/source")
    def source_info(source: str = "digits", samples: int = 8) -> dict[str, Any]:
        if not 1 <= samples <= 32:
            raise StudioRequestError(f"samples must be between 1 and 32, but got {samples}")
        chosen = samples_of(source[:1000], samples)
        return {"info": json_safe(asdict(chosen.info)), "indices": chosen.indices, "labels": chosen.labels}

    # -- pictures --
    @app.post("/api/grid")
    def grid(body: ViewRequest) -> dict[str, Any]:
        config = _config(body.config)
        chosen = samples_of(body.source, body.samples)
        with render_lock, engine_errors():
            start = time.perf_counter()
            picture = render_grid(
                chosen.images, chosen.indices, config, seed=body.seed, epoch=body.epoch,
                copies=body.copies, max_cell=body.max_cell,
            )  # fmt: skip
            took = time.perf_counter() - start
        key = images.put(picture.png)
        return {
            "image": f"/api/image/{key}.png",
            "layout": {
                **asdict(picture.layout),
                "width": picture.layout.width,
                "height": picture.layout.height,
            },
            "scale": picture.scale,
            "cells": json_safe([asdict(c) for c in picture.cells]),
            "labels": chosen.labels,
            "indices": chosen.indices,
            "info": json_safe(asdict(chosen.info)),
            "config": form_values(config),
            "render_ms": round(took * 1000, 1),
        }

    @app.post("/api/keras")
    def keras(body: CellRequest) -> dict[str, Any]:
        config = _config(body.config)
        chosen = samples_of(body.source, body.samples)
        if body.row >= len(chosen.images) or body.col > body.copies:
            raise StudioRequestError(
                f"no cell ({body.row}, {body.col}) in a grid of {len(chosen.images)} rows "
                f"and {body.copies} copies"
            )
        image, index, epoch = chosen.images[body.row], chosen.indices[body.row], body.epoch + body.col - 1
        # The cell's draw, from its key: the same parameters the grid showed (extras are not compared).
        params = Augmenter(config.model_copy(update={"extras": []})).draw(
            image.shape, [index], epoch, body.seed
        )[0]
        with render_lock, engine_errors():
            result = compare_with_keras(image, config, params)
        key = images.put(result.png)
        return {
            "image": f"/api/image/{key}.png",
            "mean": result.mean,
            "p99": result.p99,
            "max": result.max,
            "note": result.note,
            "params": json_safe(params),
            "epoch": epoch,
            "index": index,
            "panels": PANELS,
            "heat_full_scale": HEAT_FULL_SCALE,
        }

    @app.post("/api/sweep")
    def sweep(body: SweepRequest) -> dict[str, Any]:
        config = _config(body.config)
        chosen = samples_of(body.source, body.samples)
        with render_lock, engine_errors():
            picture = render_sweep(
                chosen.images, chosen.indices, chosen.labels, config, body.option, body.steps
            )
        key = images.put(picture.png)
        return {"image": f"/api/image/{key}.png", "option": picture.option, "note": picture.note}

    @app.get("/api/image/{name}")
    def image(name: str) -> Response:
        data = images.get(name.removesuffix(".png"))
        if data is None:
            return JSONResponse(
                {"detail": "no such picture (pictures are kept for the latest renders only)"}, 404
            )
        return Response(
            data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600, immutable"}
        )

    # -- configs --
    @app.post("/api/export")
    def export(body: ViewRequest) -> PlainTextResponse:
        config = _config(body.config)
        return PlainTextResponse(
            export_yaml(config),
            media_type="application/x-yaml",
            headers={"Content-Disposition": 'attachment; filename="augment.yaml"'},
        )

    @app.post(IMPORT_PATH)
    async def import_config(request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("imported YAML: not UTF-8 text") from None
        config = import_yaml(text)
        return {"config": form_values(config)}

    # -- runs --
    @app.get("/api/runs")
    def runs() -> dict[str, Any]:
        return {
            "runs": [asdict(r) for r in list_runs(runs_dir)],
            "comparisons": [asdict(c) for c in list_comparisons(runs_dir)],
            "runs_dir": str(runs_dir),
            "launch_mode": launcher.mode,
        }

    @app.get("/api/runs/{name:path}/metrics")
    def metrics(name: str) -> dict[str, Any]:
        curves = read_curves(runs_dir, name)
        confusion = read_confusion(runs_dir, name)
        return {
            "name": curves.name,
            "columns": curves.columns,
            "confusion": asdict(confusion) if confusion else None,
        }

    @app.get("/api/runs/{name:path}/confusion.png")
    def confusion(name: str) -> FileResponse:
        return FileResponse(str(confusion_picture(runs_dir, name)), media_type="image/png")

    @app.get("/api/comparisons/{name}/curves.png")
    def comparison_curves(name: str) -> FileResponse:
        return FileResponse(str(comparison_picture(runs_dir, name)), media_type="image/png")

    @app.get("/api/runs/{name:path}/log")
    def run_log(name: str) -> PlainTextResponse:
        return PlainTextResponse(read_log(runs_dir, name))

    @app.post("/api/runs")
    def start_run(body: RunRequest) -> dict[str, Any]:
        config = _config(body.config)
        if body.source == "photos":
            raise StudioRequestError("the bundled photos are two unlabelled images: train on another source")
        if body.source == "digits":
            dataset = "digits"
        elif settings.source_root is None:
            raise StudioRequestError(f"unknown source {body.source[:200]!r}")
        else:
            dataset = str(inside(settings.source_root, body.source))
        name = body.run_name or time.strftime("studio-%Y%m%d-%H%M%S")
        if not RUN_NAME.match(name):
            raise StudioRequestError(
                f"run name {name[:100]!r}: use letters, digits, '.', '_' and '-' "
                "(at most 100, not starting with '.')"
            )
        if (runs_dir / name).exists() or (launches_dir(runs_dir) / f"{name}.json").exists():
            raise StudioRequestError(
                f"a run named {name!r} exists already under {runs_dir}: choose another name"
            )
        train = TrainConfig(
            dataset=dataset, model=body.model, epochs=body.epochs, batch_size=body.batch_size, seed=body.seed,
            workers=body.workers, max_train_samples=body.max_train_samples, augment=config,
            runs_dir=str(runs_dir.resolve()), run_name=name,
        )  # fmt: skip
        record = launcher.start(train)
        return {"run": record.run, "mode": record.mode, "flow_run_id": record.flow_run_id}

    return app
