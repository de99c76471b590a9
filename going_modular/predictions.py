# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Predict the class of one image file, avoiding the three big errors: dtype, shape and device."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch
from torch import nn
from torchvision import transforms
from torchvision.transforms.functional import to_tensor

from going_modular.custom_data import load_image  # lesson 04's loader: RGB, clear errors


def predict_image(model: nn.Module, image_path: str | Path, class_names: Sequence[str],
                  transform: Callable | None = None, device: torch.device | str | None = None) -> tuple[str, float]:
    """Return (label, probability) of the model's prediction for one image file.

    Args:
        model: A trained classifier with one output per class.
        image_path: A JPEG/PNG file.
        class_names: Label of each output, in order.
        transform: Turns the PIL image into what the model expects; defaults to
            Resize to the model's `image_size` (64 if it has none) and ToTensor.
        device: Where to compute (the model is moved there); None uses the device the model is on.
    """
    if transform is None:
        size = getattr(model, "image_size", 64)
        transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()])
    image = transform(load_image(image_path))
    if not isinstance(image, torch.Tensor):
        image = to_tensor(image)  # PIL -> float tensor in [0, 1]
    if not image.is_floating_point():
        image = image.float() / 255  # error 1, dtype: uint8 pixels -> floats in [0, 1]
    if image.ndim == 3:
        image = image.unsqueeze(0)  # error 2, shape: (C, H, W) -> a batch of one (1, C, H, W)
    if device is None:
        device = next(model.parameters()).device
    else:
        model.to(device)
    image = image.to(device)  # error 3, device: the image goes where the model is

    was_training = model.training
    model.eval()
    with torch.inference_mode():
        probs = torch.softmax(model(image), dim=1)  # (1, classes)
    model.train(was_training)
    prob, label = probs.max(dim=1)
    return class_names[int(label)], float(prob)


def pred_and_plot_image(model: nn.Module, class_names: Sequence[str], image_path: str | Path,
                        image_size: tuple[int, int] | None = None, transform: Callable | None = None,
                        device: torch.device | str | None = None) -> tuple[str, float]:
    """Predict one image file with `predict_image`, and show the image titled with the prediction.

    The argument order is the original course's, so its calls run unchanged.

    Args:
        model: A trained classifier with one output per class.
        class_names: Label of each output, in order.
        image_path: A JPEG/PNG file.
        image_size: (height, width) to resize to when `transform` is None; None uses the
            model's `image_size` (64 if it has none).
        transform: Turns the PIL image into what the model expects (overrides `image_size`).
        device: Where to compute; None uses the device the model is on.

    Returns:
        (label, probability).
    """
    if transform is None and image_size is not None:
        transform = transforms.Compose([transforms.Resize(image_size), transforms.ToTensor()])
    label, prob = predict_image(model, image_path, class_names, transform=transform, device=device)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(load_image(image_path))
    ax.set_title(f"Pred: {label} | Prob: {prob:.3f}")
    ax.axis("off")
    return label, prob
