"""FoodVision Mini (demos/foodvision_mini, written by lesson 09) tested the way a user uses it.

The app runs as its own process (`python app.py` with PORT set) on a free loopback port. Against
it: headless Chromium (Debian's `chromium`, driven by Playwright's Python API) uploads an example
and reads the prediction off the page; `gradio_client` calls its API; bad uploads get their
message on the page while the server keeps answering; one photo in many encodings gets, through the
served app, the same top 3 as model.py gives in-process; 20 concurrent requests all come back right.

Artefacts (screenshots, the load test's latencies) go to tests/artifacts/, a folder that ignores
itself (it holds a `.gitignore` of `*`). `FOODVISION_SCREENSHOT=1 python -m pytest tests/test_demo_app.py -k browser`
also refreshes the screenshot lesson 09 shows, notebooks/images/09_foodvision_mini_app.png (committed).

When the lesson has not been run, a session fixture makes the model file and the examples with
`going_modular.deploy.build_foodvision_mini`, the lesson's recipe (about a minute on 2 cores).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demos" / "foodvision_mini"
MODEL_FILE = DEMO / "foodvision_mini.onnx"
ARTIFACTS = ROOT / "tests" / "artifacts"
LESSON_SCREENSHOT = ROOT / "notebooks" / "images" / "09_foodvision_mini_app.png"  # FOODVISION_SCREENSHOT=1 refreshes it
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
CLASSES = ("pizza", "steak", "sushi")
STARTUP_S = 120  # the app imports gradio and onnxruntime: seconds on an idle machine, more on a busy one


def artifacts() -> Path:
    """tests/artifacts/, which git ignores through its own .gitignore."""
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# test artefacts (screenshots, timings): never committed\n*\n")
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200, the process dies, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} before answering:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Terminate, wait (bounded), kill if needed; afterwards the process has exited."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    assert process.poll() is not None, "the server process is still running"


@pytest.fixture(scope="session")
def examples() -> list[Path]:
    """The app's example images; made with the model when the lesson has not run."""
    found = sorted((DEMO / "examples").glob("*.jpg"))
    if MODEL_FILE.is_file() and len(found) >= len(CLASSES):
        return found
    from course.data import food_images
    from course.weights import get_weights
    from going_modular import deploy

    folder = food_images("offline", subset="20%")
    if not MODEL_FILE.is_file():
        deploy.build_foodvision_mini(get_weights("efficientnet_b2", data="offline"), folder, MODEL_FILE)
    sys.path.insert(0, str(DEMO))
    from model import FoodVisionMini  # the app's own model class

    model = FoodVisionMini(MODEL_FILE)
    (DEMO / "examples").mkdir(exist_ok=True)
    for name in CLASSES:  # as the lesson does: the first test image of each class the model gets right
        source = next(p for p in sorted((folder / "test" / name).glob("*.jpg"))
                      if top(model, p) == name)
        shutil.copyfile(source, DEMO / "examples" / source.name)
    return sorted((DEMO / "examples").glob("*.jpg"))


def top(model, path: Path) -> str:
    probabilities, _ = model.predict(path)
    return max(probabilities, key=probabilities.get)


def true_class(path: Path) -> str:
    return next(c for c in CLASSES if path.name.startswith(c))


