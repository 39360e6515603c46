"""Training runs: a registered convnet trained on augmented batches, with every epoch recorded.

>>> result = train(TrainConfig(dataset="prepared/digits", model="shapes_net", epochs=5))
>>> result.test_accuracy, result.run_dir

A run lives in ``<runs_dir>/<run_name>/``: ``config.yaml``, ``checkpoints/`` (``state.json`` and
the last and the best epoch's ``epoch-NNNN.keras``), ``metrics.csv``, ``tensorboard/``, and at the end
``model.keras``, ``checkpoints/best.keras``, ``summary.json`` and ``confusion_matrix.png``. Started
again with the same ``run_name``, a run that was killed resumes after its last checkpoint, or only
finishes its reports when it was killed after its last epoch. With the same seed it then follows the
uninterrupted run: batch order and augmentation depend only on (seed, epoch, index), and each
checkpoint keeps the state of every random generator the model draws from (Dropout's).

Every file goes through :func:`~pipeline.io.write_atomic`, and ``state.json`` is written last at
each step: the checkpoint it names, the epochs it lists and the MLflow run it keys move together.

Modules: ``loop`` (train), ``steps`` (an epoch, an evaluation), ``data`` (the splits), ``build`` and
``distribute`` (the model, its optimizer, its devices), ``state`` and ``early_stopping`` (the run's
record), ``checkpoints``, ``recording`` (metrics.csv, TensorBoard, MLflow), ``report`` (the end of a
run), ``result`` (what a run returns) and ``layout`` (where each file lives).
"""

from pipeline.training.checkpoints import restore_seed_states, seed_states
from pipeline.training.data import (
    Split,
    TrainData,
    dataset_folder,
    dataset_preparation,
    load_data,
    resolve_dataset,
)
from pipeline.training.early_stopping import EarlyStopping
from pipeline.training.layout import (
    CHECKPOINTS,
    COMPARE,
    CONFIG,
    CONFUSION_MATRIX,
    CURVES,
    METRICS,
    STATE,
    SUMMARY,
)
from pipeline.training.loop import train
from pipeline.training.result import EpochMetrics, TrainResult, result_dict
from pipeline.training.state import RunState, read_state, resume_state, run_folder
from pipeline.training.steps import Evaluation, evaluate

__all__ = [
    "CHECKPOINTS",
    "COMPARE",
    "CONFIG",
    "CONFUSION_MATRIX",
    "CURVES",
    "METRICS",
    "STATE",
    "SUMMARY",
    "EarlyStopping",
    "EpochMetrics",
    "Evaluation",
    "RunState",
    "Split",
    "TrainData",
    "TrainResult",
    "dataset_folder",
    "dataset_preparation",
    "evaluate",
    "load_data",
    "read_state",
    "resolve_dataset",
    "restore_seed_states",
    "result_dict",
    "run_folder",
    "resume_state",
    "seed_states",
    "train",
]
