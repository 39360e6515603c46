"""augpipe studio in a real browser: headless Chromium (Debian's ``chromium``) driven by Selenium through
Debian's ``chromium-driver``, against a real studio on a free loopback port.

Skipped, saying why, when Chromium, its driver or Selenium is missing, unless
AUGPIPE_REQUIRE_BROWSER_TESTS is set (CI sets it and installs them): then their absence fails.
With AUGPIPE_STUDIO_SCREENSHOTS=DIR the pages are also saved as DIR/studio.png and DIR/studio-runs.png.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from studio_server import running_studio

from flows.studio import LocalLauncher, StudioSettings
from pipeline import AugmentConfig
from pipeline.studio import parse_form

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
REQUIRED = bool(os.environ.get("AUGPIPE_REQUIRE_BROWSER_TESTS"))
SCREENSHOTS = os.environ.get("AUGPIPE_STUDIO_SCREENSHOTS")
RUN_SECONDS = 300  # a one-epoch run on 200 digits: preparing, importing TensorFlow, training, reports

try:
    import selenium  # noqa: F401

    SELENIUM = True
except ImportError:
    SELENIUM = False

_missing = [
    what
    for what, there in (
        ("Debian's chromium package (the chromium command)", CHROMIUM),
        ("Debian's chromium-driver package (the chromedriver command)", DRIVER),
        ("Selenium (pip install selenium)", SELENIUM),
    )
    if not there
]
if _missing and REQUIRED:
    raise RuntimeError(f"AUGPIPE_REQUIRE_BROWSER_TESTS is set but {', '.join(_missing)} is missing")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(_missing), reason=f"browser tests need {', '.join(_missing)}"),
]


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("browser")
    root, runs = base / "source", base / "runs"
    root.mkdir()
    (base / "secret.txt").write_text("secret")
    baseline = runs / "baseline"  # a finished run to overlay the page's run on
    baseline.mkdir(parents=True)
    (baseline / "config.yaml").write_text("model: shapes_net\ndataset: digits\nepochs: 2\n")
    (baseline / "metrics.csv").write_text(
        "epoch,phase,loss,accuracy,val_loss,val_accuracy,learning_rate,images_per_second,epoch_seconds,"
        "input_wait_fraction\n1,train,2.1,0.2,2.0,0.25,0.001,900,1.0,0.05\n2,train,1.8,0.35,1.7,0.4,0.001,950,1.0,0.04\n"
    )
    settings = StudioSettings(root, runs, launcher=LocalLauncher(runs))
    with running_studio(settings) as url:  # stops the server, and ends the run it started, on any exit
        yield url, runs


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1500,1100", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(argument)
    service = Service(executable_path=DRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        process = service.process
        if process is not None and process.poll() is None:  # quit() failed: end the driver by its id
            os.killpg(process.pid, signal.SIGKILL) if hasattr(os, "killpg") else process.kill()
            process.wait()


def _wait(driver: Any, condition: Any, timeout: float = 30) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The runs page redraws its table every 2 s: an element found just before may be gone.
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition)


def _open_studio(driver: Any, url: str) -> str:
    """Load the page and wait for its first grid; returns the grid picture's address."""
    driver.get(url + "/")
    return _wait(driver, lambda d: d.find_element("id", "grid").get_attribute("src") or False)


def test_page_loads_with_every_control_and_a_grid(browser: Any, studio_url: tuple[str, Path]) -> None:
    url, _ = studio_url
    src = _open_studio(browser, url)
    assert "/api/image/" in src
    _wait(browser, lambda d: d.execute_script("return document.getElementById('grid').naturalWidth > 0"))
    for name in AugmentConfig.model_fields:
        if name != "extras":
            assert browser.find_elements("id", f"control-{name}"), name
    assert browser.find_elements("id", "control-extra-hue")
    assert len(browser.find_elements("css selector", "#overlay .cell")) == 8 * 8
    assert "digits: 1,797 images of 8x8x1" in browser.find_element("id", "source-info").text


