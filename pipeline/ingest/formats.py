"""What augpipe reads as images, and how large: the one home of these facts (no heavy imports, so
that configs can use them)."""

# The extensions a class folder's images may have (case-insensitive). ImageDataGenerator's drop-in
# keeps Keras's own shorter list (pipeline.keras_compat.utils.WHITE_LIST_FORMATS), as Keras does.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp", ".gif"})

# Pillow's own default decompression-bomb limit (MAX_IMAGE_PIXELS): about 0.25 GB of 24-bit pixels.
DEFAULT_MAX_PIXELS = 89_478_485

# The largest file read as one image is 16 bytes a pixel of max_pixels (16-bit RGBA takes 8), and never
# less than this, for the metadata and the frames after the first that a small image may carry.
MIN_FILE_BYTES_BOUND = 1 << 30
