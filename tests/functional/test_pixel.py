"""pipeline.functional.pixel: the albumentations extras as kernels that apply given parameters."""

import copy
import pickle

import numpy as np
import pytest
from kernels import CHANNELS, Kernel, check_kernel

from pipeline import params as P
from pipeline.functional import pixel

CROP = {"height": 64, "width": 80}
# Extras without random parameters: every key draws the same.
FIXED = {"grayscale", "equalize", "center_crop"}


def _key(index: int) -> np.ndarray:
    return P.sample_keys(0, 0, [index])


def _extra_kernel(name: str, key: int = 5) -> Kernel:
    transform = pixel.build_extra(name, CROP if name in pixel.CROPS else {})

    def call(x: np.ndarray, _: np.ndarray | None) -> np.ndarray:
        # albumentations works on uint8 or on float32 scaled to [0, 1] (the engine scales for it).
        image = x if x.dtype == np.uint8 else x / np.float32(255)
        return pixel.apply_extra(transform, image, P.draw_extra(transform, image, _key(key), 0))

    channels = (3,) if pixel.needs_rgb(name) else (1, 3) if name == "equalize" else CHANNELS
    return Kernel(
        f"extra {name}",
        call,
        dtypes=(np.uint8, np.float32),
        channels=channels,
        keeps_shape=name not in pixel.CROPS,
    )


@pytest.mark.parametrize("name", sorted(pixel.EXTRA_TRANSFORMS))
def test_extra_keeps_the_kernel_contract(name, photo_batch_u8):
    check_kernel(_extra_kernel(name), photo_batch_u8[:1])


@pytest.mark.parametrize("name", sorted(pixel.EXTRA_TRANSFORMS))
def test_the_parameters_decide_the_output(name, photo_batch_u8):
    # apply_extra draws nothing: the same parameters give the same bytes whatever state the
    # transform's own generators are in, and other parameters (another key's) other bytes.
    image = photo_batch_u8[1]
    transform = pixel.build_extra(name, CROP if name in pixel.CROPS else {})
    params = P.draw_extra(transform, image, _key(5), 0)
    first = pixel.apply_extra(transform, image, params)
    transform.set_random_seed(12345)
    again = pixel.apply_extra(copy.deepcopy(transform), image, pickle.loads(pickle.dumps(params)))
    assert again.tobytes() == first.tobytes()
    others = [
        pixel.apply_extra(transform, image, P.draw_extra(transform, image, _key(k), 0)) for k in (6, 7, 8)
    ]
    if name in FIXED:
        assert all(np.array_equal(o, first) for o in others)
    else:
        assert any(not np.array_equal(o, first) for o in others)


def test_equalize_refuses_other_channel_counts_by_name(photo_batch_u8):
    transform = pixel.build_extra("equalize", {})
    four = np.dstack([photo_batch_u8[0], photo_batch_u8[0][..., :1]])
    with pytest.raises(ValueError, match="RGB and grayscale"):
        pixel.apply_extra(transform, four, P.draw_extra(transform, four, _key(0), 0))


def test_bad_parameters_name_the_extra_and_what_it_accepts():
    with pytest.raises(
        ValueError, match=r"extra 'blur' \(Blur\) has no parameter radius; accepted: .*blur_limit"
    ):
        pixel.build_extra("blur", {"radius": 3})
    with pytest.raises(ValueError, match=r"extra 'gamma' \(RandomGamma\) rejected"):
        pixel.build_extra("gamma", {"gamma_limit": "bright"})
