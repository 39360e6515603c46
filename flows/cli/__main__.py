"""``python -m flows.cli``: the ``augpipe`` command."""

from flows.cli import app

app()
