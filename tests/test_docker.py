"""The worker images and the compose stack, checked without Docker: the files parse, everything they
copy or run exists, they install pyproject's pins, and they agree with prefect.yaml."""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import typing
from functools import cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
FLAVOURS = ("cpu", "gpu")
WORKERS = {"cpu-worker": "cpu", "gpu-worker": "gpu"}  # compose service -> Dockerfile flavour
EXTRA = "mlflow"  # the optional dependencies the images install: training runs record to MLflow
INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, ``\\`` continuations joined (comment and
    blank lines inside a continuation are skipped, as Docker does). Raises on an unknown instruction."""
    instructions: list[tuple[str, str]] = []
    pending: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        continued = line.endswith("\\")
        pending.append(line.removesuffix("\\").strip())
        if continued:
            continue
        keyword, _, arguments = " ".join(pending).partition(" ")
        pending = []
        if keyword.upper() not in INSTRUCTIONS:
            raise ValueError(f"line {number}: unknown instruction {keyword!r}")
        instructions.append((keyword.upper(), arguments.strip()))
    if pending:
        raise ValueError("the last instruction ends with a continuation")
    return instructions


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def _env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(arguments))
    return env


@cache
def dockerfile(flavour: str) -> list[tuple[str, str]]:
    return parse_dockerfile((DOCKER / f"Dockerfile.{flavour}").read_text())


@cache
def compose() -> dict[str, typing.Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@cache
def pyproject() -> dict[str, typing.Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@cache
def prefect_yaml() -> dict[str, typing.Any]:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


@cache
def requirements_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docker_requirements", DOCKER / "requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(lines: list[str]) -> dict[str, Requirement]:
    return {Requirement(line).name: Requirement(line) for line in lines}


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: a pattern matches it or one of its folders."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        anywhere = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(Path(prefix).name, anywhere):
                return True
    return False


def _worker_command(service: str) -> list[str]:
    """What a compose worker runs: its own command, else its image's CMD."""
    config = compose()["services"][service]
    if "command" in config:
        command = config["command"]
        return command if isinstance(command, list) else shlex.split(command)
    (cmd,) = [a for k, a in dockerfile(WORKERS[service]) if k == "CMD"]
    return _exec_form(cmd)


def _option(command: list[str], name: str) -> str:
    assert command.count(name) == 1, f"{name} once in {command}"
    return command[command.index(name) + 1]


def _cli_options(function: typing.Callable[..., typing.Any]) -> set[str]:
    """The option names a cyclopts command (Prefect's CLI) declares."""
    hints = typing.get_type_hints(inspect.unwrap(function), include_extras=True)
    names: set[str] = set()
    for hint in hints.values():
        for meta in getattr(hint, "__metadata__", ()):
            names.update(getattr(meta, "name", None) or ())
    return names


# The Dockerfiles


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_dockerfile_parses(flavour):
    instructions = dockerfile(flavour)
    assert instructions[0][0] == "FROM"
    assert [k for k, _ in instructions].count("CMD") == 1
    assert _exec_form(dict(instructions)["CMD"])[:3] == ["prefect", "worker", "start"]


def test_the_parser_joins_continuations_and_refuses_unknown_instructions():
    text = "# c\nFROM python:3.11-slim\nRUN a \\\n    # inside\n\n    && b\nENV A=1 \\\n    B=2\n"
    assert parse_dockerfile(text) == [("FROM", "python:3.11-slim"), ("RUN", "a && b"), ("ENV", "A=1 B=2")]
    with pytest.raises(ValueError, match="unknown instruction 'RUNN'"):
        parse_dockerfile("FROM x\nRUNN y\n")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_image_python_matches_requires_python(flavour):
    (base,) = [a for k, a in dockerfile(flavour) if k == "FROM"]
    match = re.fullmatch(r"python:(\d+\.\d+)-slim", base)
    assert match, base
    assert match[1] == "3.11"
    assert SpecifierSet(pyproject()["project"]["requires-python"]).contains(f"{match[1]}.0")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_copied_sources_exist_and_are_in_the_build_context(flavour):
    patterns = _dockerignore()
    assert not [p for p in patterns if p.startswith("!")], "the test's .dockerignore matcher has no negation"
    copies = [shlex.split(a) for k, a in dockerfile(flavour) if k in ("COPY", "ADD")]
    assert copies
    for *sources, _destination in copies:
        assert not [s for s in sources if s.startswith("--")], "no --from or --chown copies expected"
        for source in sources:
            if source == ".":
                continue
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert not _ignored(source, patterns), f"COPY {source}: left out by .dockerignore"


