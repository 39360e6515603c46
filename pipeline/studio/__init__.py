"""The studio's library: what ``augpipe studio`` shows, computed without a server.

>>> samples = load(None, "digits", samples=8)
>>> grid = render_grid(samples.images, samples.indices, AugmentConfig(rotation_range=20), epoch=3)
>>> grid.png, grid.cells[0].params                   # PNG bytes; copy 1 of row 0 is epoch 3's draw
>>> compare_with_keras(samples.images[0], config, grid.cells[0].params).p99
>>> parse_form({"rotation_range": 20, "width_shift_range": "15"}).config
>>> list_runs(Path("runs"))

Modules: ``paths`` (only inside the given folders), ``sources``, ``options`` (controls, the page's
values, YAML), ``grid``, ``keras_side``, ``sweeps``, ``runs`` (runs folders and launch records).
"""

from pipeline.studio.grid import (
    MAX_CELL_CHOICES,
    MAX_COPIES,
    Grid,
    GridCell,
    GridLayout,
    encode_png,
    render_grid,
)
from pipeline.studio.keras_side import (
    HEAT_FULL_SCALE,
    PANELS,
    KerasComparison,
    compare_with_keras,
    keras_generator,
)
from pipeline.studio.options import (
    CONTROLS,
    GROUPS,
    Control,
    ExtraControl,
    FormResult,
    export_yaml,
    extra_controls,
    form_values,
    import_yaml,
    parse_form,
)
from pipeline.studio.paths import PathRefused, inside
from pipeline.studio.runs import (
    LAUNCHES,
    Comparison,
    Confusion,
    Curves,
    LaunchRecord,
    RunNotFound,
    RunSummary,
    comparison_picture,
    confusion_picture,
    launches_dir,
    list_comparisons,
    list_runs,
    read_confusion,
    read_curves,
    read_launches,
    read_log,
    run_folder,
    write_launch,
)
from pipeline.studio.sources import BUNDLED, SourceInfo, StudioSamples, discover, load
from pipeline.studio.sweeps import MAX_STEPS, SweepPicture, render_sweep

__all__ = [
    "BUNDLED",
    "CONTROLS",
    "GROUPS",
    "HEAT_FULL_SCALE",
    "LAUNCHES",
    "MAX_CELL_CHOICES",
    "MAX_COPIES",
    "MAX_STEPS",
    "PANELS",
    "Comparison",
    "Confusion",
    "Control",
    "Curves",
    "ExtraControl",
    "FormResult",
    "Grid",
    "GridCell",
    "GridLayout",
    "KerasComparison",
    "LaunchRecord",
    "PathRefused",
    "RunNotFound",
    "RunSummary",
    "SourceInfo",
    "StudioSamples",
    "SweepPicture",
    "compare_with_keras",
    "comparison_picture",
    "confusion_picture",
    "discover",
    "encode_png",
    "export_yaml",
    "extra_controls",
    "form_values",
    "import_yaml",
    "inside",
    "keras_generator",
    "launches_dir",
    "list_comparisons",
    "list_runs",
    "load",
    "parse_form",
    "read_confusion",
    "read_curves",
    "read_launches",
    "read_log",
    "render_grid",
    "render_sweep",
    "run_folder",
    "write_launch",
]
