# Written by notebooks/01_pytorch_workflow.ipynb: edit the notebook, not this file.
"""Pictures the course draws again and again: data with predictions, and loss curves.

Both functions accept PyTorch tensors on any device (they are detached and copied to the
CPU here, because matplotlib reads CPU memory), NumPy arrays or plain lists, and both
return the matplotlib Figure: end a notebook cell with `plt.show()`, or call
`fig.savefig("name.png")` in a script.
"""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

LOSS_KEYS = ("train_loss", "test_loss")
ACCURACY_KEYS = ("train_acc", "test_acc")


def _as_points(values, name: str) -> np.ndarray:
    """One number per sample as a 1-D float array; a tensor may live on any device."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().float()  # matplotlib reads CPU memory only
    array = np.asarray(values, dtype=float)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{name} has shape {tuple(array.shape)}, but plot_predictions draws one input "
            "feature against one target. Pass shape (N,) or (N, 1)."
        )
    return array


def plot_predictions(train_data, train_labels, test_data, test_labels, predictions=None) -> Figure:
    """Scatter training and testing data, and a model's predictions for the test inputs.

    Args:
        train_data: training inputs, shape (N,) or (N, 1): a tensor on any device, an array or a list.
        train_labels: training targets, one per training input.
        test_data: testing inputs, shape (M,) or (M, 1).
        test_labels: testing targets, one per testing input.
        predictions: optional model outputs for `test_data`, one per testing input.

    Returns:
        The Figure (one Axes, titled, labelled, with a legend).

    Raises:
        ValueError: if an argument holds more than one number per sample, or if inputs,
            targets and predictions differ in length.
    """
    given = {
        "train_data": train_data,
        "train_labels": train_labels,
        "test_data": test_data,
        "test_labels": test_labels,
        "predictions": predictions,
    }
    points = {name: _as_points(values, name) for name, values in given.items() if values is not None}
    for inputs, outputs in (("train_data", "train_labels"), ("test_data", "test_labels"), ("test_data", "predictions")):
        if outputs in points and len(points[outputs]) != len(points[inputs]):
            raise ValueError(
                f"{outputs} has {len(points[outputs])} values but {inputs} has {len(points[inputs])}. "
                f"Pass one value in {outputs} for each sample in {inputs}."
            )

    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    ax.scatter(points["train_data"], points["train_labels"], s=18, c="tab:blue", label="Training data")
    ax.scatter(points["test_data"], points["test_labels"], s=18, c="tab:green", label="Testing data")
    if "predictions" in points:
        ax.scatter(points["test_data"], points["predictions"], s=18, c="tab:red", label="Predictions")
        ax.set_title("Training data, testing data and predictions")
    else:
        ax.set_title("Training and testing data")
    ax.set_xlabel("input X")
    ax.set_ylabel("target y")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _as_floats(values, key: str) -> list[float]:
    """A list of numbers or of 0-d tensors (any device, with or without grad) as floats."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().reshape(-1).tolist()
    try:
        return [float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float(v) for v in values]
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"results[{key!r}] must be a list of numbers or of 0-d tensors (one per epoch); "
            f"converting it failed with {type(err).__name__}: {err}"
        ) from None


def plot_loss_curves(results: Mapping[str, list[float]]) -> Figure:
    """Draw loss curves, and accuracy curves when `results` has them, against the epoch.

    Args:
        results: a dict with "train_loss" and "test_loss" (one value per recorded epoch),
            optionally "train_acc" and "test_acc", and optionally "epochs" (the x values;
            1, 2, ..., N when missing). Values may be lists of floats or of 0-d tensors,
            e.g. the dict that `engine.train` returns.

    Returns:
        The Figure: a loss panel, plus an accuracy panel if any accuracy key is present.

    Raises:
        TypeError: if `results` is not a dict, or a value is not a list of numbers.
        ValueError: if "train_loss" or "test_loss" is missing, a list is empty, or the
            lists (including "epochs") differ in length.
    """
    if not isinstance(results, Mapping):
        raise TypeError(
            f"plot_loss_curves expects a dict of lists, got {type(results).__name__}. "
            "Pass e.g. {'train_loss': [...], 'test_loss': [...]}."
        )
    missing = [key for key in LOSS_KEYS if key not in results]
    if missing:
        raise ValueError(
            f"results is missing {' and '.join(repr(key) for key in missing)}; got keys {list(results)}. "
            "Pass a dict with 'train_loss' and 'test_loss' lists (optionally 'train_acc', "
            "'test_acc' and 'epochs')."
        )
    curves = {key: _as_floats(results[key], key) for key in LOSS_KEYS + ACCURACY_KEYS if key in results}
    if "epochs" in results:
        epochs = _as_floats(results["epochs"], "epochs")
    else:
        epochs = list(range(1, len(curves["train_loss"]) + 1))
    lengths = {key: len(values) for key, values in curves.items()}
    lengths["epochs"] = len(epochs)
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{key}: {n}" for key, n in lengths.items())
        raise ValueError(
            f"the lists in results differ in length ({listed}). Record every metric once per "
            "epoch (and give 'epochs' the same length) so the curves line up."
        )
    if not epochs:
        raise ValueError("results['train_loss'] is empty: train for at least one epoch before plotting.")

    panels = [("Loss", LOSS_KEYS)]
    if any(key in curves for key in ACCURACY_KEYS):
        panels.append(("Accuracy", ACCURACY_KEYS))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), layout="constrained", squeeze=False)
    marker = "o" if len(epochs) <= 30 else None  # dots help when there are only a few epochs
    for ax, (metric, keys) in zip(axes[0], panels):
        for key, colour in zip(keys, ("tab:blue", "tab:orange")):
            if key in curves:
                ax.plot(epochs, curves[key], marker=marker, color=colour, label=key.split("_")[0])
        ax.set_title(f"{metric} per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.lower())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    return fig
