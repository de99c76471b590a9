"""Tests for going_modular/tracking.py: real event files, read back by TensorBoard's own reader and server."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course.screenshots import free_port, stop
from going_modular import engine
from going_modular.tracking import TAGS, create_writer, find_runs, log_to, read_scalars

EPOCHS = 3
SERVER_TIMEOUT_S = 60


def tiny_run(root: Path, extra: str | None = "3_epochs", timestamp: str | None = None):
    """Train a 4-feature linear classifier for EPOCHS epochs through engine.train with the logger."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    train_dl = DataLoader(TensorDataset(X[:30], y[:30]), batch_size=8, shuffle=True, generator=g)
    test_dl = DataLoader(TensorDataset(X[30:], y[30:]), batch_size=8)
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with create_writer("tiny", "linear", extra, root=root, timestamp=timestamp) as writer:
        results = engine.train(model, train_dl, test_dl, optimizer, nn.CrossEntropyLoss(), EPOCHS, "cpu",
                               on_epoch_end=log_to(writer), progress=False, verbose=False)
    return writer, results


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    writer, results = tiny_run(root)
    return root, writer, results


def test_run_folder_is_timestamped_and_named(logged):
    root, writer, _ = logged
    relative = Path(writer.log_dir).relative_to(root)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", relative.parts[0]), relative
    assert relative.parts[1:] == ("tiny", "linear", "3_epochs")
    assert find_runs(root) == [Path(writer.log_dir)]


def test_tensorboards_reader_gets_every_scalar_back(logged):
    _, writer, results = logged
    scalars = read_scalars(writer.log_dir)
    assert set(scalars) == {TAGS[key] for key in results} == {"Loss/train", "Loss/test", "Accuracy/train", "Accuracy/test"}
    for key, tag in ((key, TAGS[key]) for key in results):
        steps = [step for step, _ in scalars[tag]]
        values = [value for _, value in scalars[tag]]
        assert steps == list(range(1, EPOCHS + 1)), tag
        assert values == pytest.approx(results[key], rel=1e-6, abs=1e-7), tag  # float32 in the file
    assert scalars["Loss/train"][0][1] != scalars["Loss/train"][-1][1]  # it trained: the loss moved


def test_writer_is_closed_after_training_and_wrote_one_file(logged):
    _, writer, _ = logged
    assert writer.all_writers is None  # SummaryWriter.close() sets it to None
    assert len(list(Path(writer.log_dir).glob("events.out.tfevents.*"))) == 1


def test_closing_inside_the_epoch_loop_is_refused(tmp_path):
    """The original course's bug: writer.close() inside the loop. The logger says so instead."""
    writer = create_writer("tiny", "linear", root=tmp_path)
    hook = log_to(writer)
    metrics = {"train_loss": 1.0, "train_acc": 0.5, "test_loss": 1.2, "test_acc": 0.4}
    hook(0, metrics)
    writer.close()
    with pytest.raises(RuntimeError, match=r"closed before epoch 2.*after training"):
        hook(1, metrics)
    assert read_scalars(writer.log_dir)["Loss/test"] == [(1, pytest.approx(1.2))]
    assert Path(writer.log_dir).relative_to(tmp_path).parts[1:] == ("tiny", "linear")  # extra=None: no folder


def test_logger_names_missing_metrics(tmp_path):
    with create_writer("tiny", "linear", root=tmp_path) as writer:
        with pytest.raises(KeyError, match=r"has train_loss, train_acc; it needs .*val_loss/val_acc or test_loss/test_acc"):
            log_to(writer)(0, {"train_loss": 1.0, "train_acc": 0.5})
        with pytest.raises(KeyError, match=r"needs train_loss and train_acc"):
            log_to(writer)(0, {"val_loss": 1.0, "val_acc": 0.5})


