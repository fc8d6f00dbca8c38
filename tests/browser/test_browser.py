"""The widgets in a real browser: JupyterLab and Notebook 7 + Debian's Chromium, driven by Playwright.

Starts the front end on 127.0.0.1 (a free port, a token, settings and notebooks in a temporary
folder). In `widget_demo.ipynb` it drags a box and then a path on the canvas with the mouse, reads
the tracks back from the kernel (a cell that prints them) and from the autosave file, presses
Generate and waits for the video; in `explorer_demo.ipynb` it clicks a point of the feature
explorer's frame 0. Saves screenshots to out/browser/. The server is shut down at the end,
whatever happened.

Run with `make test-browser`. Needs /usr/bin/chromium (`apt-get install chromium`; another
binary with CHROMIUM=...) and the `playwright` package; never downloads a browser. Without them
the test is skipped, unless SGI2V_REQUIRE_BROWSER=1 (set by `make test-browser`), then it fails.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCREENSHOTS = ROOT / "out" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "sgi2v-browser-test"
# JupyterLab settings for the test: no news or update checks, no document autosave, no kernel dialog.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
}


def _require_browser():
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is missing (pip install -e '.[dev]')"
    if problem is None and not Path(CHROMIUM).is_file():
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM=...)"
    if problem:
        if os.environ.get("SGI2V_REQUIRE_BROWSER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen, base_url: str) -> None:
    """Shut JupyterLab down through its API (it stops its kernels), then by signal if needed."""
    if process.poll() is None:
        try:
            request = urllib.request.Request(f"{base_url}/api/shutdown?token={TOKEN}", method="POST", data=b"")
            urllib.request.urlopen(request, timeout=5).close()
        except OSError:
            pass
    for sig, wait in ((None, 15), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if sig is not None and process.poll() is None:
            os.killpg(process.pid, sig)  # its own process group: the server and what it started
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# the two front ends the browser tests run in: (python -m module, its app's config name, a notebook's URL path)
FRONT_ENDS = {
    "jupyterlab": ("jupyterlab", "LabApp", "lab/tree"),
    "notebook7": ("notebook", "JupyterNotebookApp", "notebooks"),
}


@pytest.fixture(params=list(FRONT_ENDS))
def jupyter_lab(tmp_path, request):
    """JupyterLab, or Notebook 7, serving copies of this folder's notebooks from tmp_path; yields
    (base_url, tmp_path, the URL path of a notebook)."""
    module, app, notebook_path = FRONT_ENDS[request.param]
    _require_browser()
    for notebook in HERE.glob("*.ipynb"):
        shutil.copy(notebook, tmp_path / notebook.name)
    settings = tmp_path / "lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        SGI2V_WIDGET_AUTOSAVE=str(tmp_path / "autosave.json"),
        HF_HUB_OFFLINE="1",
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        PYTHONPATH=str(ROOT),
    )
    log = tmp_path / "jupyterlab.log"
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={tmp_path}",
                f"--{app}.user_settings_dir={settings}",
                f"--{app}.workspaces_dir={tmp_path / 'workspaces'}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_server(f"{base_url}/api/status?token={TOKEN}", process, log)
        yield base_url, tmp_path, notebook_path
    finally:
        _stop(process, base_url)


def _run_all_cells(page) -> None:
    """Run All Cells from the Run menu, once the kernel is up (a Run All sent while the kernel still
    starts can be lost), and wait until the first code cell has run or is running."""
    kernel_dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    page.wait_for_timeout(1000)
    if kernel_dialog.is_visible():  # should the settings above not keep it away
        kernel_dialog.get_by_role("button", name="Select").click()
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(3):
        try:  # JupyterLab's and Notebook 7's execution indicator says idle once the kernel is up
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=30_000)
        except Exception:
            page.wait_for_timeout(3000)
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if first_prompt.inner_text().strip() not in ("[ ]:", "[ ]", ""):
                return
            page.wait_for_timeout(250)
    raise AssertionError("Run All Cells did not start the notebook's cells")


def _drag(page, points) -> None:
    """Press at the first point, move through the others, release at the last (page pixels)."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=3)
    page.mouse.up()


@contextlib.contextmanager
def _notebook_page(jupyter, name: str, failure_png: str):
    """Chromium on notebook `name` in the front end `jupyter` (the fixture's value), all its cells
    run; yields the page. On an exception: a screenshot `failure_png` and the browser console's last
    lines, then re-raised."""
    from playwright.sync_api import sync_playwright

    base_url, folder, notebook_path = jupyter
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / failure_png).unlink(missing_ok=True)  # only a failing run leaves one
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(folder / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1300},
        )
        page = context.pages[0] if context.pages else context.new_page()
        console = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        try:
            page.goto(f"{base_url}/{notebook_path}/{name}?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            _run_all_cells(page)
            yield page
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / failure_png))
            print("\n".join(console[-30:]))
            raise
        finally:
            context.close()


