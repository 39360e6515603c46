"""The defaults of ``augpipe run`` and ``augpipe preview``: the augmentation for the bundled digits and
for the bundled photos, and the convnet the run trains."""

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
# A convnet that learns the 8x8 digits in seconds: the source material's Fashion-MNIST network.
RUN_MODEL = "fashion_convnet"


def augment_config_for(source: str) -> AugmentConfig:
    """The augmentation ``augpipe run`` uses for ``source``: the photos' for ``photos``, else the digits'."""
    return PHOTOS_CONFIG if source == "photos" else DIGITS_CONFIG
