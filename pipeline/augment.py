"""The augmentation engine: draw per-sample parameters, apply the kernels, normalise.

>>> aug = Augmenter(AugmentConfig(rotation_range=20, horizontal_flip=True))
>>> batch, params = aug.augment_batch(images, indices=range(len(images)), epoch=0, seed=42)
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import cv2
import numpy as np

from pipeline import params as P
from pipeline.config import AugmentConfig
from pipeline.errors import ConfigError
from pipeline.functional import color, geometry, normalize, pixel

PreprocessingFunction = Callable[[np.ndarray], np.ndarray]
# Warped images go through the pixel pass in chunks of about this many bytes: a batch of 32 at
# 224x224x3 uint8, 13 images of float32. Image by image, the Python around each pass cost uint8 batches
# about 8% at 224x224 (the output's memory bandwidth, not the cache, bounds the lookups there).
_CHUNK_BYTES = 1 << 23
_LUT_DTYPES = tuple(
    np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)
)
# From this size on, each source is copied to a small hot buffer before its warp (geometry.warp_batch).
_STAGING_BYTES = 1 << 14


class Augmenter:
    """Applies an :class:`AugmentConfig` to batches of (N, H, W, C) images, reproducibly per sample.

    Args:
        config: the validated options.
        output_dtype: dtype of returned batches (Keras's floatx, float32, by default). ``uint8`` is
            accepted when no normalisation is configured and keeps the whole path in uint8.
        preprocessing_function: Keras's per-image hook, run on the float image before ``rescale``.
        stats: featurewise statistics from :meth:`fit` (or saved from an earlier fit).
    """

    def __init__(
        self,
        config: AugmentConfig | None = None,
        *,
        output_dtype: Any = np.float32,
        preprocessing_function: PreprocessingFunction | None = None,
        stats: normalize.FitStats | None = None,
        zca_memory_limit: int = normalize.DEFAULT_ZCA_MEMORY_LIMIT,
    ):
        self.config = config or AugmentConfig()
        self.output_dtype = np.dtype(output_dtype)
        self.preprocessing_function = preprocessing_function
        self.stats = stats
        self.zca_memory_limit = zca_memory_limit
        c = self.config
        self._normalises = bool(
            c.rescale
            or c.samplewise_center
            or c.samplewise_std_normalization
            or c.needs_fit
            or preprocessing_function
        )
        if self.output_dtype == np.uint8 and self._normalises:
            raise ConfigError(
                "output_dtype uint8 cannot hold normalised values; drop rescale, samplewise/"
                "featurewise options and preprocessing_function, or use a float output_dtype"
            )
        self._extras = [pixel.build_extra(e.name, e.params) for e in c.extras]
        self._float_dtype = self.output_dtype if self.output_dtype.kind == "f" else np.dtype(np.float32)
        # Keras multiplies by rescale first thing after preprocessing_function: without that hook,
        # augment_batch multiplies while the pixels are in cache (the tables themselves, mostly).
        self._rescale = (
            self._float_dtype.type(c.rescale)
            if c.rescale and c.rescale > 0 and preprocessing_function is None
            else None
        )
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_local"]  # per-thread scratch buffers are not state
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # ---- parameters ----------------------------------------------------------------------------
    def draw(
        self,
        image_shape: tuple[int, ...],
        indices: Sequence[int] | np.ndarray,
        epoch: int = 0,
        seed: int = 0,
    ) -> P.BatchParams:
        """Parameters for samples ``indices`` of ``epoch``; the same key always gives the same draw."""
        self._check_extras_fit(image_shape)
        return P.draw(self.config, image_shape, indices, epoch=epoch, seed=seed)

    # ---- the batch API --------------------------------------------------------------------------
    def augment_batch(
        self,
        images: np.ndarray,
        indices: Sequence[int] | np.ndarray | None = None,
        epoch: int = 0,
        seed: int = 0,
        *,
        standardize: bool = True,
        rows: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, P.BatchParams]:
        """Augment ``images`` (N, H, W, C) as samples ``indices`` of ``epoch``; returns the batch and
        the parameters drawn, one Keras dict per sample (``params[i]``), for replay and previews.

        rows: sample i is ``images[rows[i]]``, read in place: ``images`` may then be a whole data
            set, of which no copy of the batch is made (the drop-in's ``flow()`` passes its array).
        """
        images = _as_batch(images)
        n = len(images) if rows is None else len(rows)
        if indices is None:
            indices = np.arange(n)
        indices = np.asarray(indices)
        if indices.shape != (n,):
            raise ValueError(f"indices must give one index per image ({n}), but got shape {indices.shape}")
        rows = None if rows is None else np.asarray(rows, dtype=np.intp)
        params = self.draw(images.shape[1:], indices, epoch, seed)
        if not standardize:
            return self._transform(images, params, None, None, rows), params
        target = self._float_dtype if self._normalises else self.output_dtype
        if images.dtype.kind == "f" and target.kind == "f" and images.dtype.itemsize > target.itemsize:
            # Warped in the output's precision, as Keras's flow() converts its array to the
            # generator's dtype when it is built: a wider warp would buy nothing the output keeps.
            images = (images if rows is None else images[rows]).astype(target)
            rows = None
        if self._rescale is not None:  # folded into the pixel pass, with the same rounding
            batch = self._transform(images, params, self._float_dtype, self._rescale, rows)
            return self._standardize(batch, per_sample=True, rescaled=True), params
        batch = self._transform(
            images, params, self._float_dtype if self._normalises else self.output_dtype, None, rows
        )
        return self.standardize_batch(batch), params

    def transform_batch(self, images: np.ndarray, params: P.BatchParams, dtype: Any = None) -> np.ndarray:
        """Geometry, Keras pixel transforms and extras for given parameters; no normalisation.

        uint8 input stays uint8 through every operation and is converted to ``dtype`` (default:
        the working dtype) once; without extras the conversion is fused into the pixel lookup table.
        """
        return self._transform(images, params, dtype, None)

    def _transform(
        self,
        images: np.ndarray,
        params: P.BatchParams,
        dtype: Any,
        scale: Any,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """:meth:`transform_batch`, times ``scale`` (a scalar of ``dtype``) when given; with ``rows``,
        sample i is ``images[rows[i]]``."""
        images = _as_batch(images)
        c = self.config
        _, h, w, ch = images.shape
        n = len(images) if rows is None else len(rows)
        out_h, out_w = self._check_extras_fit(images.shape[1:])
        cols = params.columns
        work = images
        if images.dtype not in (np.uint8, np.float32, np.float64):
            work = (images if rows is None else images[rows]).astype(np.float32)
            rows = None
        rows = np.arange(n) if rows is None else rows
        dtype = work.dtype if dtype is None else np.dtype(dtype)
        mats = geometry.keras_matrices(
            cols["theta"], cols["tx"], cols["ty"], cols["shear"], cols["zx"], cols["zy"],
            cols["flip_horizontal"], cols["flip_vertical"], h, w, c.keras_shift_axes,
        )  # fmt: skip
        replay = self._extras_plan(ch, params)
        if n == 0:  # an empty batch (Keras's iterators can ask for one): its shape, nothing to do
            if replay is False:
                params.extras = []
            return np.empty((0, out_h, out_w, ch), dtype)
        chunk = min(n, max(1, _CHUNK_BYTES // work[0].nbytes))
        # With extras, the pixel pass keeps the working dtype (uint8 rounded) for them; the
        # conversion to dtype and the scale come after.
        pixels = _PixelPass(
            work.dtype,
            cols["channel_shift_intensity"],
            cols["brightness"],
            ch,
            dtype if replay is None else work.dtype,
            scale if replay is None else None,
            self._thread_buffer("levels", (chunk, h, w, ch), np.dtype(np.uint8)),
            None
            if work.dtype == np.uint8
            else self._thread_buffer("wide", (chunk, h, w, ch), np.dtype(np.int16)),
        )
        warp = (c.fill_mode, c.cval, c.interpolation_order)
        staged = (
            self._thread_buffer("staging", work.shape[1:], work.dtype)
            if work[0].nbytes >= _STAGING_BYTES
            else None
        )
        out = np.empty((n, h, w, ch), dtype) if replay is None else None
        if replay is None and not pixels.needed and dtype == work.dtype:
            # Nothing after the warp: straight into the output.
            assert out is not None
            for s in range(0, n, chunk):
                part = slice(s, s + chunk)
                geometry.warp_batch(work, mats[part], *warp, out=out[part], staging=staged, rows=rows[part])
                if scale is not None:
                    out[s : s + chunk] *= scale
            return out
        # Warped into the output itself when it has the working dtype: one image-sized buffer less
        # to keep in cache (float input at 224x224 ran about 10% faster).
        in_place = replay is None and dtype == work.dtype
        records: list[list[P.ExtraDraw]] = []
        gates = None
        if replay is False:
            assert params.keys is not None  # _extras_plan checked
            gates = P.extra_gates(params.keys, [e.p for e in c.extras])
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            if in_place:
                assert out is not None
                warped = out[s:e]
            else:
                warped = self._thread_buffer("warped", (e - s, h, w, ch), work.dtype)
            geometry.warp_batch(work, mats[s:e], *warp, out=warped, staging=staged, rows=rows[s:e])
            if replay is None:
                assert out is not None
                pixels.apply(s, warped, warped if in_place else out[s:e])
                continue
            pixels.apply(s, warped, warped)
            for j, i in enumerate(range(s, e)):
                img, drawn = self._apply_extras(warped[j], i, params, None if gates is None else gates[i])
                records.append(drawn)
                if out is None:
                    out = np.empty((n, *img.shape), dtype)
                elif img.shape != out.shape[1:]:
                    raise ValueError(
                        f"extras produced images of different shapes {img.shape}, {out.shape[1:]}"
                    )
                out[i] = img
                if scale is not None:
                    out[i] *= scale
        if replay is not None:
            params.extras = records
        assert out is not None
        return out

    def _thread_buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        # Fresh pages cost a page fault each (about as much as the warp at 224x224); buffers reused
        # per thread (Keras's PyDataset may call from several threads) avoid that.
        buffers: dict[str, np.ndarray] = self._local.__dict__.setdefault("buffers", {})
        size = int(np.prod(shape))
        buf = buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = buffers[name] = np.empty(size, dtype)
        return buf[:size].reshape(shape)

    def standardize_batch(self, batch: np.ndarray) -> np.ndarray:
        """Convert to ``output_dtype`` once, then Keras's normalisation order; a float batch of that
        dtype is normalised in place."""
        if not self._normalises:
            return batch.astype(self.output_dtype, copy=False)
        x = batch.astype(self._float_dtype, copy=False)
        if self.preprocessing_function is not None:
            for i in range(len(x)):
                x[i] = self.preprocessing_function(x[i])
        return self._standardize(x, per_sample=True)

    def _standardize(
        self, x: np.ndarray, per_sample: bool, stats: normalize.FitStats | None = None, rescaled: bool = False
    ) -> np.ndarray:
        """Keras's normalisation order on float ``x``; ``stats`` overrides the fitted ones (the
        drop-in passes its own, in its data format, and warns instead of raising); ``rescaled``: ``x``
        was already multiplied by ``rescale``."""
        c = self.config
        if stats is None:
            if c.needs_fit and self.stats is None:
                raise RuntimeError(
                    "featurewise_center, featurewise_std_normalization or zca_whitening is set but "
                    "the statistics were never fitted: call fit(data) first"
                )
            stats = self.stats
        return normalize.standardize(
            x,
            stats,
            rescale=None if rescaled else c.rescale,
            samplewise_center=c.samplewise_center,
            samplewise_std_normalization=c.samplewise_std_normalization,
            featurewise_center=c.featurewise_center,
            featurewise_std_normalization=c.featurewise_std_normalization,
            zca_whitening=c.zca_whitening,
            per_sample=per_sample,
            out=x if x.dtype.kind == "f" else None,  # float batches are normalised in place (Keras)
        )

    # ---- single images, Keras style --------------------------------------------------------------
    def apply_transform(self, image: np.ndarray, transform_parameters: dict[str, Any]) -> np.ndarray:
        """Keras's ``apply_transform(x, params)`` for one (H, W, C) image and a Keras params dict."""
        if image.ndim != 3:
            raise ValueError(f"apply_transform expects one (H, W, C) image, but got shape {image.shape}")
        records = [transform_parameters]
        params = P.BatchParams(columns=P.columns_from_dicts(records))
        if self._extras:
            extras = transform_parameters.get("extras")
            if extras is None:
                raise ValueError(
                    "this config has extras: pass params drawn by this engine (they carry 'extras')"
                )
            params.extras = [[P.ExtraDraw.from_record(e) for e in extras]]
        return self.transform_batch(image[None], params)[0]

    # ---- fitting ----------------------------------------------------------------------------------
    def fit(
        self,
        data: np.ndarray | Iterable[np.ndarray],
        augment: bool = False,
        rounds: int = 1,
        seed: int = 0,
    ) -> normalize.FitStats:
        """Fit featurewise statistics from an (N, H, W, C) array or an iterable of such batches.

        With ``augment``, fit on ``rounds`` augmented copies (Keras's option). Returns the stats,
        also kept on the engine for :meth:`standardize_batch`.
        """
        c = self.config
        if isinstance(data, np.ndarray):
            data = _as_batch(data)

            def batches() -> Iterable[np.ndarray]:
                yield data

        else:
            if augment and rounds > 1 and iter(data) is data:
                raise ValueError(
                    f"fit(augment=True, rounds={rounds}) reads the data {rounds} times, but got a one-shot "
                    f"iterator ({type(data).__name__}); pass a list, an array or a re-iterable dataset"
                )

            def batches() -> Iterable[np.ndarray]:
                yield from (_as_batch(np.asarray(b)) for b in data)

        def prepared() -> Iterable[np.ndarray]:
            offset = 0
            for r in range(rounds if augment else 1):
                for b in batches():
                    if augment:
                        idx = np.arange(offset, offset + len(b))
                        b, _ = self.augment_batch(b, idx, epoch=r, seed=seed, standardize=False)
                        offset += len(b)
                    x = b.astype(np.float32)
                    if c.rescale:
                        x *= np.float32(c.rescale)
                    yield x
                offset = 0

        if isinstance(data, np.ndarray) and not augment:
            x = data.astype(np.float32)
            if c.rescale:
                x *= np.float32(c.rescale)
            self.stats = normalize.fit_array(
                x, c.featurewise_center, c.featurewise_std_normalization, c.zca_whitening,
                c.zca_epsilon, self.zca_memory_limit,
            )  # fmt: skip
        else:
            self.stats = normalize.fit_batches(
                prepared(), c.featurewise_center, c.featurewise_std_normalization, c.zca_whitening,
                c.zca_epsilon, self.zca_memory_limit,
            )  # fmt: skip
        return self.stats

    # ---- internals ---------------------------------------------------------------------------------
    def _check_extras_fit(self, image_shape: tuple[int, ...]) -> tuple[int, int]:
        """Refuse crops larger than the image here, where its size is first known: albumentations
        would fail on the first image, after the batch's geometry was done. Returns the (height,
        width) the extras leave."""
        h, w = int(image_shape[0]), int(image_shape[1])
        where = ""
        for spec, transform in zip(self.config.extras, self._extras, strict=True):
            size = pixel.crop_size(spec.name, transform)
            if size is None:
                continue
            if size[0] > h or size[1] > w:
                raise ConfigError(
                    f"extra {spec.name!r} crops {size[0]}x{size[1]} (height x width), but the images "
                    f"are {h}x{w}{where}: choose a crop that fits, or set pad_if_needed: true"
                )
            h, w = size  # the next extra sees the cropped image
            where = f" after extra {spec.name!r}"
        return h, w

    def _extras_plan(self, channels: int, params: P.BatchParams) -> bool | None:
        """None without extras; otherwise whether they replay recorded draws (True) or draw (False)."""
        if not self._extras:
            return None
        for e in self.config.extras:
            if pixel.needs_rgb(e.name) and channels != 3:
                raise ConfigError(
                    f"extra {e.name!r} needs RGB images (3 channels), but got {channels} channel(s)"
                )
        if params.extras:
            return True
        if params.keys is None:
            raise ValueError("params carry neither sample keys nor recorded extras to replay")
        return False

    def _thread_extras(self) -> list[Any]:
        # albumentations transforms hold their generators: each thread draws with its own copies.
        extras: list[Any] | None = getattr(self._local, "extras", None)
        if extras is None:
            extras = self._local.extras = copy.deepcopy(self._extras)
        return extras

    def _apply_extras(
        self, image: np.ndarray, i: int, params: P.BatchParams, gates: np.ndarray | None
    ) -> tuple[np.ndarray, list[P.ExtraDraw]]:
        """The extras on sample ``i``: replayed from ``params.extras`` (``gates`` None), or drawn
        from its key where its ``gates`` (one bool per extra) let them apply."""
        is_float = image.dtype.kind == "f"
        img = (image / 255.0).astype(np.float32) if is_float else image  # albumentations: [0, 1]
        transforms = self._thread_extras()
        applied: list[P.ExtraDraw] = []
        for k, (spec, transform) in enumerate(zip(self.config.extras, transforms, strict=True)):
            try:
                if gates is None:
                    record = P.ExtraDraw.from_record(params.extras[i][k])
                elif gates[k]:
                    assert params.keys is not None  # _extras_plan checked
                    record = P.ExtraDraw(
                        spec.name, True, P.draw_extra(transform, img, params.keys[i : i + 1], k)
                    )
                else:
                    record = P.ExtraDraw(spec.name, False, {})
                if record.applied:
                    img = pixel.apply_extra(transform, img, record.params)
            except Exception as err:
                raise ValueError(
                    f"extra {spec.name!r} failed on an image of shape {image.shape}: {err}"
                ) from err
            applied.append(record)
        if is_float:
            img = img.astype(image.dtype) * image.dtype.type(255.0)
        return img, applied


class _PixelPass:
    """Keras's channel shift and brightness for one batch, a chunk of warped images at a time.

    uint8 images go through one lookup table each: the batch's tables are made before the warp and
    clipped to each image's range (:func:`color.clipped_luts`). Float images within 0-255 are cut to
    the uint8 levels Keras's brightness truncates to, then looked up in a brightness table; the rest
    take Keras's float path. ``scale`` (rescale) multiplies every result in ``dtype``, in the tables
    where there are tables.
    """

    def __init__(
        self,
        work: np.dtype,
        intensity: np.ndarray,
        factor: np.ndarray,
        channels: int,
        dtype: np.dtype,
        scale: Any,
        levels: np.ndarray,
        wide: np.ndarray | None,
    ):
        self.intensity, self.factor, self.dtype, self.scale = intensity, factor, dtype, scale
        self.shifts, self.brights = ~np.isnan(intensity), ~np.isnan(factor)
        # Keras adds a Python float to a float32 image: rounded to float32 first (NEP 50).
        self.shift32 = np.where(self.shifts, intensity, 0.0).astype(np.float32)
        self.uint8 = work == np.uint8
        self.channels, self.levels, self.wide = channels, levels, wide
        pixel_ops = bool(self.shifts.any() or self.brights.any())
        self.needed = pixel_ops or (self.uint8 and dtype != np.uint8)
        self.tables: np.ndarray | None = None
        self.bounds: np.ndarray | None = None
        self.monotone = True
        n = len(intensity)
        if self.uint8 and self.needed:
            # The tables of the shifted levels (clipped to 0-255 only: uint8 images never leave it)
            # and, to clip them per image, of the unshifted ones: both in one call.
            unshifted = np.full(n if self.shifts.any() else 0, np.nan)
            both = color.pixel_luts(
                np.concatenate([intensity, unshifted]), np.concatenate([factor, factor[: len(unshifted)]]),
                np.zeros(n + len(unshifted)), np.full(n + len(unshifted), 255.0), channels, dtype,
            )  # fmt: skip
            self.tables, self.bounds = both[:n], (both[n:] if len(unshifted) else None)
            # The clip commutes with the tables only while they never decrease.
            bright = factor[self.brights]
            self.monotone = bool(np.all(bright >= 0) and np.all(np.isfinite(bright)))
        elif not self.uint8 and self.brights.any():
            bright = color.pixel_luts(
                np.full(n, np.nan), factor, np.zeros(n), np.zeros(n), channels, np.dtype(np.float32)
            )
            self.tables = bright.astype(work).astype(dtype)
        if scale is not None:
            for t in (self.tables, self.bounds):
                if t is not None:
                    t *= scale

    def apply(self, start: int, images: np.ndarray, out: np.ndarray) -> None:
        """The pixel transforms of samples ``start``, ``start + 1``, ... on their warped ``images``
        (used as scratch), into ``out`` (``images`` itself allowed)."""
        if self.uint8:
            self._apply_uint8(start, images, out)
            return
        stop = start + len(images)
        if not (self.shifts[start:stop].any() or self.brights[start:stop].any()):
            _copy_scaled(images, out, self.scale)
            return
        flat = images.reshape(len(images), -1)
        lows, highs = flat.min(axis=1), flat.max(axis=1)
        if self._cuts_to_levels(start, lows, highs):
            assert self.tables is not None and self.wide is not None
            levels = self.levels[: len(images)]
            color.truncated_levels(
                images, self.shift32[start:stop], lows, highs, levels, self.wide[: len(images)]
            )
            _lut(levels, self.tables[start:stop], out)
            return
        for j in range(len(images)):
            self._apply_float(start + j, images[j], out[j], float(lows[j]), float(highs[j]))

    def _cuts_to_levels(self, start: int, lows: np.ndarray, highs: np.ndarray) -> bool:
        """Whether a float32 chunk is cut to levels at once (:func:`color.truncated_levels`): all its
        images brightened and inside 0-255 after their shift (Keras's own check, on the shifted
        images' min and max: the shift is monotone; NaN and infinite ends fail it), every shift below
        30,000. Otherwise the chunk takes Keras's path image by image."""
        stop = start + len(lows)
        if lows.dtype != np.float32 or not self.brights[start:stop].all():
            return False
        shift = self.shift32[start:stop]
        # min(max(x, lows), highs): the shifted ends as channel_shift clips them
        low = np.minimum(np.maximum(lows + shift, lows), highs)
        high = np.minimum(np.maximum(highs + shift, lows), highs)
        return bool(low.min() >= 0 and high.max() <= 255 and np.abs(shift).max() < 30000)

    def _apply_uint8(self, start: int, images: np.ndarray, out: np.ndarray) -> None:
        if self.tables is None:
            if out is not images:
                np.copyto(out, images, casting="unsafe")
            return
        stop = start + len(images)
        tables = self.tables[start:stop]
        if self.bounds is not None:
            flat = images.reshape(len(images), -1)
            lows, highs = flat.min(axis=1), flat.max(axis=1)
            if self.monotone:
                tables = color.clipped_luts(tables, self.bounds[start:stop], lows, highs)
            else:
                tables = color.pixel_luts(
                    self.intensity[start:stop],
                    self.factor[start:stop],
                    lows,
                    highs,
                    self.channels,
                    self.dtype,
                )
                if self.scale is not None:
                    tables *= self.scale
        _lut(images, tables, out)

    def _apply_float(self, i: int, image: np.ndarray, out: np.ndarray, low: float, high: float) -> None:
        shift, bright = bool(self.shifts[i]), bool(self.brights[i])
        intensity = float(self.intensity[i])
        if bright:
            shifted = color.shifted_range(low, high, intensity, image.dtype)
            if shifted[0] >= 0 and shifted[1] <= 255:
                assert self.tables is not None
                levels = color.brightness_levels(image, intensity, low, high, self.levels[0])
                _lut(levels[None], self.tables[i : i + 1], out[None])
                return
            # Off the 0-255 scale Keras rescales the image around its own range first.
            if shift:
                color.channel_shift_into(image, intensity, low, high, image)
            image = color.brightness(image, float(self.factor[i]))
        elif shift:
            target = out if out.dtype == image.dtype else image
            color.channel_shift_into(image, intensity, low, high, target)
            image = target
        _copy_scaled(image, out, self.scale)


def _copy_scaled(images: np.ndarray, out: np.ndarray, scale: Any) -> None:
    if out is not images:
        np.copyto(out, images, casting="unsafe")
    if scale is not None:
        out *= scale


def _lut(images: np.ndarray, tables: np.ndarray, out: np.ndarray) -> None:
    """``cv2.LUT`` of each (H, W, C) uint8 image of a batch through its own table (a float table
    converts the dtype in the same pass)."""
    if tables.dtype not in _LUT_DTYPES:  # float16 and the like: numpy's indexing
        for image, table, dst in zip(images, tables, out, strict=True):
            dst[...] = table[image] if table.ndim == 1 else table[image, np.arange(image.shape[-1])]
        return
    if images.shape[-1] == 1:  # OpenCV sees (H, W, 1) as (H, W): keep the output's trailing axis
        images, out = images[..., 0], out[..., 0]
    tables = (
        tables.reshape(len(tables), 1, 256, -1) if tables.ndim == 3 else tables.reshape(len(tables), 1, 256)
    )
    for j in range(len(images)):
        cv2.LUT(images[j], tables[j], dst=out[j])


def _as_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:  # (N, H, W) grayscale
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, H, W, C) or (N, H, W), but got {images.shape}")
    if not images.flags.c_contiguous:
        images = np.ascontiguousarray(images)
    return images
