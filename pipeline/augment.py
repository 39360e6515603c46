"""The augmentation engine: draw per-sample parameters, apply the kernels, normalise.

>>> aug = Augmenter(AugmentConfig(rotation_range=20, horizontal_flip=True))
>>> batch, params = aug.augment_batch(images, indices=range(len(images)), epoch=0, seed=42)
"""

from __future__ import annotations

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
    ) -> tuple[np.ndarray, P.BatchParams]:
        """Augment ``images`` (N, H, W, C) as samples ``indices`` of ``epoch``; returns the batch and
        the parameters drawn, one Keras dict per sample (``params[i]``), for replay and previews.
        """
        images = _as_batch(images)
        if indices is None:
            indices = np.arange(len(images))
        indices = np.asarray(indices)
        if indices.shape != (len(images),):
            raise ValueError(
                f"indices must give one index per image ({len(images)}), but got shape {indices.shape}"
            )
        params = self.draw(images.shape[1:], indices, epoch, seed)
        if not standardize:
            return self.transform_batch(images, params), params
        batch = self.transform_batch(
            images, params, dtype=self._float_dtype if self._normalises else self.output_dtype
        )
        return self.standardize_batch(batch), params

    def transform_batch(self, images: np.ndarray, params: P.BatchParams, dtype: Any = None) -> np.ndarray:
        """Geometry, Keras pixel transforms and extras for given parameters; no normalisation.

        uint8 input stays uint8 through every operation and is converted to ``dtype`` (default:
        the working dtype) once; without extras the conversion is fused into the pixel lookup table.
        """
        images = _as_batch(images)
        c = self.config
        n, h, w, ch = images.shape
        self._check_extras_fit(images.shape[1:])
        cols = params.columns
        uint8_path = images.dtype == np.uint8
        work = images
        if not uint8_path and images.dtype not in (np.float32, np.float64):
            work = images.astype(np.float32)
        dtype = work.dtype if dtype is None else np.dtype(dtype)
        mats = geometry.keras_matrices(
            cols["theta"], cols["tx"], cols["ty"], cols["shear"], cols["zx"], cols["zy"],
            cols["flip_horizontal"], cols["flip_vertical"], h, w, c.keras_shift_axes,
        )  # fmt: skip
        identity = np.all(mats == np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), axis=(1, 2))
        intensity, factor = cols["channel_shift_intensity"], cols["brightness"]
        has_shift, pixel_ops = (
            ~np.isnan(intensity),
            not np.isnan(intensity).all() or not np.isnan(factor).all(),
        )
        extras = self._extras_plan(ch, params)
        lut_path = uint8_path and (pixel_ops or dtype != np.uint8)

        # Pass 1: warp. Into the output when nothing else follows, otherwise into a per-thread
        # scratch batch whose pages stay mapped from call to call.
        direct = not (lut_path or pixel_ops) and extras is None and dtype == work.dtype
        warped = np.empty((n, h, w, ch), dtype) if direct else self._scratch(work.shape, work.dtype)
        low, high = np.zeros(n), np.full(n, 255.0)
        # OpenCV's warp reads its source in a rotated order; from a small, hot copy it runs about a
        # third faster on large images than from inside a big batch (measured in bench/augment.py).
        staged = self._staging(work.shape[1:], work.dtype) if work[0].nbytes >= 16384 else None
        for i in range(n):
            if identity[i]:
                np.copyto(warped[i], work[i])
            else:
                src = work[i]
                if staged is not None:
                    np.copyto(staged, src)
                    src = staged
                geometry.warp(src, mats[i], c.fill_mode, c.cval, c.interpolation_order, out=warped[i])
            if uint8_path and has_shift[i]:
                low[i], high[i], _, _ = cv2.minMaxLoc(warped[i].reshape(h, -1))
        if direct:
            return warped

        # Pass 2: Keras's pixel transforms (one lookup table per image on uint8), extras, conversion.
        luts = None
        if lut_path:
            lut_dtype = np.dtype(np.uint8) if extras is not None else dtype
            luts = color.pixel_luts(intensity, factor, low, high, ch, lut_dtype)
        out = None
        records: list[list[dict[str, Any]]] = []
        for i in range(n):
            img = warped[i]
            if luts is not None:
                if extras is None:
                    if out is None:
                        out = np.empty((n, h, w, ch), dtype)
                    _lut(img, luts[i], out[i])
                    continue
                _lut(img, luts[i], img)
            elif pixel_ops:
                if has_shift[i]:
                    img[...] = color.channel_shift(img, float(intensity[i]))
                if not np.isnan(factor[i]):
                    img[...] = color.brightness(img, float(factor[i]))
            if extras is not None:
                img, rec = self._apply_extras(img, i, params, extras)
                records.append(rec)
            if out is None:
                out = np.empty((n, *img.shape), dtype)
            elif img.shape != out.shape[1:]:
                raise ValueError(f"extras produced images of different shapes {img.shape}, {out.shape[1:]}")
            out[i] = img
        if extras is not None:
            params.extras = records
        assert out is not None
        return out

    def _staging(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        staged = getattr(self._local, "staging", None)
        if staged is None or staged.shape != shape or staged.dtype != dtype:
            staged = np.empty(shape, dtype)
            self._local.staging = staged
        return staged

    def _scratch(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        # Fresh pages cost a page fault each (about as much as the warp at 224x224); a scratch
        # batch reused per thread (Keras's PyDataset may call from several threads) avoids that.
        cache = getattr(self._local, "scratch", None)
        if cache is None or cache.shape[1:] != shape[1:] or cache.dtype != dtype or len(cache) < shape[0]:
            cache = np.empty(shape, dtype)
            self._local.scratch = cache
        return cache[: shape[0]]

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
        self, x: np.ndarray, per_sample: bool, stats: normalize.FitStats | None = None
    ) -> np.ndarray:
        """Keras's normalisation order on float ``x``; ``stats`` overrides the fitted ones (the
        drop-in passes its own, in its data format, and warns instead of raising)."""
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
            rescale=c.rescale,
            samplewise_center=c.samplewise_center,
            samplewise_std_normalization=c.samplewise_std_normalization,
            featurewise_center=c.featurewise_center,
            featurewise_std_normalization=c.featurewise_std_normalization,
            zca_whitening=c.zca_whitening,
            per_sample=per_sample,
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
            params.extras = [extras]
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
    def _check_extras_fit(self, image_shape: tuple[int, ...]) -> None:
        """Refuse crops larger than the image here, where its size is first known: albumentations
        would fail on the first image, after the batch's geometry was done."""
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

    def _extras_plan(self, channels: int, params: P.BatchParams) -> bool | None:
        """None without extras; otherwise whether they replay recorded draws (True) or draw (False)."""
        if not self._extras:
            return None
        for e in self.config.extras:
            if pixel.needs_rgb(e.name) and channels != 3:
                raise ValueError(
                    f"extra {e.name!r} needs RGB images (3 channels), but got {channels} channel(s)"
                )
        if params.extras:
            return True
        if params.keys is None:
            raise ValueError("params carry neither sample keys nor recorded extras to replay")
        return False

    def _apply_extras(
        self, image: np.ndarray, i: int, params: P.BatchParams, replay: bool
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        is_float = image.dtype.kind == "f"
        img = (image / 255.0).astype(np.float32) if is_float else image  # albumentations: [0, 1]
        applied: list[dict[str, Any]] = []
        for k, (spec, transform) in enumerate(zip(self.config.extras, self._extras, strict=True)):
            if replay:
                rec = params.extras[i][k]
                if not rec["applied"]:
                    applied.append(rec)
                    continue
                seed = int(rec["seed"])
            else:
                key = params.keys[i : i + 1]  # type: ignore[index]
                seed = int(P.bits(key, P.SLOT_EXTRAS + 2 * k + 1)[0] >> np.uint64(1))
                if P.uniform01(key, P.SLOT_EXTRAS + 2 * k)[0] >= spec.p:
                    applied.append({"name": spec.name, "applied": False, "seed": seed})
                    continue
            try:
                img, drawn = pixel.apply_extra(transform, img, seed)
            except Exception as err:
                raise ValueError(
                    f"extra {spec.name!r} failed on an image of shape {image.shape}: {err}"
                ) from err
            applied.append({"name": spec.name, "applied": True, "seed": seed, "params": drawn})
        if is_float:
            img = img.astype(image.dtype) * image.dtype.type(255.0)
        return img, applied


def _lut(image: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    """``cv2.LUT`` on an (H, W, C) image; a float table converts the dtype in the same pass."""
    if image.shape[-1] == 1:  # OpenCV sees (H, W, 1) as (H, W): keep the output's trailing axis
        image, out = image[..., 0], out[..., 0]
    table = table.reshape(1, 256, -1) if table.ndim == 2 else table.reshape(1, 256)
    cv2.LUT(image, table, dst=out)


def _as_batch(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3:  # (N, H, W) grayscale
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, H, W, C) or (N, H, W), but got {images.shape}")
    if not images.flags.c_contiguous:
        images = np.ascontiguousarray(images)
    return images