def test_a_run_with_validation_logs_val_not_test(tmp_path):
    """Trained with a val_dataloader and no test_dataloader: Loss/val and Accuracy/val, and no test tags."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    train_dl = DataLoader(TensorDataset(X[:30], y[:30]), batch_size=8, shuffle=True, generator=g)
    val_dl = DataLoader(TensorDataset(X[30:], y[30:]), batch_size=8)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    with create_writer("tiny", "linear", "val", root=tmp_path) as writer:
        results = engine.train(model, train_dl, None, optimizer, nn.CrossEntropyLoss(), EPOCHS, "cpu",
                               val_dataloader=val_dl, scheduler=scheduler, on_epoch_end=log_to(writer),
                               progress=False, verbose=False)
    scalars = read_scalars(writer.log_dir)
    assert set(scalars) == {"Loss/train", "Loss/val", "Accuracy/train", "Accuracy/val", "LearningRate"}
    assert [value for _, value in scalars["Loss/val"]] == pytest.approx(results["val_loss"], rel=1e-6)
    assert [value for _, value in scalars["LearningRate"]] == pytest.approx([0.5, 0.25, 0.125])


@pytest.mark.parametrize("bad, error, match", [
    ("", ValueError, r"experiment_name=''.*empty"),
    (" data", ValueError, r"spaces"),
    ("data/10", ValueError, r"'data/10' is not a single folder name"),
    ("data\\10", ValueError, r"not a single folder name"),
    ("..", ValueError, r"'\.\.' is not a single folder name"),
    (10, TypeError, r"experiment_name=10 is a int; pass a str"),
    (None, TypeError, r"is a NoneType"),
])
def test_bad_names_are_refused(tmp_path, bad, error, match):
    with pytest.raises(error, match=match):
        create_writer(bad, "linear", root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was created


@pytest.mark.parametrize("field", ["model_name", "extra", "timestamp"])
def test_every_name_is_checked(tmp_path, field):
    kwargs = {"experiment_name": "tiny", "model_name": "linear", "extra": "x", "timestamp": "t"}
    kwargs[field] = "a/b"
    with pytest.raises(ValueError, match=rf"{field}='a/b' is not a single folder name"):
        create_writer(**kwargs, root=tmp_path)


def test_a_run_folder_is_never_mixed_into(tmp_path):
    tiny_run(tmp_path, timestamp="fixed")
    with pytest.raises(FileExistsError, match=r"already holds event files.*extra="):
        create_writer("tiny", "linear", "3_epochs", root=tmp_path, timestamp="fixed")
    assert len(find_runs(tmp_path)) == 1


def test_reader_refuses_a_folder_without_event_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No event files in"):
        read_scalars(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"No folder at"):
        find_runs(tmp_path / "missing")


# --------------------------------------------------------------------------- the real server
def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.mark.parametrize("load_fast", ["false", "auto"])  # pure Python loader; the default (Rust data server)
def test_tensorboard_server_answers_with_the_scalars(logged, load_fast):
    root, writer, results = logged
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(root), "--host", "127.0.0.1",
         "--port", str(port), f"--load_fast={load_fast}", "--reload_interval", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    run = Path(writer.log_dir).relative_to(root).as_posix()  # TensorBoard names a run by its path under logdir
    descendants: list[psutil.Process] = []
    try:
        deadline, tags = time.monotonic() + SERVER_TIMEOUT_S, {}
        while run not in tags:
            assert server.poll() is None, f"tensorboard exited early: {server.stdout.read().decode()}"
            assert time.monotonic() < deadline, f"tensorboard did not list {run} within {SERVER_TIMEOUT_S} s: {tags}"
            try:
                tags = get_json(f"{base}/data/plugin/scalars/tags")
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet
            if run not in tags:
                time.sleep(0.2)
        descendants = psutil.Process(server.pid).children(recursive=True)
        assert get_json(f"{base}/data/runs") == [run]
        assert set(tags[run]) == {TAGS[key] for key in results}
        for key, tag in ((key, TAGS[key]) for key in results):
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            rows = get_json(f"{base}/data/plugin/scalars/scalars?{query}")  # [[wall_time, step, value], ...]
            assert [step for _, step, _ in rows] == list(range(1, EPOCHS + 1)), tag
            assert [value for _, _, value in rows] == pytest.approx(results[key], rel=1e-6, abs=1e-7), tag
    finally:
        stop(server)
        server.stdout.close()
        stop_deadline = time.monotonic() + 15
        for child in descendants:  # e.g. the Rust data server that --load_fast starts; it exits with its parent
            while not exited(child) and time.monotonic() < stop_deadline:
                time.sleep(0.1)
            if not exited(child):
                child.kill()
    assert server.returncode is not None
    for child in descendants:
        assert exited(child), f"stray process {child}"


def exited(process: psutil.Process) -> bool:
    """True once the process is gone (a zombie has exited too: only its exit status is left)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --------------------------------------------------------------------------- lesson 07's TensorBoard pictures
def test_screenshots_find_the_newest_lesson_runs_or_say_what_to_run(tmp_path):
    from course.screenshots import newest_lesson_runs

    with pytest.raises(FileNotFoundError, match=r"run the lesson first.*course run --only 07"):
        newest_lesson_runs(tmp_path)
    for stamp in ("2026-01-02_10-00-00", "2026-01-03_09-00-00", "2026-01-04_09-00-00"):
        for part in ("data_20_percent", "head_internals"):
            (tmp_path / stamp / part).mkdir(parents=True)
    (tmp_path / "2026-01-04_09-00-00" / "head_internals").rmdir()  # not a whole lesson run: skipped
    (tmp_path / "07_demo").mkdir()
    assert newest_lesson_runs(tmp_path) == tmp_path / "2026-01-03_09-00-00"


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")  # add_graph traces with torch.jit.trace
def test_screenshots_come_from_the_real_server_in_chromium(tmp_path):
    """`python -m course.screenshots` on a small logdir shaped like the lesson's: three PNGs with something drawn."""
    from PIL import Image

    logdir = tmp_path / "2026-01-02_10-00-00"
    for experiment in ("data_10_percent", "data_20_percent"):
        with create_writer(experiment, "linear", "3_epochs_seed_42", root=tmp_path, timestamp=logdir.name) as writer:
            log = log_to(writer)
            for epoch in range(3):
                log(epoch, {"train_loss": 1.0 / (epoch + 1), "train_acc": 0.5, "val_loss": 1.2 / (epoch + 1), "val_acc": 0.4})
    model = nn.Linear(4, 3)
    with create_writer("head_internals", "linear", "lr_0.5", root=tmp_path, timestamp=logdir.name) as writer:
        writer.add_graph(model, torch.randn(2, 4))
        for step in (1, 2):
            writer.add_histogram("head/weight", model.weight, global_step=step)
    out = tmp_path / "images"
    result = subprocess.run([sys.executable, "-m", "course.screenshots", "--logdir", str(logdir), "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("07_tensorboard_scalars.png", "07_tensorboard_histograms.png", "07_tensorboard_graph.png"):
        image = Image.open(out / name).convert("L")
        assert image.size == (1280, 860), name
        low, high = image.getextrema()
        assert high - low > 100, f"{name} looks blank"
