"""Epoch checkpoints: the model with its optimizer's state, and the random generators' states that a
.keras file leaves out, committed by the run's state record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RunStateError
from pipeline.io import write_atomic
from pipeline.training.layout import CHECKPOINTS, checkpoint_name
from pipeline.training.state import RunState, write_state


def save_checkpoint(model: Any, state: RunState, run_dir: Path, epoch: int) -> RunState:
    """Save the model after ``epoch`` under a name of its own, then commit it by writing the run's
    state, which names it: a kill before that resumes from the previous epoch's checkpoint, which is
    still there. Only the last and the best epoch's files are kept. Returns the state written."""
    write_atomic(run_dir / CHECKPOINTS / checkpoint_name(epoch), model.save)
    layers, global_state = seed_states(model)
    state = replace(
        state,
        epochs_done=epoch,
        checkpoint=checkpoint_name(epoch),
        finished=False,
        seed_states=layers,
        global_seed_state=global_state,
    )
    write_state(run_dir, state)
    remove_stale_checkpoints(run_dir, state)
    return state


def remove_stale_checkpoints(run_dir: Path, state: RunState) -> None:
    """Every epoch file but the last and the best epoch's: earlier ones, and one a kill left
    uncommitted."""
    keep = {state.checkpoint, checkpoint_name(state.best_epoch)}
    for stale in (run_dir / CHECKPOINTS).glob("epoch-*.keras"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)


def seed_states(model: Any) -> tuple[list[list[int]], list[int] | None]:
    """The states of the random generators ``model`` draws from, which its .keras file leaves out:
    every layer's ``SeedGenerator`` (Dropout's, the noise and random-augmentation layers'), in the
    order of ``model.variables``, and Keras's global one when something has drawn from it."""
    from keras.src.backend.common import global_state  # no public accessor for the global one
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    saved = {id(v) for v in model.weights}  # what model.save writes
    layers = [np.asarray(v).tolist() for v in model.variables if id(v) not in saved]
    generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    return layers, None if generator is None else np.asarray(generator.state).tolist()


def restore_seed_states(model: Any, state: RunState) -> None:
    """Set the random generators of a model loaded from its checkpoint as :func:`seed_states` found
    them, so that Dropout draws the masks the uninterrupted run draws."""
    from keras.src.random.seed_generator import global_seed_generator

    saved = {id(v) for v in model.weights}
    variables = [v for v in model.variables if id(v) not in saved]
    if len(variables) != len(state.seed_states):
        raise RunStateError(
            f"the checkpoint {state.checkpoint} has {len(variables)} random generators but its state "
            f"records {len(state.seed_states)}; it cannot be resumed as the same run"
        )
    for variable, value in zip(variables, state.seed_states, strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))
    if state.global_seed_state is not None:
        generator = global_seed_generator()
        generator.state.assign(np.asarray(state.global_seed_state, dtype=generator.state.dtype))
