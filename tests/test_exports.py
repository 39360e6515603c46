"""The public surface is pipeline.__all__; pin it so that changes to it are deliberate."""

import pipeline


def test_public_api_is_pinned():
    assert sorted(pipeline.__all__) == sorted(
        [
            "AugmentConfig",
            "Augmenter",
            "AugmentPool",
            "AugpipeError",
            "BatchParams",
            "ConfigError",
            "DataError",
            "FitStats",
            "ImageDataGenerator",
            "PixelTransform",
            "RunStateError",
        ]
    )
    for name in pipeline.__all__:
        assert getattr(pipeline, name).__module__.startswith("pipeline.")
