"""The defaults of ``augpipe run`` and ``augpipe preview``: the augmentation for the bundled digits and
for the bundled photos (the convnet the run trains is models.catalog.RUN_MODEL)."""

from __future__ import annotations

from pipeline.config import AugmentConfig, PixelTransform

DIGITS_CONFIG = AugmentConfig(
    rotation_range=15, width_shift_range=0.1, height_shift_range=0.1, shear_range=10, zoom_range=0.1
)
PHOTOS_CONFIG = AugmentConfig(
    rotation_range=20,
    width_shift_range=0.1,
    height_shift_range=0.1,
    zoom_range=0.15,
    horizontal_flip=True,
    brightness_range=(0.7, 1.3),
    fill_mode="reflect",
    extras=[
        PixelTransform(name="hue", p=0.5),
        PixelTransform(name="gaussian_blur", params={"blur_limit": (3, 5)}, p=0.3),
    ],
)


def augment_config_for(source: str) -> AugmentConfig:
    """The augmentation ``augpipe run`` uses for ``source``: the photos' for ``photos``, else the digits'."""
    return PHOTOS_CONFIG if source == "photos" else DIGITS_CONFIG
