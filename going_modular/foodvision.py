# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""FoodVision Mini's model: a frozen pretrained backbone with a new 3-class head, trained on cached features.

    trained = train_feature_extractor(get_weights("efficientnet_b2"), "data/pizza_steak_sushi_20_percent")
    trained.model            # nn.Sequential(backbone, head), on the CPU, in eval mode
    trained.results          # engine.train's history: train, val and test loss/accuracy per epoch
    trained.settings         # the preprocessing as plain JSON (what the app needs to prepare a photo)

The training folder is split into training and validation images (stratified, seeded); choose
between models on the validation numbers and look at the test set once, at the end.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from going_modular import data_setup, engine
from going_modular.features import backbone_and_head, feature_dataloaders
from going_modular.runtime import set_seeds


def preprocessing_of(transform: nn.Module) -> dict:
    """The settings of a torchvision `ImageClassification` preset, as plain JSON for the app."""
    missing = [name for name in ("crop_size", "resize_size", "mean", "std", "interpolation") if not hasattr(transform, name)]
    if missing:
        raise TypeError(f"{type(transform).__name__} has no {', '.join(missing)}: pass weights.transforms() "
                        "(a torchvision ImageClassification preset).")
    return {"resize": int(transform.resize_size[0]), "crop": int(transform.crop_size[0]),
            "mean": [float(v) for v in transform.mean], "std": [float(v) for v in transform.std],
            "interpolation": transform.interpolation.value}


def preset(settings: dict) -> nn.Module:
    """A torchvision ImageClassification preset from `preprocessing_of`'s settings."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    return ImageClassification(crop_size=settings["crop"], resize_size=settings["resize"], mean=settings["mean"],
                               std=settings["std"], interpolation=InterpolationMode(settings["interpolation"]))


def with_crop(settings: dict, crop: int) -> dict:
    """The same preprocessing at another crop size, the resize scaled with it (260/292 -> 224/252)."""
    return {**settings, "crop": crop, "resize": round(settings["resize"] * crop / settings["crop"])}


@dataclass
class Trained:
    """What `train_feature_extractor` returns: the model and everything needed to measure and deploy it."""

    model: nn.Sequential
    results: dict[str, list[float]]
    settings: dict
    class_names: list[str]
    train_dataloader: DataLoader
    val_dataloader: DataLoader
    test_dataloader: DataLoader
    val_features: DataLoader

    @property
    def transform(self) -> nn.Module:
        return preset(self.settings)


def train_feature_extractor(weights, image_folder: str | Path, *, epochs: int = 10, seed: int = 42,
                            device: torch.device | str = "cpu", image_size: int | None = None,
                            val_fraction: float = 0.2, batch_size: int = 32) -> Trained:
    """A frozen backbone from `weights` with a new head (Dropout, Linear(features, classes)) trained on its features.

    Args:
        weights: What `course.weights.get_weights(...)` returns (`.build()`, `.transforms()`).
        image_folder: A folder with train/ and test/ ImageFolders.
        epochs: Epochs of Adam (lr 1e-3) on the cached features.
        seed: Seed for the validation split, the head's initial weights and the shuffling.
        device: Where the backbone and the head run while training; the model comes back on the CPU.
        image_size: Crop size for the images (a smaller one is faster); None keeps the preset's crop.
        val_fraction: Share of each class of train/ held out for validation.
        batch_size: Images per batch.
    """
    settings = preprocessing_of(weights.transforms())
    if image_size is not None:
        settings = with_crop(settings, image_size)
    image_folder = Path(image_folder)
    train_dl, val_dl, test_dl, class_names = data_setup.create_dataloaders(
        image_folder / "train", image_folder / "test", preset(settings), batch_size=batch_size, num_workers=0,
        seed=seed, val_fraction=val_fraction)
    set_seeds(seed)
    backbone, old_head = backbone_and_head(weights.build())  # the backbone leaves the old head out
    in_features = [m for m in old_head.modules() if isinstance(m, nn.Linear)][-1].in_features
    head = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(in_features, len(class_names)))
    # The backbone runs once over the training and validation images; the test images are left alone.
    feat_train, feat_val = feature_dataloaders(backbone.to(device), train_dl, val_dl, device, seed=seed)
    results = engine.train(head.to(device), feat_train, None, torch.optim.Adam(head.parameters(), lr=1e-3),
                           nn.CrossEntropyLoss(), epochs, device, progress=False, verbose=False,
                           val_dataloader=feat_val)
    model = nn.Sequential(backbone, head).cpu().eval()  # deployment runs on the CPU
    return Trained(model, results, settings, class_names, train_dl, val_dl, test_dl, feat_val)
