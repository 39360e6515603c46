"""What augpipe reads as images, how large, and which split names a source may give: the one home of
these facts (no heavy imports, so that configs can use them)."""

# The extensions a class folder's images may have (case-insensitive). ImageDataGenerator's drop-in
# keeps Keras's own shorter list (pipeline.keras_compat.utils.WHITE_LIST_FORMATS), as Keras does.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp", ".gif"})

# Pillow's own default decompression-bomb limit (MAX_IMAGE_PIXELS): about 0.25 GB of 24-bit pixels.
DEFAULT_MAX_PIXELS = 89_478_485

# The largest file read as one image is 16 bytes a pixel of max_pixels (16-bit RGBA takes 8), and never
# less than this, for the metadata and the frames after the first that a small image may carry.
MIN_FILE_BYTES_BOUND = 1 << 30

# The splits a prepared dataset holds, in this order.
SPLIT_NAMES = ("train", "validation", "test")
# A source gives its own splits by these names (any case): top-level folders of a class-folder tree
# (train/cat/..., test/cat/..., as torchvision, TFDS and Keras lay them out) or a manifest's ``split``
# column. Each maps to the split it fills.
GIVEN_SPLIT_NAMES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
