"""The import graph of pipeline, flows and models has no cycle, lazy imports inside functions included.

pyproject's import-linter contracts (run by .ci/run) keep siblings acyclic package by package; this
test looks at single modules across all three packages, so a cycle through models (pipeline.training
-> models.registry -> pipeline.x -> pipeline.training) is caught as well.
"""

import sys

import grimp


def find_cycles(*packages: str) -> list[str]:
    """Each import that closes a cycle, as the chain of modules it goes round."""
    graph = grimp.build_graph(*packages, cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain:
                cycles.append(" -> ".join((module, *chain)))
    return cycles


def test_no_module_imports_itself_through_others():
    cycles = find_cycles("pipeline", "flows", "models")
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_a_cycle_behind_an_import_inside_a_function_is_found(tmp_path, monkeypatch):
    package = tmp_path / "lazycycle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "engine.py").write_text("from lazycycle import config\n")
    (package / "config.py").write_text("def check():\n    from lazycycle.engine import run  # noqa\n")
    (package / "kernels.py").write_text("import numpy\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert find_cycles("lazycycle") == [
            "lazycycle.config -> lazycycle.engine -> lazycycle.config",
            "lazycycle.engine -> lazycycle.config -> lazycycle.engine",
        ]
    finally:
        sys.modules.pop("lazycycle", None)