def test_dockerignore_keeps_what_the_images_and_flows_need():
    patterns = _dockerignore()
    needed = ["pyproject.toml", "README.md", "prefect.yaml", "docker/requirements.py",
              "flows/cli/__init__.py", "flows/prepare.py", "pipeline/__init__.py",
              "models/__init__.py"]  # fmt: skip
    assert [p for p in needed if _ignored(p, patterns)] == []
    left_out = [".git", ".venv", "prepared/x", "runs/x", "previews/x", "flows/__pycache__/cli.pyc"]
    assert [p for p in left_out if not _ignored(p, patterns)] == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_checkout_is_at_augpipe_home(flavour):
    instructions = dockerfile(flavour)
    home = _env(instructions)["AUGPIPE_HOME"]
    assert [a for k, a in instructions if k == "WORKDIR"] == [home]
    assert ["COPY", ". ."] in [[k, a] for k, a in instructions]
    # prefect.yaml's pull step runs the flows from $AUGPIPE_HOME, the variable the image sets
    (step,) = prefect_yaml()["pull"]
    assert step == {"flows.home.set_augpipe_home": {}}
    from flows.home import HOME_ENV

    assert HOME_ENV == "AUGPIPE_HOME"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_images_install_pyprojects_pins(flavour):
    runs = " && ".join(a for k, a in dockerfile(flavour) if k == "RUN")
    (call,) = re.findall(r"python (\S+requirements\.py) (\S+pyproject\.toml)([^>]*)>", runs)
    assert call[:2] == ("/tmp/build/requirements.py", "/tmp/build/pyproject.toml")
    assert call[2].split() == ["--extra", EXTRA, *(["--gpu"] if flavour == "gpu" else [])]
    assert "pip install -r" in runs
    assert "pip install --no-deps -e ." in runs  # the project itself, from the checkout
    assert [("COPY", "pyproject.toml docker/requirements.py /tmp/build/")] == [
        (k, a) for k, a in dockerfile(flavour) if k == "COPY" and "requirements.py" in a
    ]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_server_ui_static_directory_is_the_image_users(flavour):
    # Run as the image's user, `prefect server start` copies the UI bundles into
    # PREFECT_UI_STATIC_DIRECTORY/v1 and /v2 (lock files beside them); the default, inside site-packages,
    # is not writable and the UI then answers 404.
    from prefect.settings.models.server.ui import ServerUISettings

    instructions = dockerfile(flavour)
    folder = _env(instructions)["PREFECT_UI_STATIC_DIRECTORY"]
    alias = ServerUISettings.model_fields["static_directory"].validation_alias
    assert "prefect_ui_static_directory" in alias.choices  # the name prefect 3.8 reads
    assert folder.startswith("/") and "site-packages" not in folder
    (user,) = [a for k, a in instructions if k == "USER"]
    runs = " && ".join(a for k, a in instructions if k == "RUN")
    assert f'install -d -o {user} -g {user} "$PREFECT_UI_STATIC_DIRECTORY"' in runs


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_pip_settings_for_the_build_stay_out_of_the_image(flavour):
    # A mirror, proxy CA or pip.conf reach pip as build args and BuildKit secrets, used by the RUNs
    # that install; none of them is an ENV or a copied file of the image.
    instructions = dockerfile(flavour)
    env = _env(instructions)
    assert not {"PIP_CERT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE"} & set(env)
    args = {a.split("=")[0] for k, a in instructions if k == "ARG"}
    assert {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST"} <= args
    installs = [a for k, a in instructions if k == "RUN" and "pip install" in a]
    assert len(installs) == 2
    for run in installs:
        assert "--mount=type=secret,id=pip-cert" in run and "--mount=type=secret,id=pip-conf" in run
        assert "export PIP_CERT=/run/secrets/pip-cert" in run


def test_smoke_scripts_are_valid_bash_and_use_the_compose_tags():
    scripts = [DOCKER / "smoke.sh", DOCKER / "base-standin.sh"]
    if shutil.which("bash"):
        for script in scripts:
            subprocess.run(["bash", "-n", str(script)], check=True)
    smoke = scripts[0].read_text()
    for service in ("server", *WORKERS):
        assert compose()["services"][service]["image"] in smoke
    assert "base-standin.sh" in smoke


def test_requirements_script_uses_only_the_standard_library():
    tree = ast.parse((DOCKER / "requirements.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules - {"__future__"} <= set(sys.stdlib_module_names)


def test_cpu_and_gpu_images_install_the_same_versions(capsys):
    script = requirements_script()
    project = pyproject()["project"]
    declared = project["dependencies"] + project["optional-dependencies"][EXTRA]
    cpu = script.requirements(REPO / "pyproject.toml", extras=(EXTRA,))
    gpu = script.requirements(REPO / "pyproject.toml", gpu=True, extras=(EXTRA,))
    assert cpu == declared
    assert script.main([str(REPO / "pyproject.toml"), "--extra", EXTRA, "--gpu"]) == 0
    assert capsys.readouterr().out.splitlines() == gpu

    cpu_pins, gpu_pins = _pins(cpu), _pins(gpu)
    tensorflow = {n: str(r.specifier) for n, r in cpu_pins.items() if n in ("tensorflow", "tensorflow-cpu")}
    # x86_64 and other machines: one exact pin, whatever its version
    assert set(tensorflow) == {"tensorflow-cpu", "tensorflow"} and len(set(tensorflow.values())) == 1
    pin = tensorflow["tensorflow"]
    assert pin.startswith("==")
    assert "tensorflow-cpu" not in gpu_pins
    assert gpu_pins["tensorflow"].extras == {"and-cuda"}
    assert str(gpu_pins["tensorflow"].specifier) == pin
    assert gpu_pins["tensorflow"].marker is None
    # everything else is the same line in both
    assert {n: str(r) for n, r in gpu_pins.items() if n != "tensorflow"} == {
        n: str(r) for n, r in cpu_pins.items() if n not in ("tensorflow", "tensorflow-cpu")
    }
    for pins in (cpu_pins, gpu_pins):
        assert str(pins["prefect"].specifier) == "==3.8.8" == f"=={prefect_yaml()['prefect-version']}"
        assert pins["fastapi"].specifier == _pins(declared)["fastapi"].specifier
        assert any(v.operator == "<" for v in pins["fastapi"].specifier), "fastapi needs its upper bound"


def test_prefect_brings_the_postgresql_driver():
    # The server container runs `prefect server start` from the CPU image: asyncpg comes with prefect.
    requires = [Requirement(r) for r in metadata.requires("prefect") or []]
    (asyncpg,) = [r for r in requires if r.name == "asyncpg"]
    assert asyncpg.marker is None


def test_requirements_script_refuses_an_unpinned_tensorflow_and_unknown_extras(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["numpy", "tensorflow-cpu>=2.16"]\n'
        '[project.optional-dependencies]\nmore = ["scipy", "x[other]"]\n'
    )
    script = requirements_script()
    with pytest.raises(ValueError, match="must be pinned"):
        script.requirements(tmp_path / "pyproject.toml", gpu=True)
    with pytest.raises(ValueError, match="no optional dependencies 'nope', only \\['more'\\]"):
        script.requirements(tmp_path / "pyproject.toml", extras=("nope",))
    # the project's own name in an extra (augpipe[mlflow] in the test extra) is not a requirement to install
    assert script.requirements(tmp_path / "pyproject.toml", extras=("more",))[-1] == "scipy"


# Commands the images and the compose file run


def test_console_scripts_exist():
    scripts = {e.name: e.value for e in metadata.entry_points(group="console_scripts")}
    assert scripts["prefect"] == "prefect.cli:app"
    target = pyproject()["project"]["scripts"]["augpipe"]
    assert target == "flows.cli:app"
    assert (REPO / "flows" / "cli" / "__init__.py").is_file()
    import flows.cli

    assert isinstance(flows.cli.app, typer.Typer)


def test_prefect_commands_take_the_options_used():
    from prefect.cli.server import start as server_start
    from prefect.cli.worker import start as worker_start

    commands = [_worker_command(service) for service in WORKERS]
    commands.append(compose()["services"]["server"]["command"])
    commands += [_exec_form(dict(dockerfile(f))["CMD"]) for f in FLAVOURS]
    for command in commands:
        assert command[:3] in (["prefect", "worker", "start"], ["prefect", "server", "start"]), command
        options = _cli_options(worker_start if command[1] == "worker" else server_start)
        used = {word for word in command[3:] if word.startswith("--")}
        assert used <= options, f"{command}: {used - options} unknown to prefect {command[1]} start"


def test_prefect_yaml_entrypoints_resolve_to_flow_functions():
    for deployment in prefect_yaml()["deployments"]:
        path, _, function = deployment["entrypoint"].partition(":")
        file = REPO / path
        assert file.is_file(), f"{deployment['name']}: {path} does not exist"
        functions = {n.name: n for n in ast.parse(file.read_text()).body if isinstance(n, ast.FunctionDef)}
        assert function in functions, f"{deployment['name']}: {path} defines no {function}"
        decorators = [ast.unparse(d) for d in functions[function].decorator_list]
        assert any(re.match(r"(prefect\.)?flow\b", d) for d in decorators), f"{function} is not a @flow"


# compose.yaml


def test_compose_services():
    services = compose()["services"]
    assert set(services) == {"postgres", "server", *WORKERS}
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    declared_volumes = set(compose()["volumes"])
    for config in services.values():
        for volume in config.get("volumes", []):
            name = volume.split(":")[0]
            assert name in declared_volumes, f"volume {name} is not declared"


def test_server_uses_postgresql():
    services = compose()["services"]
    server, postgres = services["server"], services["postgres"]
    url = urlsplit(server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
    assert url.password == postgres["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-prefect}"
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/api/health" in " ".join(server["healthcheck"]["test"])


def test_workers_reach_the_server():
    services = compose()["services"]
    server = services["server"]
    port = _option(server["command"], "--port")
    assert _option(server["command"], "--host") == "0.0.0.0"
    assert f"{port}:{port}" in server["ports"]
    for service in WORKERS:
        url = urlsplit(services[service]["environment"]["PREFECT_API_URL"])
        assert (url.scheme, url.hostname, str(url.port), url.path) == ("http", "server", port, "/api")
        assert services[service]["depends_on"]["server"]["condition"] == "service_healthy"


def test_images_are_built_from_the_repository():
    services = compose()["services"]
    for service, flavour in {"server": "cpu", **WORKERS}.items():
        build = services[service]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == REPO
        assert (context / build["dockerfile"]).resolve() == DOCKER / f"Dockerfile.{flavour}"


def test_gpu_worker_reserves_an_nvidia_gpu():
    devices = compose()["services"]["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    (device,) = devices
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert ("count" in device) != ("device_ids" in device)
    assert "deploy" not in compose()["services"]["cpu-worker"]


def test_worker_pools_match_prefect_yaml():
    deployments = prefect_yaml()["deployments"]
    yaml_pools = {d["work_pool"]["name"] for d in deployments}
    assert yaml_pools == {"cpu", "gpu"}
    assert set(prefect_yaml()["definitions"]["work_pools"]) == yaml_pools
    assert {_option(_worker_command(s), "--pool") for s in WORKERS} == yaml_pools
    for service, flavour in WORKERS.items():
        image_pool = _option(_exec_form(dict(dockerfile(flavour))["CMD"]), "--pool")
        assert image_pool == flavour == _option(_worker_command(service), "--pool")
    # one run at a time on the GPU worker, as prefect.yaml's train-model limit assumes
    assert _option(_worker_command("gpu-worker"), "--limit") == "1"
    (train,) = [d for d in deployments if d["work_pool"]["name"] == "gpu"]
    assert train["concurrency_limit"]["limit"] == 1


def test_data_volumes_are_under_augpipe_home():
    home = _env(dockerfile("cpu"))["AUGPIPE_HOME"]
    assert _env(dockerfile("gpu"))["AUGPIPE_HOME"] == home
    services = compose()["services"]
    for service in WORKERS:
        mounts = {v.split(":")[1] for v in services[service]["volumes"]}
        assert mounts == {f"{home}/prepared", f"{home}/runs", f"{home}/previews"}
    # the default parameters write there, relative to $AUGPIPE_HOME
    params = {d["name"]: d["parameters"] for d in prefect_yaml()["deployments"]}
    assert params["prepare-dataset"]["config"]["out"].split("/")[0] == "prepared"
    assert params["train-model"]["config"]["dataset"].split("/")[0] == "prepared"
    assert params["preview-augmentations"]["out"] == "previews"
