# Written by notebooks/02_pytorch_classification.ipynb: edit the notebook, not this file.
"""Classification helpers from lesson 02: an accuracy function and a decision-boundary plot.

    from going_modular.classification import accuracy_fn, plot_decision_boundary

    accuracy_fn(y_test, y_pred)                        # percent, e.g. 97.5
    plot_decision_boundary(model, X_test, y_test)      # Axes with the regions the model predicts

Both work for binary models (one output logit per sample: sigmoid, then round) and
multi-class models (one logit per class: softmax, then argmax).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from torch import nn


def accuracy_fn(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Percentage of predicted labels that equal the true labels.

    Args:
        y_true: true labels, shape (N,).
        y_pred: predicted labels (not logits or probabilities), the same shape as `y_true`.

    Returns:
        The accuracy in percent, from 0.0 to 100.0.

    Raises:
        ValueError: if the shapes differ (a (N, 1) tensor against a (N,) tensor would
            otherwise broadcast to an (N, N) comparison), or if there are no labels.
    """
    y_true, y_pred = torch.as_tensor(y_true), torch.as_tensor(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has shape {tuple(y_true.shape)} but y_pred has shape {tuple(y_pred.shape)}; "
            "they must match. Compare predictions with the labels of the same split, and "
            "squeeze a (N, 1) prediction to (N,) first, e.g. y_pred.squeeze(dim=1)."
        )
    if y_true.numel() == 0:
        raise ValueError("y_true and y_pred are empty; accuracy needs at least one label.")
    correct = torch.eq(y_true, y_pred.to(y_true.device)).sum().item()
    return correct / y_true.numel() * 100


def plot_decision_boundary(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    ax: Axes | None = None,
    resolution: int = 201,
    title: str = "Decision boundary",
) -> Axes:
    """Colour the plane by the class `model` predicts there, and scatter the samples on top.

    The model is evaluated under `torch.inference_mode()` on the device its parameters
    live on (the grid is moved there, not the model), and its train/eval mode is restored
    afterwards, so the helper can be called in the middle of training.

    Args:
        model: a model taking (N, 2) inputs and returning (N, 1) logits (binary: sigmoid,
            then round) or (N, C) logits with C >= 2 (multi-class: softmax, then argmax).
        X: samples, shape (N, 2): a tensor on any device, or an array.
        y: labels, shape (N,).
        ax: Axes to draw on; a new figure is made when it is None.
        resolution: grid points along each axis (resolution**2 predictions).
        title: the Axes title.

    Returns:
        The Axes drawn on.

    Raises:
        ValueError: if `X` is not (N, 2), `y` does not have N labels, or `resolution` < 2.
    """
    X, y = torch.as_tensor(X).detach().cpu(), torch.as_tensor(y).detach().cpu()
    if X.ndim != 2 or X.shape[1] != 2 or X.shape[0] == 0:
        raise ValueError(
            f"X has shape {tuple(X.shape)}; expected (N, 2): a decision boundary is drawn "
            "in a plane, so pass at least one sample with two features."
        )
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"y has shape {tuple(y.shape)}; expected ({X.shape[0]},), one label per row of X."
        )
    if resolution < 2:
        raise ValueError(f"resolution={resolution}; use at least 2 grid points per axis (e.g. 201).")

    # A grid that covers the data with a 10 % margin on each side (1 when all X are equal).
    span = X.max(dim=0).values - X.min(dim=0).values
    margin = torch.where(span > 0, span * 0.1, torch.ones_like(span))
    low, high = X.min(dim=0).values - margin, X.max(dim=0).values + margin
    xs = torch.linspace(low[0].item(), high[0].item(), resolution)
    ys = torch.linspace(low[1].item(), high[1].item(), resolution)
    xx, yy = torch.meshgrid(xs, ys, indexing="xy")  # (R, R) each
    grid = torch.stack([xx.ravel(), yy.ravel()], dim=1)  # (R*R, 2)

    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(grid.to(device=device, dtype=dtype)).float().cpu()
    finally:
        model.train(was_training)

    if logits.ndim == 1 or logits.shape[1] == 1:
        regions = torch.round(torch.sigmoid(logits.reshape(-1)))
        num_classes = 2
    else:
        regions = torch.softmax(logits, dim=1).argmax(dim=1)
        num_classes = logits.shape[1]
    num_classes = max(num_classes, int(y.max().item()) + 1)
    regions = regions.reshape(xx.shape).numpy()

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    # One colour per class; pcolormesh (unlike contourf) never blends two classes into a third.
    cmap = plt.get_cmap("RdYlBu", num_classes)
    ax.pcolormesh(xx.numpy(), yy.numpy(), regions, cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5,
                  shading="nearest", alpha=0.6)
    points = ax.scatter(X[:, 0].numpy(), X[:, 1].numpy(), c=y.numpy(), cmap=cmap, vmin=-0.5,
                        vmax=num_classes - 0.5, s=18, edgecolors="k", linewidths=0.4)
    ax.legend(*points.legend_elements(), title="true class", loc="upper right",
              fontsize="small", framealpha=0.8)
    ax.set_xlim(low[0].item(), high[0].item())
    ax.set_ylim(low[1].item(), high[1].item())
    ax.set_title(title)
    ax.set_xlabel("feature 0 (X[:, 0])")
    ax.set_ylabel("feature 1 (X[:, 1])")
    return ax
