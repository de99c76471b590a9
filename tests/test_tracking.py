"""Tests for going_modular/tracking.py: real event files, read back by TensorBoard's own reader and server."""
from __future__ import annotations

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

import psutil
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

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
    assert set(scalars) == set(TAGS.values()) == {"Loss/train", "Loss/test", "Accuracy/train", "Accuracy/test"}
    for key, tag in TAGS.items():
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
        with pytest.raises(KeyError, match=r"test_loss, test_acc.*on_epoch_end"):
            log_to(writer)(0, {"train_loss": 1.0, "train_acc": 0.5})


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
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        assert set(tags[run]) == set(TAGS.values())
        for key, tag in TAGS.items():
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            rows = get_json(f"{base}/data/plugin/scalars/scalars?{query}")  # [[wall_time, step, value], ...]
            assert [step for _, step, _ in rows] == list(range(1, EPOCHS + 1)), tag
            assert [value for _, _, value in rows] == pytest.approx(results[key], rel=1e-6, abs=1e-7), tag
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
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
