# Written by notebooks/06_pytorch_transfer_learning.ipynb: edit the notebook, not this file.
"""Feature caching for transfer learning: run a frozen backbone once, then train the head on its output.

A frozen backbone in eval mode computes the same features for an image every epoch. Without
random augmentation, those features can be computed once and kept:

    backbone, head = backbone_and_head(model)          # EfficientNet: features+avgpool+flatten | classifier
    feat_train, feat_test = feature_dataloaders(backbone, train_dataloader, test_dataloader, device)
    engine.train(head, feat_train, feat_test, optimizer, loss_fn, epochs, device)

trains the head exactly as `engine.train(nn.Sequential(FrozenBackbone(backbone), head), ...)` does
on the images (same losses, same order), but each epoch only pays for the head.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from going_modular.mixed_precision import autocast
from going_modular.runtime import seeded_generator
from going_modular.samplers import EpochShuffleSampler


class FrozenBackbone(nn.Module):
    """A backbone that stays frozen: no gradients, and eval mode even inside `model.train()`.

    `requires_grad_(False)` alone does not freeze BatchNorm: in train mode it normalises with
    each batch's statistics and keeps updating its running averages. Wrapped in this class the
    backbone computes what it computes at inference, whatever mode its parent is put in.
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "FrozenBackbone":
        """Ignore `mode`: a frozen backbone always runs in eval mode."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.backbone(x)


class _ViTBackbone(nn.Module):
    """torchvision's VisionTransformer up to (not including) `heads`: the class token's features."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.vit._process_input(x)                                  # (B, N, D) patch embeddings
        class_token = self.vit.class_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = self.vit.encoder(torch.cat([class_token, x], dim=1))        # (B, 1 + N, D)
        return x[:, 0]                                                  # (B, D)


def backbone_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Split a torchvision-layout classifier where transfer learning cuts it.

    Args:
        model: An EfficientNet (`features`, `avgpool`, `classifier`: torchvision's or the
            course's EfficientNet-Lite) or a torchvision VisionTransformer (`conv_proj`,
            `encoder`, `heads`).

    Returns:
        (backbone, head): `head(backbone(x))` equals `model(x)`; the backbone returns (B, D)
        features. Both share their parameters with `model` (nothing is copied).

    Raises:
        TypeError: `model` has neither layout.
    """
    if all(hasattr(model, name) for name in ("features", "avgpool", "classifier")):
        return nn.Sequential(model.features, model.avgpool, nn.Flatten()), model.classifier
    if all(hasattr(model, name) for name in ("conv_proj", "class_token", "encoder", "heads")):
        return _ViTBackbone(model), model.heads
    raise TypeError(
        f"backbone_and_head does not know where to cut a {type(model).__name__}: expected an EfficientNet "
        "(.features, .avgpool, .classifier) or a torchvision ViT (.conv_proj, .encoder, .heads). "
        "Build the backbone yourself, e.g. nn.Sequential(<everything but the head>, nn.Flatten())."
    )


def extract_features(backbone: nn.Module, dataloader: Iterable, device: torch.device | str, *,
                     amp: str | None = None) -> TensorDataset:
    """Run `backbone` once over `dataloader` and keep what it returns.

    The backbone runs in eval mode under `torch.inference_mode()`; afterwards every module is put
    back in the mode it was in. The features come back in the order the loader yields them, so
    pass a loader that does not shuffle if the order matters. Random augmentation in the loader
    would be frozen into one draw: cache only data prepared without it.

    Args:
        backbone: Module already on `device` that maps a batch of inputs to (B, D) features.
        dataloader: Yields (X, y) batches.
        device: Where to compute.
        amp: None (float32), "bf16" or "fp16" mixed precision, as in `engine.train`; the stored
            features are float32 either way.

    Returns:
        TensorDataset(features, labels): features float32 (N, D) and labels int64 (N,), on the CPU.

    Raises:
        ValueError: the loader yields no batches, a batch is not (X, y), or the backbone's output
            is not (B, D) with B the batch size.
    """
    device = torch.device(device)
    modes = [(module, module.training) for module in backbone.modules()]
    features, labels = [], []
    backbone.eval()
    try:
        with torch.inference_mode(), autocast(device, amp):  # the engine's one AMP switch
            for batch in dataloader:
                if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                    raise ValueError(f"The dataloader yielded a {type(batch).__name__}, expected (X, y) batches.")
                X, y = batch
                output = backbone(X.to(device, non_blocking=True))
                if output.ndim != 2 or output.shape[0] != len(X):
                    raise ValueError(
                        f"The backbone turned a batch of shape {tuple(X.shape)} into {tuple(output.shape)}, "
                        f"expected ({len(X)}, D) features. End the backbone with nn.Flatten() "
                        "(for an EfficientNet: nn.Sequential(model.features, model.avgpool, nn.Flatten()))."
                    )
                features.append(output.float().cpu())  # (B, D); a GPU-CPU copy per batch
                labels.append(torch.as_tensor(y, dtype=torch.int64).cpu())
    finally:
        for module, was_training in modes:
            module.train(was_training)
    if not features:
        raise ValueError("The dataloader yielded no batches; check that its dataset is not empty.")
    return TensorDataset(torch.cat(features), torch.cat(labels))


def _in_order(dataloader: Iterable) -> Iterable:
    """The same data, batches and workers as `dataloader`, but in dataset order (no shuffling)."""
    if not isinstance(dataloader, DataLoader):
        return dataloader
    return DataLoader(dataloader.dataset, batch_size=dataloader.batch_size, shuffle=False,
                      num_workers=dataloader.num_workers, collate_fn=dataloader.collate_fn,
                      pin_memory=dataloader.pin_memory)


def feature_dataloaders(backbone: nn.Module, train_dataloader: Iterable, test_dataloader: Iterable,
                        device: torch.device | str, *, batch_size: int = 32,
                        seed: int = 42) -> tuple[DataLoader, DataLoader]:
    """Extract the features of both splits once and serve them as DataLoaders for the head.

    The training images are read in dataset order and their features shuffled like
    `data_setup.create_dataloaders(..., seed=seed)` shuffles images (an `EpochShuffleSampler`:
    the order depends on the seed and the epoch only), so with the same seed and batch size the
    head sees the same batches in the same order as it would on the live frozen backbone.

    Args:
        backbone: Module on `device` that maps images to (B, D) features (see `backbone_and_head`).
        train_dataloader: Training images, without random augmentation.
        test_dataloader: Testing images.
        device: Where the backbone runs.
        batch_size: Samples per batch of features.
        seed: Seed for the training order.

    Returns:
        (train_features, test_features): DataLoaders of (features (B, D) float32, labels (B,) int64)
        on the CPU; the training one shuffles each epoch, the testing one keeps its order.

    Raises:
        ValueError: `batch_size` is not a positive int, or `extract_features` refuses the data.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not a positive int. Use e.g. batch_size=32.")
    train_features = extract_features(backbone, _in_order(train_dataloader), device)
    test_features = extract_features(backbone, test_dataloader, device)
    train = DataLoader(train_features, batch_size=batch_size,
                       sampler=EpochShuffleSampler(len(train_features), seed),
                       generator=seeded_generator(seed))  # as create_dataloaders: no draw from the global generator
    test = DataLoader(test_features, batch_size=batch_size, shuffle=False)
    return train, test