def test_moving_a_control_changes_the_grid(browser: Any, studio_url: tuple[str, Path]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    url, _ = studio_url
    before = _open_studio(browser, url)
    slider = browser.find_element("id", "opt-rotation_range-slider")
    ActionChains(browser).drag_and_drop_by_offset(slider, 40, 0).perform()
    after = _wait(browser, lambda d: (s := d.find_element("id", "grid").get_attribute("src")) != before and s)
    assert after != before
    value = float(browser.find_element("id", "opt-rotation_range").get_attribute("value"))
    assert value != 15.0  # the page starts from augpipe run's digits config
    cell = browser.find_element("css selector", "#overlay .cell[data-row='0'][data-col='1']")
    ActionChains(browser).move_to_element(cell).perform()
    _wait(browser, lambda d: "theta=" in d.find_element("id", "cell-info").text)
    assert f"rot {'+' if value >= 0 else ''}" in cell.get_attribute("title")
    cell.click()
    _wait(browser, lambda d: "99th percentile" in d.find_element("id", "keras-stats").text, timeout=120)
    assert "mean |difference|" in browser.find_element("id", "keras-stats").text


def test_an_invalid_value_shows_the_engines_message_inline(
    browser: Any, studio_url: tuple[str, Path]
) -> None:
    url, _ = studio_url
    good = _open_studio(browser, url)
    field = browser.find_element("id", "opt-rotation_range")
    field.clear()
    field.send_keys("-5")
    message = _wait(browser, lambda d: d.find_element("id", "error-rotation_range").text)
    assert message == "AugmentConfig.rotation_range: rotation_range must be >= 0 (got -5)"
    assert "invalid" in browser.find_element("id", "control-rotation_range").get_attribute("class")
    assert browser.find_element("id", "grid").get_attribute("src") == good  # the last good grid stays
    shift = browser.find_element("id", "opt-width_shift_range")
    shift.clear()
    shift.send_keys("[4, ")
    _wait(
        browser,
        lambda d: (
            "width_shift_range must be a number" in d.find_element("id", "error-width_shift_range").text
        ),
    )
    field.clear()
    field.send_keys("5")
    shift.clear()
    shift.send_keys("3")
    _wait(browser, lambda d: d.find_element("id", "error-rotation_range").text == "")
    fixed = _wait(browser, lambda d: (s := d.find_element("id", "grid").get_attribute("src")) != good and s)
    browser.execute_script("document.getElementById('group-extras').open = true")
    hue = browser.find_element("id", "extra-hue-on")
    hue.click()  # hue needs RGB; the digits have one channel: the engine says so beside the extra
    _wait(browser, lambda d: "needs RGB" in d.find_element("id", "error-extra-hue").text)
    assert browser.find_element("id", "grid").get_attribute("src") == fixed
    hue.click()
    _wait(browser, lambda d: d.find_element("id", "error-extra-hue").text == "")


def test_exported_yaml_round_trips(browser: Any, studio_url: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = studio_url
    _open_studio(browser, url)
    browser.execute_script(
        "document.getElementById('opt-width_shift_range').value = '15';"
        "document.getElementById('opt-brightness_range-on').checked = true;"
        "document.getElementById('opt-fill_mode').value = 'reflect';"
        "document.getElementById('opt-rescale').value = '1/255';"
        "document.getElementById('extra-gaussian_blur-on').checked = true;"
        "schedule();"
    )
    browser.find_element("id", "export").click()
    text = _wait(browser, lambda d: d.find_element("id", "yaml-text").get_attribute("value"))
    shown = parse_form(browser.execute_script("return readConfig().config")).config
    path = tmp_path / "augment.yaml"
    path.write_text(text)
    loaded = AugmentConfig.from_yaml(path)
    assert loaded == shown and loaded.width_shift_range == 15 and loaded.fill_mode == "reflect"
    assert loaded.rescale == 1 / 255 and [e.name for e in loaded.extras] == ["gaussian_blur"]
    assert browser.find_element("id", "download-yaml").get_attribute("href").startswith("blob:")
    # Importing it into a fresh page gives the same config.
    _open_studio(browser, url)
    browser.find_element("id", "import-file").send_keys(str(path))
    _wait(browser, lambda d: d.find_element("id", "opt-width_shift_range").get_attribute("value") == "15")
    assert parse_form(browser.execute_script("return readConfig().config")).config == loaded


def test_requests_outside_the_allowed_folders_are_refused(browser: Any, studio_url: tuple[str, Path]) -> None:
    url, _ = studio_url
    _open_studio(browser, url)
    script = """
        const done = arguments[arguments.length - 1];
        const asks = [
          fetch('/api/grid', {method: 'POST', headers: {'Content-Type': 'application/json'},
                              body: JSON.stringify({source: '../secret.txt'})}),
          fetch('/api/grid', {method: 'POST', headers: {'Content-Type': 'application/json'},
                              body: JSON.stringify({source: '/etc'})}),
          fetch('/api/runs/..%2F..%2Fsecret.txt/metrics'),
          fetch('/api/runs/%2e%2e/secret.txt/log'),
        ];
        Promise.all(asks.map((p) => p.then(async (r) => [r.status, await r.text()]))).then(done);
    """
    for status, text in browser.execute_async_script(script):
        assert status in (403, 404) and "Traceback" not in text, (status, text)
        assert text != "secret"
    browser.get(url + "/api/runs/..%2F..%2Fsecret.txt/metrics")
    assert "secret" not in browser.find_element("tag name", "body").text or "outside" in browser.page_source


def test_a_run_started_from_the_page_appears_with_its_curves(
    browser: Any, studio_url: tuple[str, Path]
) -> None:
    from selenium.webdriver.support.ui import Select

    url, runs = studio_url
    _open_studio(browser, url)
    # Tiny by default; for the README's screenshots, `augpipe run`'s model for a few epochs on every image.
    model, epochs, images = ("fashion_convnet", "5", "") if SCREENSHOTS else ("shapes_net", "1", "200")
    Select(browser.find_element("id", "run-model")).select_by_value(model)
    for field, value in (("run-epochs", epochs), ("run-name", "browser-run"), ("run-max", images)):
        element = browser.find_element("id", field)
        element.clear()
        element.send_keys(value)
    if SCREENSHOTS:  # four rows, so that Keras's panel fits below the grid
        samples = browser.find_element("id", "samples")
        samples.clear()
        samples.send_keys("4")
        _wait(browser, lambda d: len(d.find_elements("css selector", "#overlay .cell")) == 4 * 8)
        browser.set_window_size(1500, 1250)
        browser.find_element("css selector", "#overlay .cell[data-row='2'][data-col='3']").click()
        _wait(browser, lambda d: "99th percentile" in d.find_element("id", "keras-stats").text, timeout=120)
        browser.execute_script("window.scrollTo(0, 0)")
        _save(browser, "studio.png")
    browser.find_element("id", "start-run").click()
    _wait(browser, lambda d: d.find_elements("id", "run-link"))
    assert (runs / ".studio" / "browser-run.json").exists()
    browser.find_element("id", "run-link").click()
    row = "tr[data-run='browser-run'] td[data-status]"
    _wait(browser, lambda d: d.find_elements("css selector", row))

    def finished(d: Any) -> bool:
        status = d.find_element("css selector", row).get_attribute("data-status")
        assert status != "failed", (runs / ".studio" / "browser-run.log").read_text()[-3000:]
        return status == "finished"

    _wait(browser, finished, timeout=RUN_SECONDS)
    browser.execute_script("document.querySelector(\"tr[data-run='browser-run']\").click()")
    path = "svg[data-chart='loss'] path[data-run='browser-run'][data-series='loss']"
    _wait(browser, lambda d: d.find_elements("css selector", path))
    _wait(browser, lambda d: d.execute_script("return document.getElementById('confusion').naturalWidth > 0"))
    _wait(browser, lambda d: "epoch 1 of" in d.find_element("id", "run-log").get_attribute("textContent"))
    assert (runs / "browser-run" / "metrics.csv").read_text().count("\n") == 1 + int(epochs)  # header, epochs
    if SCREENSHOTS:
        _save(browser, "studio-runs.png")
    for name in ("baseline", "browser-run"):  # ticked, their curves are drawn together
        browser.execute_script(f"document.querySelector(\"tr[data-run='{name}'] input\").click()")
    for name in ("baseline", "browser-run"):
        overlaid = f"svg[data-chart='accuracy'] path[data-run='{name}'][data-series='val_accuracy']"
        _wait(browser, lambda d, css=overlaid: d.find_elements("css selector", css))
    assert "2 runs overlaid" in browser.find_element("id", "detail-title").text


def test_a_comparison_shows_its_table_curves_and_overlay(browser: Any, studio_url: tuple[str, Path]) -> None:
    from pipeline.config import AugmentConfig, CompareConfig, TrainConfig
    from pipeline.training.compare import compare

    url, runs = studio_url
    train = TrainConfig(dataset="digits", model="shapes_net", epochs=1, workers=0, max_train_samples=300,
                        runs_dir=str(runs), mlflow=False, tensorboard=False)  # fmt: skip
    result = compare(
        CompareConfig(name="cmp", train=train, augments={"flip": AugmentConfig(horizontal_flip=True)})
    )
    browser.get(url + "/runs")
    box = "[data-comparison='cmp']"
    _wait(browser, lambda d: d.find_elements("css selector", f"{box} tr[data-run='cmp/flip']"))
    table = browser.find_element("css selector", f"{box} table").text
    for row in result.rows:  # each variant's test accuracy, as the comparison computed it
        assert f"{row.variant} {row.val_accuracy:.4f}" in table and f"{row.test_accuracy:.4f}" in table
    _wait(
        browser,
        lambda d: d.execute_script(f'return document.querySelector("{box} img.curves").naturalWidth > 0'),
    )
    browser.find_element("css selector", f"{box} button").click()
    for name in ("cmp/none", "cmp/flip"):
        overlaid = f"svg[data-chart='accuracy'] path[data-run='{name}'][data-series='val_accuracy']"
        _wait(browser, lambda d, css=overlaid: d.find_elements("css selector", css))


def _save(driver: Any, name: str) -> None:
    """A screenshot for the README, as small as the page allows (PNG, 8-bit palette when it fits)."""
    from PIL import Image

    target = Path(SCREENSHOTS or ".") / name
    target.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(target))
    with Image.open(target) as shot:
        shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