@pytest.fixture(scope="session")
def app_server(examples):
    """`python app.py` on a free loopback port; yields (url, process); always stopped afterwards."""
    port = free_port()
    log = Path(artifacts()) / "demo_app_server.log"
    env = {**os.environ, "PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_SERVER_NAME": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("GRADIO_SERVER_PORT", None)
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=DEMO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_http(url, process, log, STARTUP_S)
        yield url, process
    finally:
        stop(process)


@pytest.fixture(scope="session")
def client(app_server):
    from gradio_client import Client

    return Client(app_server[0], verbose=False)


_SHARED: dict = {"users": 0}


@contextlib.contextmanager
def shared_chromium():
    """One headless Chromium per test session, shared by this module and test_jupyterlab.py.

    Playwright's sync API runs an event loop in the thread that starts it, so a second
    `sync_playwright()` while the first is open fails; the browser is started once and stopped
    when its last user is done.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`; .ci/run does)")
    if _SHARED["users"] == 0:
        from playwright.sync_api import sync_playwright

        manager = sync_playwright()
        playwright = manager.__enter__()
        _SHARED.update(manager=manager, browser=playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                                           args=CHROMIUM_ARGS))
    _SHARED["users"] += 1
    try:
        yield _SHARED["browser"]
    finally:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0:
            _SHARED.pop("browser").close()
            _SHARED.pop("manager").__exit__(None, None, None)


@pytest.fixture(scope="session")
def browser():
    with shared_chromium() as chromium:
        yield chromium


@pytest.fixture()
def page(browser, app_server):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(60_000)
    page.goto(app_server[0])
    page.wait_for_selector("input[type=file]", state="attached")
    yield page
    page.close()


def upload_and_predict(page, path: Path) -> None:
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.wait_for_selector("img", state="attached")  # the preview (a broken one for a non-image)
    page.get_by_role("button", name="Predict").click()


def read_prediction(page) -> tuple[str, dict[str, float]]:
    """The label and the probabilities the page shows (gr.Label's output and its bars)."""
    page.wait_for_selector("[data-testid=label-output-value]")
    label = page.locator("[data-testid=label-output-value]").inner_text().strip()
    bars = {}
    for meter in page.locator("meter").all():
        bars[meter.get_attribute("aria-label")] = float(meter.get_attribute("value"))
    return label, bars


def answers(client, example: Path) -> str:
    """The server still predicts correctly (used after every bad upload)."""
    from gradio_client import handle_file

    label, _ = client.predict(handle_file(str(example)), api_name="/predict")
    return label["label"]


# --------------------------------------------------------------------------- the page
def test_browser_upload_shows_label_probabilities_and_time(page, examples):
    example = next(p for p in examples if true_class(p) == "steak")
    upload_and_predict(page, example)
    label, bars = read_prediction(page)
    page.wait_for_function("document.querySelector('input[type=number]').value !== ''")
    seconds = float(page.locator("input[type=number]").input_value())
    page.screenshot(path=str(artifacts() / "demo_app_prediction.png"), full_page=True)
    if os.environ.get("FOODVISION_SCREENSHOT"):  # refresh the picture lesson 09 shows (section 8.7)
        shutil.copyfile(artifacts() / "demo_app_prediction.png", LESSON_SCREENSHOT)
    assert label == "steak"
    assert set(bars) == set(CLASSES), bars
    assert max(bars, key=bars.get) == "steak" and abs(sum(bars.values()) - 1) < 1e-3, bars
    assert 0 < seconds < 10


def test_gradio_client_predicts_every_example(client, examples):
    from gradio_client import handle_file

    for example in examples:
        label, seconds = client.predict(handle_file(str(example)), api_name="/predict")
        confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
        assert label["label"] == true_class(example), (example.name, label)
        assert set(confidences) == set(CLASSES) and abs(sum(confidences.values()) - 1) < 1e-3
        assert 0 < seconds < 10


# --------------------------------------------------------------------------- bad uploads
@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, examples) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    sample = Image.open(examples[0]).convert("RGB")
    files = {}
    files["not_an_image"] = folder / "holiday.jpg"
    files["not_an_image"].write_text("a text file renamed to .jpg\n" * 50)
    data = examples[0].read_bytes()
    files["truncated"] = folder / "truncated.jpg"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["grayscale"] = folder / "grayscale.png"
    sample.convert("L").save(files["grayscale"])
    files["rgba"] = folder / "rgba.png"
    rgba = sample.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(files["rgba"])
    files["one_pixel"] = folder / "one_pixel.png"
    Image.new("RGB", (1, 1), (200, 100, 50)).save(files["one_pixel"])
    files["strip"] = folder / "strip.png"
    Image.new("RGB", (20_000, 10), (120, 80, 40)).save(files["strip"])  # resized naively: 584,000 x 292 pixels
    files["grey16"] = folder / "grey16.png"
    Image.fromarray(np.asarray(sample.convert("L"), dtype=np.uint16) * 257).save(files["grey16"])  # mode I;16
    files["huge"] = folder / "huge.png"
    Image.new("L", (10_000, 10_000), 128).save(files["huge"])  # 100 megapixels, a few hundred KB on disk
    files["bomb"] = folder / "bomb.png"
    files["bomb"].write_bytes(png_header(20_000, 20_000))  # 400 MP: past Pillow's own limit, refused at the header
    return files


def png_header(width: int, height: int) -> bytes:
    """A PNG that announces `width` x `height` 8-bit grey pixels and holds almost none (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


REFUSED = {
    "not_an_image": "is not an image file Pillow can read",
    "truncated": "is damaged and cannot be decoded",
    "one_pixel": "is only 1 x 1 pixels",
    "strip": "is 20,000 x 10 pixels, a strip rather than a photo",
    "huge": "10,000 x 10,000 pixels (100 MP); this app takes at most 40 MP",
    "bomb": "has more than 179 MP, too many to open safely; this app takes at most 40 MP",
}


def server_rss_mb(process: subprocess.Popen) -> float:
    import psutil

    return psutil.Process(process.pid).memory_info().rss / 2**20


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_upload_shows_its_message_and_the_server_keeps_serving(case, page, bad_files, client, examples, app_server):
    before = server_rss_mb(app_server[1])
    upload_and_predict(page, bad_files[case])
    toast = page.locator("[data-testid=toast-text]").first
    toast.wait_for()
    message = toast.inner_text()
    if case == "huge":
        page.screenshot(path=str(artifacts() / "demo_app_refused_upload.png"), full_page=True)
    assert REFUSED[case] in message, message
    assert app_server[1].poll() is None, "the server died"
    assert answers(client, examples[0]) == true_class(examples[0])
    assert server_rss_mb(app_server[1]) - before < 300, "a refused upload should not cost the server memory"


@pytest.mark.parametrize("case", ["grayscale", "rgba", "grey16"])
def test_grayscale_rgba_and_16_bit_uploads_are_converted_and_classified(case, page, bad_files):
    upload_and_predict(page, bad_files[case])
    label, bars = read_prediction(page)
    assert label in CLASSES and abs(sum(bars.values()) - 1) < 1e-3, (label, bars)
    assert page.locator("[data-testid=toast-text]").count() == 0


# --------------------------------------------------------------------------- fidelity
def photo_encodings(photo: Image.Image, folder: Path) -> dict[str, Path]:
    """One photo saved the ways phones, editors and screenshots save it (each a different file kind)."""
    rgb = photo.convert("RGB")
    files = {}

    def save(name, image, **options):
        files[name] = folder / name
        image.save(files[name], **options)

    save("grey16.png", Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257))  # mode I;16
    save("grayscale.png", rgb.convert("L"))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(200)
    save("rgba.png", rgba)
    save("grey_alpha.png", rgb.convert("LA"))
    save("cmyk.jpg", rgb.convert("CMYK"), quality=92)
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    save("palette_transparent.png", palette, transparency=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the pixels are stored turned the other way
    save("exif_rotated.jpg", rgb.transpose(Image.Transpose.ROTATE_90), exif=exif, quality=92)
    save("progressive.jpg", rgb, quality=85, progressive=True)
    save("phone_size.jpg", rgb.resize((3024, 3024), Image.Resampling.BICUBIC), quality=90)  # drafted down
    save("photo.webp", rgb, quality=85)
    save("lossless.webp", rgba, lossless=True)
    save("photo.bmp", rgb)
    save("photo.tiff", rgb)
    save("photo.gif", rgb.convert("P"))
    return files


@pytest.fixture(scope="session")
def encodings(tmp_path_factory, examples) -> dict[str, Path]:
    return photo_encodings(Image.open(examples[0]), tmp_path_factory.mktemp("encodings"))


def top3(probabilities: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(probabilities.items(), key=lambda kv: -kv[1])[:3]


def test_served_app_answers_what_model_py_answers_for_every_encoding(client, encodings):
    """The upload reaches model.py byte for byte: the served top-3 is model.py's own, in-process."""
    from gradio_client import handle_file

    sys.path.insert(0, str(DEMO))
    from model import FoodVisionMini  # the app's own model class

    model = FoodVisionMini(MODEL_FILE)
    for name, path in encodings.items():
        expected = top3(model.predict(path)[0])
        label, _ = client.predict(handle_file(str(path)), api_name="/predict")
        served = [(c["label"], c["confidence"]) for c in label["confidences"]][:3]
        assert [k for k, _ in served] == [k for k, _ in expected], (name, served, expected)
        assert max(abs(a - b) for (_, a), (_, b) in zip(served, expected)) < 0.02, (name, served, expected)


def test_the_16_bit_png_is_classified_as_the_8_bit_photo(client, encodings, examples):
    """The case that failed when Gradio re-saved uploads as 8-bit RGB (it clipped 16-bit grey to white)."""
    from gradio_client import handle_file

    grey8, _ = client.predict(handle_file(str(encodings["grayscale.png"])), api_name="/predict")
    grey16, _ = client.predict(handle_file(str(encodings["grey16.png"])), api_name="/predict")
    assert grey16["label"] == grey8["label"]
    for a, b in zip(grey16["confidences"], grey8["confidences"]):
        assert a["label"] == b["label"] and abs(a["confidence"] - b["confidence"]) < 0.02


# --------------------------------------------------------------------------- load
def test_twenty_concurrent_requests_all_answer_right(client, examples, app_server):
    from gradio_client import handle_file

    requests = [examples[i % len(examples)] for i in range(20)]

    def one(path: Path) -> tuple[str, float]:
        start = time.perf_counter()
        job = client.submit(handle_file(str(path)), api_name="/predict")
        label, _ = job.result(timeout=60)
        return label["label"], time.perf_counter() - start

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, requests, timeout=90))
    wall = time.perf_counter() - start
    labels, seconds = zip(*results)
    p50, p95 = np.percentile(seconds, [50, 95])
    report = {"requests": len(results), "wall_s": round(wall, 3), "p50_s": round(float(p50), 3),
              "p95_s": round(float(p95), 3), "mean_s": round(statistics.fmean(seconds), 3)}
    (artifacts() / "demo_app_load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n20 concurrent requests: {report}")
    assert list(labels) == [true_class(p) for p in requests]
    assert app_server[1].poll() is None, "the server died under load"
    assert answers(client, examples[0]) == true_class(examples[0])


