"""Pictures of the real TensorBoard for lesson 07, taken in headless Chromium.

    python -m course.screenshots                     # the newest lesson-07 runs under runs/
    python -m course.screenshots --logdir runs/2026-12-01_14-49-32

Lesson 07 shows what TensorBoard draws for its runs. This script takes those pictures: it starts
the real `tensorboard --logdir <one execution's runs>` on a free loopback port, opens three of its
pages in Debian's Chromium (/usr/bin/chromium) through Playwright's Python API, as the course's
browser tests do, saves them, and stops the server:

    notebooks/images/07_tensorboard_scalars.png      Scalars, run filter "seed_42", smoothing 0
    notebooks/images/07_tensorboard_histograms.png   Histograms of the head's weights (section 4.6)
    notebooks/images/07_tensorboard_graph.png        Graphs: the traced head (section 4.6)

The runs come from an execution of lesson 07 (`python -m course run --only 07`, or the notebook
in JupyterLab); each execution writes its grid to runs/<timestamp>/. Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "runs"
IMAGES = REPO / "notebooks" / "images"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
STAMP = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d")
GRID_RUN = "seed_42"  # the run filter of the scalars picture: one seed of each of the 8 settings
START_TIMEOUT_S = 120


def newest_lesson_runs(root: Path = RUNS) -> Path:
    """The newest runs/<timestamp>/ folder that holds lesson 07's grid (data_20_percent/ and head_internals/)."""
    found = sorted(d for d in root.glob("*") if STAMP.fullmatch(d.name) and (d / "data_20_percent").is_dir()
                   and (d / "head_internals").is_dir()) if root.is_dir() else []
    if not found:
        raise FileNotFoundError(f"No lesson-07 runs under {root} (a runs/<timestamp>/ folder with data_20_percent/ "
                                "and head_internals/): run the lesson first, `python -m course run --only 07`.")
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(server: subprocess.Popen, timeout_s: float = 15) -> None:
    """Terminate a server process, and kill it if it has not exited within `timeout_s`."""
    server.terminate()
    try:
        server.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=timeout_s)


def wait_for_runs(base: str, server: subprocess.Popen, expected: int) -> None:
    """Until TensorBoard's HTTP API lists `expected` runs (it loads the event files in the background)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"tensorboard exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/data/runs", timeout=5) as response:
                if len(json.loads(response.read())) >= expected:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"tensorboard did not list {expected} runs within {START_TIMEOUT_S} s")
        time.sleep(0.5)


def shoot(logdir: Path, out_dir: Path = IMAGES, settle_s: float = 8.0) -> list[Path]:
    """Start TensorBoard on `logdir`, take the three pictures into `out_dir`, stop it; returns their paths."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium).")
    expected = len({path.parent for path in logdir.rglob("events.out.tfevents.*")})  # run folders
    out_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logdir = logdir.resolve()
    shown = logdir.relative_to(REPO) if logdir.is_relative_to(REPO) else logdir  # the page prints it
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(shown), "--host", "127.0.0.1",
                               "--port", str(port), "--load_fast=false"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pages = {
        "07_tensorboard_scalars.png": "#scalars&" + urllib.parse.urlencode({"regexInput": GRID_RUN, "_smoothingWeight": 0}),
        "07_tensorboard_histograms.png": "#histograms&" + urllib.parse.urlencode({"regexInput": "head_internals"}),
        "07_tensorboard_graph.png": "#graphs",
    }
    saved = []
    try:
        wait_for_runs(base, server, expected)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.set_default_timeout(120_000)
                for name, route in pages.items():
                    page.goto(f"{base}/{route}")
                    page.wait_for_load_state("networkidle")
                    time.sleep(settle_s)  # the charts draw after the data arrives
                    if name == "07_tensorboard_graph.png":  # open the model's node to show its layers
                        node = page.locator("svg g.node", has_text="Sequential").first
                        if node.count():
                            node.dblclick()
                            time.sleep(settle_s / 2)
                    page.screenshot(path=str(out_dir / name))
                    saved.append(out_dir / name)
            finally:
                browser.close()
    finally:
        stop(server)
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.screenshots", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--logdir", type=Path, default=None,
                        help="one execution's runs folder (default: the newest runs/<timestamp>/ of lesson 07)")
    parser.add_argument("--out", type=Path, default=IMAGES, help="where the pictures go")
    args = parser.parse_args(argv)
    logdir = args.logdir or newest_lesson_runs()
    if not logdir.is_dir():
        parser.error(f"--logdir {logdir} is not a folder; pass a runs/<timestamp>/ folder of lesson 07.")
    for path in shoot(logdir, args.out):
        print(f"saved {path.relative_to(REPO) if path.is_relative_to(REPO) else path} (runs from {logdir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