def _print_cell(page, marker: str) -> dict:
    """Run the cell that prints `marker` and a JSON object, and return the object."""
    print_cell = page.locator(".jp-CodeCell", has_text=f'print("{marker}"')
    print_cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")  # run it, stay there
    printed = print_cell.locator(".jp-OutputArea-output", has_text=f"{marker} {{")
    printed.wait_for(timeout=30_000)
    return json.loads(printed.inner_text().split(marker, 1)[1])


def test_draw_a_box_and_a_path_with_the_mouse(jupyter_lab):
    folder = jupyter_lab[1]
    autosave = folder / "autosave.json"
    with _notebook_page(jupyter_lab, "widget_demo.ipynb", "failure.png") as page:
        canvas = page.locator("canvas.sgi2v-canvas")
        canvas.wait_for(state="visible", timeout=60_000)
        canvas.scroll_into_view_if_needed()
        page.wait_for_timeout(500)  # let the first paint arrive
        bounds = canvas.bounding_box()

        def at(fx, fy):  # a point of the canvas given as fractions of its size, in page pixels
            return (bounds["x"] + fx * bounds["width"], bounds["y"] + fy * bounds["height"])

        # the box around the red square of shapes.png (pixels 40..104 x 96..160 of 256)
        _drag(page, [at(40 / 256, 96 / 256), at(0.3, 0.5), at(104 / 256, 160 / 256)])
        # its path, from the box centre: right and up, then right and down
        _drag(page, [at(72 / 256, 128 / 256), at(130 / 256, 110 / 256), at(184 / 256, 136 / 256)])

        deadline = time.monotonic() + 20  # the kernel handles the events and autosaves
        while time.monotonic() < deadline:
            saved = json.loads(autosave.read_text()) if autosave.is_file() else {"tracks": []}
            if saved["tracks"] and len(saved["tracks"][0]["path"]) > 1:
                break
            page.wait_for_timeout(200)
        page.wait_for_timeout(300)
        page.screenshot(path=str(SCREENSHOTS / "page.png"))
        page.locator(".jp-OutputArea-output", has=canvas).screenshot(path=str(SCREENSHOTS / "widget.png"))
        from_kernel = _print_cell(page, "TRACKS")  # ask the kernel
        # Generate: the toy model makes the video, and the widget shows it (a GIF in an <img>)
        page.get_by_role("button", name="Generate").click()
        video = page.locator(".jp-OutputArea-output", has=canvas).locator("img[src^='blob:'], img[src^='data:']")
        video.first.wait_for(state="visible", timeout=300_000)
        page.wait_for_timeout(500)
        page.locator(".jp-OutputArea-output", has=canvas).screenshot(path=str(SCREENSHOTS / "generated.png"))
        generated = _print_cell(page, "GENERATED")

    assert from_kernel == saved  # the kernel's tracks are the autosaved ones
    assert from_kernel["image_size"] == [256, 256]
    (track,) = from_kernel["tracks"]
    # one page pixel is half an image pixel (a 256 px image shown at 512): allow a few pixels
    assert track["box"] == pytest.approx([40, 96, 104, 160], abs=3)
    path = track["path"]
    assert len(path) == 8  # one centre per frame
    centre = [(track["box"][0] + track["box"][2]) / 2, (track["box"][1] + track["box"][3]) / 2]
    assert path[0] == pytest.approx(centre, abs=0.01)
    assert path[-1] == pytest.approx([184, 136], abs=4)
    assert min(y for _, y in path) < 120  # it went up through (130, 110) on the way
    assert (SCREENSHOTS / "widget.png").stat().st_size > 0
    assert generated["frames"] == [8, 64, 64, 3] and generated["error"] is None  # the video the widget shows


def test_click_a_point_in_the_feature_explorer(jupyter_lab):
    """explorer_demo.ipynb: hand-made features whose aligned content moves (+1, +2) cells a frame.
    A real click on frame 0 chooses the cell under it, and the kernel's best matches follow."""
    with _notebook_page(jupyter_lab, "explorer_demo.ipynb", "explorer-failure.png") as page:
        canvas = page.locator("canvas.sgi2v-explorer-canvas")
        canvas.wait_for(state="visible", timeout=60_000)
        canvas.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        bounds = canvas.bounding_box()
        # the middle of cell (2, 5) of the 8 x 8 grid shown at 256 px
        page.mouse.click(bounds["x"] + 2.5 / 8 * bounds["width"], bounds["y"] + 5.5 / 8 * bounds["height"])
        page.locator(".jp-OutputArea-output", has_text="cell (2, 5)").wait_for(timeout=20_000)
        page.screenshot(path=str(SCREENSHOTS / "explorer.png"))
        from_kernel = _print_cell(page, "EXPLORER")

    assert from_kernel["cell"] == [2, 5]
    assert from_kernel["aligned"] == [[(2 + j) % 8, (5 + 2 * j) % 8] for j in range(4)]
