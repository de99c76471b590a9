# Written by notebooks/07_pytorch_experiment_tracking.ipynb: edit the notebook, not this file.
"""Track experiments with TensorBoard: one folder per run, a logger for engine.train, a reader.

    with create_writer("data_10_percent", "effnet_lite0", "5_epochs", root="runs") as writer:
        engine.train(model, train_dl, None, optimizer, loss_fn, 5, device, val_dataloader=val_dl,
                     on_epoch_end=log_to(writer))
    scalars = read_scalars(writer.log_dir)       # {"Loss/train": [(1, 0.97), (2, 0.71), ...], ...}

Each run gets its own folder, runs/<timestamp>/<experiment>/<model>[/<extra>], and TensorBoard
shows every folder under `--logdir` as one run. `log_to(writer)` writes, after each epoch, the
scalars named in TAGS that engine.train measured, at step = the epoch number as engine.train
prints it (1, 2, ...):

    Loss/train   Loss/val   Loss/test   Accuracy/train   Accuracy/val   Accuracy/test   LearningRate

(Loss/val and Accuracy/val when training has a val_dataloader, the test pair when it has a
test_dataloader, LearningRate when it has a scheduler.)

The writer is closed once, after training (the `with` block does it). The original course
closed it inside the epoch loop; a SummaryWriter then quietly opens a new event file for every
later epoch. `log_to` refuses to write to a closed writer instead.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Callable

from torch.utils.tensorboard import SummaryWriter

TAGS = {"train_loss": "Loss/train", "val_loss": "Loss/val", "test_loss": "Loss/test",
        "train_acc": "Accuracy/train", "val_acc": "Accuracy/val", "test_acc": "Accuracy/test",
        "lr": "LearningRate"}
TIMESTAMP_FORMAT = "%Y-%m-%d_%H-%M-%S"
_SEPARATORS = tuple({"/", "\\", os.sep, os.altsep} - {None})


def _check_name(value: object, what: str) -> str:
    """Refuse, naming the value and the fix, a name that is not one plain folder name."""
    example = {"experiment_name": "data_10_percent", "model_name": "effnet_lite0", "extra": "5_epochs",
               "timestamp": "2026-12-01_14-30-00"}[what]
    if not isinstance(value, str):
        raise TypeError(f"{what}={value!r} is a {type(value).__name__}; pass a str such as {example!r}.")
    if not value.strip() or value.strip() != value:
        raise ValueError(f"{what}={value!r} is empty or starts/ends with spaces; pass a name such as {example!r}.")
    if any(sep in value for sep in _SEPARATORS) or value in (".", ".."):
        raise ValueError(f"{what}={value!r} is not a single folder name (it holds a path separator or is "
                         f"'.'/'..'); pass one name such as {example!r} and put folders in root= instead.")
    return value


def create_writer(experiment_name: str, model_name: str, extra: str | None = None, *,
                  root: str | Path = "runs", timestamp: str | None = None) -> SummaryWriter:
    """A SummaryWriter logging to root/<timestamp>/<experiment_name>/<model_name>[/<extra>].

    Args:
        experiment_name: What the experiment varies, e.g. "data_10_percent".
        model_name: The model, e.g. "effnet_lite0".
        extra: Anything else that tells runs apart, e.g. "5_epochs"; None adds no folder.
        root: The folder that holds all runs (give it to `tensorboard --logdir`).
        timestamp: The top folder; None uses the time now as YYYY-MM-DD_HH-MM-SS. Pass the same
            string to keep the runs of one grid together.

    Returns:
        A SummaryWriter; use it in a `with` block so it is closed after training.

    Raises:
        TypeError, ValueError: a name is not a plain, non-empty folder name.
        FileExistsError: the run folder already holds event files (a run would be mixed into another).
    """
    stamp = datetime.now().strftime(TIMESTAMP_FORMAT) if timestamp is None else _check_name(timestamp, "timestamp")
    parts = [stamp, _check_name(experiment_name, "experiment_name"), _check_name(model_name, "model_name")]
    if extra is not None:
        parts.append(_check_name(extra, "extra"))
    log_dir = Path(root).joinpath(*parts)
    if log_dir.is_dir() and any(log_dir.glob("events.out.tfevents.*")):
        raise FileExistsError(f"{log_dir} already holds event files of another run; pass another extra= or "
                              "timestamp= (or timestamp=None for the time now), or delete that folder.")
    print(f"[INFO] Created SummaryWriter, saving to: {log_dir}")
    return SummaryWriter(log_dir=str(log_dir))


def log_to(writer: SummaryWriter) -> Callable[[int, dict[str, float]], None]:
    """The `on_epoch_end` hook for engine.train that writes the metrics it gets to `writer`, tagged by TAGS.

    Args:
        writer: An open SummaryWriter (e.g. from `create_writer`).

    Returns:
        A function `(epoch, metrics)`: epoch is engine.train's 0-based index, logged at step
        epoch + 1; metrics holds "train_loss" and "train_acc", and "val_loss"/"val_acc",
        "test_loss"/"test_acc" or both (and "lr" with a scheduler). Keys not in TAGS are not logged.
    """
    def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        if getattr(writer, "all_writers", ()) is None:  # SummaryWriter.close() sets it to None
            raise RuntimeError(f"The SummaryWriter for {writer.log_dir} was closed before epoch {epoch + 1}; "
                               "close it after training (`with create_writer(...) as writer:` does that).")
        evaluated = any({f"{split}_loss", f"{split}_acc"} <= set(metrics) for split in ("val", "test"))
        if not ({"train_loss", "train_acc"} <= set(metrics) and evaluated):
            raise KeyError(f"metrics has {', '.join(metrics) or 'nothing'}; it needs train_loss and train_acc, "
                           "and val_loss/val_acc or test_loss/test_acc: pass the dict engine.train gives its "
                           "on_epoch_end hook.")
        for key, tag in TAGS.items():
            if key in metrics:
                writer.add_scalar(tag, metrics[key], global_step=epoch + 1)
        writer.flush()  # so a running `tensorboard` shows each epoch as soon as it ends
    return on_epoch_end


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under `root` that holds event files, i.e. what TensorBoard lists as runs, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No folder at {str(root)!r}; pass the root= you gave create_writer.")
    return sorted({path.parent for path in root.rglob("events.out.tfevents.*")})


def read_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read a run's scalars back from its event files, with TensorBoard's own reader.

    Args:
        run_dir: A run's folder (e.g. `writer.log_dir`), holding one or more event files.

    Returns:
        {tag: [(step, value), ...]} in the order written, e.g. {"Loss/test": [(1, 0.52), ...]}.
        Values come back as float32, as the event file stores them.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not any(run_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"No event files in {str(run_dir)!r}; pass a run folder (writer.log_dir, "
                                "or one of find_runs(root)).")
    accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})  # 0: keep every value
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()[SCALARS]}
