"""The augpipe checkout a worker runs flows from: ``AUGPIPE_HOME``, checked before anything runs.

prefect.yaml's pull step is :func:`set_augpipe_home`: in each flow run a worker starts, it changes
into ``$AUGPIPE_HOME`` (relative paths such as ``prepared/digits`` are then resolved there) or fails
the run at once with a message naming the folder. ``augpipe serve --pool`` calls :func:`augpipe_home`
before it starts a worker, so a worker without a checkout refuses to start instead of crashing
every run. Standard library only, but for reporting a failure: the pull step runs before the flow
is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "AUGPIPE_HOME"
PROJECT_FILE = "prefect.yaml"


class HomeError(ValueError):
    """``AUGPIPE_HOME`` is unset or does not name an augpipe checkout; the message says which."""


def augpipe_home(value: str | None = None) -> Path:
    """The checkout ``value`` (default: ``$AUGPIPE_HOME``) names, resolved; HomeError if it is not one."""
    value = os.environ.get(HOME_ENV) if value is None else value
    if not value:
        raise HomeError(
            f"{HOME_ENV} is not set: workers run the flows from an augpipe checkout; "
            f"export {HOME_ENV}=/path/to/augpipe (the folder with {PROJECT_FILE}) where the worker starts"
        )
    home = Path(value).expanduser().resolve()
    if not home.is_dir():
        raise HomeError(f"{HOME_ENV}={value} (resolved as {home}) is not a folder")
    if not (home / PROJECT_FILE).is_file() or not (home / "flows").is_dir():
        raise HomeError(
            f"{HOME_ENV}={value} (resolved as {home}) is not an augpipe checkout: "
            f"it has no {PROJECT_FILE} and flows/ folder"
        )
    return home


def set_augpipe_home() -> dict[str, str]:
    """prefect.yaml's pull step: change into ``$AUGPIPE_HOME`` (checked) for this flow run.

    A pull step's exception reaches only the worker's own output, so the message also goes to the
    flow run's log, where the UI and ``prefect flow-run logs`` show it.
    """
    try:
        home = augpipe_home()
    except HomeError as err:
        _log_to_flow_run(f"cannot run this flow: {err}")
        raise
    os.chdir(home)
    return {"directory": str(home)}


def _log_to_flow_run(message: str) -> None:
    flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID")  # set by the worker for the run it starts
    if not flow_run_id:
        return
    import datetime
    import logging

    from prefect import get_client
    from prefect.client.schemas.actions import LogCreate

    entry = LogCreate(
        name="augpipe.home",
        level=logging.ERROR,
        message=message,
        timestamp=datetime.datetime.now(datetime.UTC),
        flow_run_id=flow_run_id,
    )
    with get_client(sync_client=True) as client:
        client.create_logs([entry])
