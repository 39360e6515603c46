"""``augpipe studio``: tune augmentation in the browser, see Keras's result beside it, start a run and
watch its curves. The web application over :mod:`pipeline.studio`: ``create_app(settings)``, served
by ``serve``; its pages and scripts are in ``static/`` (plain HTML, CSS and JavaScript, no build)."""

from flows.studio.app import StudioSettings, create_app
from flows.studio.launch import LocalLauncher, PrefectLauncher, launcher_for
from flows.studio.serve import serve, url

__all__ = [
    "LocalLauncher",
    "PrefectLauncher",
    "StudioSettings",
    "create_app",
    "launcher_for",
    "serve",
    "url",
]
