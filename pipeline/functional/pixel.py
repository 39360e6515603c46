"""Pixel-level extras beyond Keras, on albumentations 2.0.8 (MIT), applied with given parameters.

Each extra is declared as ``{name, params, p}``; ``params`` are the keyword arguments of the
albumentations class named in :data:`EXTRA_TRANSFORMS`, over defaults that restrict the class to the
named effect (``hue`` is ``HueSaturationValue`` with the saturation and value shifts at zero).
The random parameters of each application are drawn in :mod:`pipeline.params`
(``draw_extra``); here they are only applied.
"""

from __future__ import annotations

import inspect
import os
import warnings
from typing import Any

import numpy as np

# albumentations checks PyPI for a newer release at import unless told not to; nothing may download.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

# name -> (albumentations class, defaults that restrict it to the named effect, needs 3 channels)
EXTRA_TRANSFORMS: dict[str, tuple[type, dict[str, Any], bool]] = {
    "saturation": (
        A.HueSaturationValue,
        {"hue_shift_limit": 0, "sat_shift_limit": (-30, 30), "val_shift_limit": 0},
        True,
    ),
    "hue": (
        A.HueSaturationValue,
        {"hue_shift_limit": (-20, 20), "sat_shift_limit": 0, "val_shift_limit": 0},
        True,
    ),
    "grayscale": (A.ToGray, {"num_output_channels": 3}, True),
    "color_jitter": (A.ColorJitter, {}, True),
    "contrast": (
        A.RandomBrightnessContrast,
        {"brightness_limit": 0, "contrast_limit": (-0.2, 0.2)},
        False,
    ),
    "blur": (A.Blur, {"blur_limit": (3, 7)}, False),
    "gaussian_blur": (A.GaussianBlur, {"blur_limit": (3, 7), "sigma_limit": (0.5, 3.0)}, False),
    "median_blur": (A.MedianBlur, {"blur_limit": (3, 7)}, False),
    "noise": (A.GaussNoise, {"std_range": (0.02, 0.1)}, False),
    "cutout": (A.CoarseDropout, {}, False),
    "equalize": (A.Equalize, {}, False),
    "gamma": (A.RandomGamma, {}, False),
    "rgb_shift": (A.RGBShift, {}, True),
    "sharpen": (A.Sharpen, {}, False),
    "random_crop": (A.RandomCrop, {}, False),
    "center_crop": (A.CenterCrop, {}, False),
}
CROPS = frozenset({"random_crop", "center_crop"})


def build_extra(name: str, params: dict[str, Any]) -> Any:
    """Construct the albumentations transform for one extra; bad parameters raise ValueError."""
    cls, defaults, _ = EXTRA_TRANSFORMS[name]
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("p", "always_apply")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"extra {name!r} ({cls.__name__}) has no parameter {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            transform = cls(**{**defaults, **params}, p=1.0)
    except Exception as err:  # albumentations raises pydantic errors or warns; both are bad config
        raise ValueError(f"extra {name!r} ({cls.__name__}) rejected {params!r}: {err}") from None
    transform.strict = False
    return transform


def needs_rgb(name: str) -> bool:
    return EXTRA_TRANSFORMS[name][2]


def crop_size(name: str, transform: Any) -> tuple[int, int] | None:
    """(height, width) that crop extra ``name`` cuts; None for an extra that keeps the size or pads
    the image up to the crop (``pad_if_needed``)."""
    if name not in CROPS or transform.pad_if_needed:
        return None
    return int(transform.height), int(transform.width)


def apply_extra(transform: Any, image: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Apply one extra with the parameters drawn for it (albumentations' ``apply_with_params``)."""
    return transform.apply_with_params(params, image=image)["image"]