def load_serving_benchmark():
    """benchmarks/serving.py as a module (the benchmarks folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("serving_benchmark", ROOT / "benchmarks" / "serving.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_serving_benchmark_drives_the_app_and_counts_its_cpu(app_server, examples):
    import asyncio

    serving = load_serving_benchmark()
    url, process = app_server[0].rstrip("/"), app_server[1]
    # in a thread of its own: Playwright's sync API (the browser tests) keeps an event loop running in this one
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        rows, answer = pool.submit(lambda: asyncio.run(serving.drive(
            url, process.pid, examples[0], [1, 16], seconds=0.8, warmup_s=0.3, grace_s=30, api="predict"))).result()
    assert answer[0]["label"] == true_class(examples[0])
    assert [row["clients"] for row in rows] == [1, 16]
    for row in rows:
        assert row["requests"] > 0 and row["failed"] == 0, row
        assert row["p50_ms"] <= row["p95_ms"] and row["server_cpu_ms"] > 0 and row["client_cpu_ms"] > 0, row
        # clients that never pause: clients = requests/s x mean latency (Little's law). Counting the answers
        # that arrive after the window closes (16 of them here) would break it.
        assert 0.6 < row["per_s"] * row["mean_ms"] / 1000 / row["clients"] < 1.4, row
    assert serving.ceiling_per_s(40.0, cores=2) == 50.0  # two cores, 40 ms of CPU per request
    with pytest.raises(SystemExit, match=r"--setting 'FOODVISION_BATCH': expected KEY=VALUE"):
        serving.parse_setting("FOODVISION_BATCH")  # no value: the message names it and the form expected


# --------------------------------------------------------------------------- the app on its own
def test_app_refuses_a_bad_port():
    env = {**os.environ, "PORT": "not-a-port"}
    result = subprocess.run([sys.executable, "-c", "import app; app.server_port()"], cwd=DEMO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "PORT='not-a-port' is not a port number" in result.stderr


def test_app_folder_imports_neither_course_nor_going_modular():
    for path in DEMO.glob("*.py"):
        text = path.read_text()
        for package in ("course", "going_modular", "torch"):
            assert f"import {package}" not in text and f"from {package}" not in text, f"{path.name} imports {package}"
    requirements = (DEMO / "requirements.txt").read_text()
    pins = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    assert "gradio==6.31.0" in pins and not [p for p in pins if p.startswith("torch")], pins
