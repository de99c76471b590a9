# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""Lesson 09's recipe in one call: the FoodVision Mini model file the app serves.

    build_foodvision_mini(get_weights("efficientnet_b2"), "data/pizza_steak_sushi_20_percent",
                          "demos/foodvision_mini/foodvision_mini.onnx")

It chains the lesson's steps: `foodvision.train_feature_extractor` (frozen backbone, new head),
`onnx_export.export_onnx` (one file with the class names and preprocessing inside) and
`quantize.quantize_int8` (static int8, calibrated on training images). For a fresh clone or a
test that needs the app's model file without running the lesson.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from going_modular.foodvision import train_feature_extractor
from going_modular.onnx_export import export_onnx
from going_modular.quantize import calibration_batches, quantize_int8


def build_foodvision_mini(weights, image_folder: str | Path, output: str | Path, *, epochs: int = 10,
                          seed: int = 42, quantize: bool = True, image_size: int | None = None,
                          device: torch.device | str = "cpu") -> Path:
    """Train FoodVision Mini and write it as one ONNX file (static int8 unless `quantize=False`).

    Args:
        weights: What `course.weights.get_weights(...)` returns (`.build()`, `.transforms()`, `.name`, `.source`).
        image_folder: A folder with train/ and test/ ImageFolders (e.g. `course.data.food_images(...)`).
        output: The .onnx file to write.
        epochs, seed, image_size, device: As `foodvision.train_feature_extractor`.
        quantize: Write the static-int8 model (calibrated on 32 training images) instead of float32.

    Returns:
        The path written.
    """
    trained = train_feature_extractor(weights, image_folder, epochs=epochs, seed=seed, device=device,
                                      image_size=image_size)
    metadata = {"class_names": trained.class_names, "preprocessing": trained.settings, "model": weights.name,
                "weights": weights.source, "int8": False}
    output = Path(output)
    if not quantize:
        return export_onnx(trained.model, output, image_size=trained.settings["crop"], metadata=metadata)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(trained.model, Path(tmp) / "fp32.onnx", image_size=trained.settings["crop"],
                           metadata=metadata)
        return quantize_int8(fp32, output, calibration_batches(trained.train_dataloader))
