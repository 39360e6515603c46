"""Importing TensorFlow without its C++ start-up lines.

    tf = import_tensorflow()      # before the first `import keras` or `import tensorflow`

TensorFlow 2.21 prints, on every import, lines that ``TF_CPP_MIN_LOG_LEVEL`` does not silence: absl's
"All log messages before absl::InitializeLog() ..." and oneDNN's notice, twice, and on machines without
a GPU a build with CUDA adds failed ``cuInit`` and "Unable to register cuDNN factory" lines. They land
in the middle of progress bars and flow run logs. Here the import writes its standard error to a file;
the lines known to be start-up noise are dropped and any other line (a real error) is written on.

``TF_CPP_MIN_LOG_LEVEL=0`` (what ``--verbose`` sets) keeps every line.

``import_tensorflow(gpus=[0, 1])`` also chooses the GPUs: CUDA reads ``CUDA_VISIBLE_DEVICES`` once,
when TensorFlow's import loads it, so it is set here, before; once TensorFlow is imported, another
choice is refused rather than silently ignored.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from types import ModuleType

from pipeline.errors import ConfigError

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
VISIBLE_GPUS_ENV = "CUDA_VISIBLE_DEVICES"
# Start-up lines, as TensorFlow 2.21 prints them: absl's (I0000 00:00:...  file.cc:N] ...) and
# tsl's (2025-09-17 14:44:05.157831: I external/...cc:32] ...) INFO and WARNING lines, absl's note,
# the CPU-feature hint's second line, and the CUDA probes that fail on a machine without a GPU.
NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] .*"
    r"|\d{4}-\d\d-\d\d [\d:.]+: [IW] \S+\.cc:\d+\] .*"
    r"|To enable the following instructions: .*"
    r"|(?:E\d{4} [\d:.]+\s+\d+|\d{4}-\d\d-\d\d [\d:.]+: E) \S*cuda\S*\.cc:\d+\] "
    r"(?:failed call to cuInit|Unable to register cu\w+ factory).*"
)


def import_tensorflow(gpus: Sequence[int] | None = None) -> ModuleType:
    """``tensorflow``, imported once; its start-up noise is dropped unless TF_CPP_MIN_LOG_LEVEL is 0.

    gpus: the GPU indices TensorFlow may use (``[]``: none); None leaves the environment's choice.
    """
    wanted = None if gpus is None else ",".join(str(i) for i in gpus)
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        visible = os.environ.get(VISIBLE_GPUS_ENV)
        same = visible is not None and visible.replace(" ", "") == wanted
        # [] asks for no GPU, which is already so where TensorFlow sees none.
        nothing_to_hide = gpus is not None and not gpus and not tf.config.list_physical_devices("GPU")
        if wanted is not None and not (same or nothing_to_hide):
            raise ConfigError(
                f"TrainConfig.gpus: {list(gpus or [])} cannot take effect: TensorFlow was imported in this "
                f"process before, with {VISIBLE_GPUS_ENV}={visible if visible is not None else '(unset)'}, "
                f"and picks its GPUs once; set {VISIBLE_GPUS_ENV}={wanted} before importing TensorFlow, "
                "or train in a fresh process (augpipe train --gpus)"
            )
        return tf
    if wanted is not None:
        os.environ[VISIBLE_GPUS_ENV] = wanted
    os.environ.setdefault(LOG_LEVEL_ENV, "2")  # TensorFlow's own filter for what it logs later
    if os.environ[LOG_LEVEL_ENV].strip() == "0":
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not NOISE.fullmatch(line.rstrip("\r\n"))
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    # Each run builds its model afresh, so a process that trains several (augpipe compare, a test
    # session) has Keras trace its predict step again per model, and TensorFlow warns about it:
    # expected here, and not something the user can act on.
    logging.getLogger("tensorflow").addFilter(_drop_retracing_warnings)
    return tensorflow


def _drop_retracing_warnings(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()
