"""``check_kernel``: the contract every pure kernel in ``pipeline/functional`` keeps.

A kernel here is an array-in, array-out function with its parameters bound. For each channel count
it accepts (1, 3, 4 and 5 unless it says otherwise) and each dtype it declares, on real photographs:

- the input is not mutated;
- dtype and shape are kept (``keeps_dtype=False`` for kernels that return float from integers,
  ``keeps_shape=False`` for crops, which keep the channels);
- the same call gives the same bytes twice;
- a batched kernel equals itself applied to each image alone, and ``out=`` fills and returns the
  given array with exactly the bytes it returns without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

CHANNELS = (1, 3, 4, 5)


@dataclass(frozen=True)
class Kernel:
    """``call(x, out)`` runs the kernel on ``x`` (one (H, W, C) image, or an (N, H, W, C) batch when
    ``batched``), writing into ``out`` when the kernel takes ``out=`` and ``out`` is not None."""

    name: str
    call: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    dtypes: Sequence[type] = (np.uint8, np.float32, np.float64)
    channels: Sequence[int] = CHANNELS
    batched: bool = False
    takes_out: bool = False
    keeps_dtype: bool = True
    keeps_shape: bool = True
    # A matrix product (ZCA) is summed in an order BLAS picks by the batch's size: equal to rounding.
    batch_rtol: float = 0.0

    def __str__(self) -> str:
        return self.name


def with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """An (H, W, ``channels``) image built from an RGB photo: gray, RGB, RGB + gray, RGB + two
    differently blurred grays (so every channel differs and a swapped channel shows)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if channels == 1:
        return gray[..., None]
    planes = [image[..., k] for k in range(3)]
    extra = [gray, cv2.GaussianBlur(gray, (5, 5), 2.0)]
    return np.ascontiguousarray(np.dstack((planes + extra)[:channels]))


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def check_kernel(kernel: Kernel, photos: np.ndarray) -> None:
    """Assert the contract for ``kernel`` on ``photos``, an (N, H, W, 3) uint8 batch of RGB photos."""
    for channels in kernel.channels:
        batch_u8 = np.stack([with_channels(p, channels) for p in photos])
        for dtype in kernel.dtypes:
            where = f"{kernel} on {channels} channel(s), {np.dtype(dtype).name}"
            batch = batch_u8.astype(dtype)
            x = batch if kernel.batched else batch[0]
            pristine = x.copy()
            got = kernel.call(x, None)
            assert _same_bytes(x, pristine), f"{where}: the input was modified"
            want_dtype = x.dtype if kernel.keeps_dtype else got.dtype
            assert got.dtype == want_dtype, f"{where}: dtype {got.dtype}, expected {want_dtype}"
            if kernel.keeps_shape:
                assert got.shape == x.shape, f"{where}: shape {got.shape}, expected {x.shape}"
            else:
                assert got.shape[-1] == x.shape[-1], f"{where}: {got.shape[-1]} channels out"
            assert _same_bytes(kernel.call(x, None), got), f"{where}: two calls differ"
            if kernel.batched:
                alone = np.concatenate([kernel.call(batch[i : i + 1], None) for i in range(len(batch))])
                if kernel.batch_rtol:
                    np.testing.assert_allclose(
                        alone,
                        got,
                        rtol=kernel.batch_rtol,
                        atol=kernel.batch_rtol,
                        err_msg=f"{where}: batched differs from one image at a time",
                    )
                else:
                    assert _same_bytes(alone, got), f"{where}: batched differs from one image at a time"
            if kernel.takes_out:
                out = np.full_like(got, 7)  # a value the kernel would have to overwrite
                returned = kernel.call(x, out)
                assert returned is out, f"{where}: out= was not the returned array"
                assert _same_bytes(out, got), f"{where}: out= differs from the returned array"
                assert _same_bytes(x, pristine), f"{where}: the input was modified with out="
