"""Print augpipe's dependencies from pyproject.toml, one per line, for ``pip install -r``.

    python requirements.py pyproject.toml                   # exactly pyproject's dependencies
    python requirements.py pyproject.toml --extra mlflow    # and an optional-dependencies group
    python requirements.py pyproject.toml --gpu             # with TensorFlow's CUDA build

The images install these first and then the project with ``--no-deps``: the dependency layer stays
cached while the code changes, and the GPU image gets ``tensorflow[and-cuda]`` of the version pinned
for ``tensorflow-cpu`` without installing both (they ship the same ``tensorflow`` package).
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

TENSORFLOW_NAMES = {"tensorflow", "tensorflow-cpu"}


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match[1]).lower()


def requirements(pyproject: Path, gpu: bool = False, extras: tuple[str, ...] = ()) -> list[str]:
    """``[project] dependencies`` and the ``extras`` groups; with ``gpu``, TensorFlow's lines become
    one ``tensorflow[and-cuda]==V``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    deps: list[str] = list(project["dependencies"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"{pyproject} has no optional dependencies {extra!r}, only {sorted(optional)}")
        deps += [dep for dep in optional[extra] if _name(dep) != _name(project["name"])]
    if not gpu:
        return deps
    versions = set()
    for dep in deps:
        if _name(dep) in TENSORFLOW_NAMES:
            match = re.search(r"==\s*([0-9][^;,\s]*)", dep)
            if not match:
                raise ValueError(f"TensorFlow must be pinned with == in {pyproject}, but got {dep!r}")
            versions.add(match[1])
    if len(versions) != 1:
        raise ValueError(f"expected one pinned TensorFlow version in {pyproject}, but got {sorted(versions)}")
    kept = [dep for dep in deps if _name(dep) not in TENSORFLOW_NAMES]
    return [*kept, f"tensorflow[and-cuda]=={versions.pop()}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--gpu", action="store_true", help="TensorFlow's CUDA build, not tensorflow-cpu")
    parser.add_argument("--extra", action="append", default=[], help="an optional-dependencies group")
    args = parser.parse_args(argv)
    print("\n".join(requirements(args.pyproject, gpu=args.gpu, extras=tuple(args.extra))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
