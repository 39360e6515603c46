"""What ``augpipe doctor`` checks: package versions, the GPUs TensorFlow sees, CPUs, the Prefect API.

    report = diagnose(api_url=configured_api_url(), timeout=3.0)
    report.versions["prefect"], report.gpus, report.api.answered, report.ok

A configured API that does not answer makes the report not ``ok``; without one, flows run on
Prefect's embedded ephemeral API, which ``check_ephemeral=True`` starts to see that it can.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

# Shown name -> the distributions that provide it, the first installed one wins.
PACKAGES: dict[str, tuple[str, ...]] = {
    "augpipe": ("augpipe",),
    "numpy": ("numpy",),
    "opencv": (
        "opencv-python-headless",
        "opencv-python",
        "opencv-contrib-python-headless",
        "opencv-contrib-python",
    ),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
    "keras": ("keras",),
    "albumentations": ("albumentations",),
    "prefect": ("prefect",),
    "dask": ("dask",),
    "mlflow": ("mlflow", "mlflow-skinny"),
}


@dataclass(frozen=True)
class ApiCheck:
    """Whether the Prefect API answered ``GET <url>/health``; ``url`` None: the embedded ephemeral API."""

    url: str | None
    answered: bool | None  # None: not checked
    detail: str
    seconds: float | None = None


@dataclass(frozen=True)
class DoctorReport:
    python: str
    versions: dict[str, str | None]  # None: not installed
    gpus: list[str]
    tensorflow_build: str  # "CUDA 12.5.1, cuDNN 9" or "CPU only"
    cpu_count: int  # the machine's
    cpus_usable: int  # those this process may run on (a container's cpuset, taskset)
    api: ApiCheck
    problems: list[str] = field(default_factory=list)  # e.g. TensorFlow failing to import

    @property
    def ok(self) -> bool:
        """False when a configured Prefect API does not answer."""
        return self.api.answered is not False


def package_versions() -> dict[str, str | None]:
    """Installed versions by name (``opencv``: 4.10.0.84 (opencv-python-headless)), None if missing."""
    versions: dict[str, str | None] = {}
    for name, dists in PACKAGES.items():
        versions[name] = None
        for dist in dists:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            versions[name] = version if dist == name else f"{version} ({dist})"
            break
    return versions


def tensorflow_devices() -> tuple[list[str], str]:
    """The GPUs TensorFlow sees and what it was built with; raises what importing TensorFlow raises."""
    from pipeline.tf_import import import_tensorflow

    tf = import_tensorflow()

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    info = tf.sysconfig.get_build_info()
    if not info.get("is_cuda_build"):
        return gpus, "CPU only"
    return gpus, f"CUDA {info.get('cuda_version', '?')}, cuDNN {info.get('cudnn_version', '?')}"


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment, else from Prefect's settings files (the active profile,
    ./prefect.toml, ./.env, ./pyproject.toml's [tool.prefect]); None if none sets it. Prefect's settings
    (a second to import) are read only when such a file exists."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    if not _prefect_settings_files():
        return None
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


def _prefect_settings_files() -> list[Path]:
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    found = [f for f in (profiles, Path("prefect.toml")) if f.is_file()]
    if Path(".env").is_file() and "PREFECT_" in Path(".env").read_text(errors="replace"):
        found.append(Path(".env"))
    pyproject = Path("pyproject.toml")
    if pyproject.is_file() and "[tool.prefect" in pyproject.read_text(errors="replace"):
        found.append(pyproject)
    return found


def check_api(url: str, timeout: float = 3.0, api_key: str | None = None) -> ApiCheck:
    """``GET <url>/health``: answered if it returns 200 within ``timeout`` seconds."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    start = time.perf_counter()
    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout, headers=headers)
    except httpx.HTTPError as err:
        seconds = time.perf_counter() - start
        detail = f"{type(err).__name__}: {err or 'no details'} (after {seconds:.1f} s, timeout {timeout:g} s)"
        return ApiCheck(url, False, detail, seconds)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        return ApiCheck(url, False, f"HTTP {response.status_code} from {response.url}", seconds)
    return ApiCheck(url, True, f"healthy ({seconds * 1000:.0f} ms)", seconds)


def check_ephemeral_api() -> ApiCheck:
    """Start Prefect's embedded ephemeral API, as a flow run without PREFECT_API_URL would, and ask it."""
    from prefect.client.orchestration import get_client

    start = time.perf_counter()
    try:
        with get_client(sync_client=True) as client:
            error = client.api_healthcheck()
    except Exception as err:  # whatever stops the embedded server from starting is the finding
        error = err
    seconds = time.perf_counter() - start
    if error is not None:
        return ApiCheck(None, False, f"embedded API failed: {type(error).__name__}: {error}", seconds)
    return ApiCheck(None, True, f"embedded ephemeral API started and healthy ({seconds:.1f} s)", seconds)


def diagnose(
    api_url: str | None, timeout: float = 3.0, check_ephemeral: bool = False, gpus: bool = True
) -> DoctorReport:
    """The whole report. ``api_url``: the API to check (None: the embedded one, started only if
    ``check_ephemeral``); ``gpus``: False skips importing TensorFlow."""
    problems = []
    devices: list[str] = []
    build = "not checked"
    if gpus:
        try:
            devices, build = tensorflow_devices()
        except Exception as err:  # a broken TensorFlow install is what the doctor is for
            build = "unavailable"
            problems.append(f"TensorFlow: {type(err).__name__}: {err}")
    if api_url:
        api = check_api(api_url, timeout=timeout, api_key=os.environ.get("PREFECT_API_KEY"))
    elif check_ephemeral:
        api = check_ephemeral_api()
    else:
        api = ApiCheck(
            None, None, "PREFECT_API_URL not set: commands run in-process (--prefect: on a temporary API)"
        )
    return DoctorReport(
        python=f"{platform.python_version()} ({platform.python_implementation()}, {platform.machine()})",
        versions=package_versions(),
        gpus=devices,
        tensorflow_build=build,
        cpu_count=os.cpu_count() or 1,
        cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
        api=api,
        problems=problems,
    )
