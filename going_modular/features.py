# Written by notebooks/06_pytorch_transfer_learning.ipynb: edit the notebook, not this file.
"""Feature caching for transfer learning: run a frozen backbone once, then train the head on its output.

A frozen backbone in eval mode computes the same features for an image every epoch. Without
random augmentation, those features can be computed once and kept:

    backbone, head = backbone_and_head(model)          # e.g. EfficientNet: features+avgpool+flatten | classifier
    feat_train, feat_test = feature_dataloaders(backbone, train_dataloader, test_dataloader, device)
    engine.train(head, feat_train, feat_test, optimizer, loss_fn, epochs, device)

trains the head exactly as `engine.train(nn.Sequential(FrozenBackbone(backbone), head), ...)` does
on the images (same losses, same order), but each epoch only pays for the head. Pass
`val_dataloader=` to cache a validation split too: then three loaders come back (train, val, test).
"""
from __future__ import annotations

import copy
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


HEAD_NAMES = ("heads", "head", "fc", "classifier")  # where torchvision and timm models keep their head


def _head_path(model: nn.Module) -> str | None:
    """The dotted name of `model`'s head: timm's `get_classifier()`, else the first child in HEAD_NAMES."""
    if callable(getattr(model, "get_classifier", None)):  # timm: the head may sit deeper, e.g. "head.fc"
        classifier = model.get_classifier()
        return next((name for name, module in model.named_modules() if name and module is classifier), None)
    return next((name for name in HEAD_NAMES if isinstance(getattr(model, name, None), nn.Module)), None)


def _without(model: nn.Module, path: str) -> nn.Module:
    """A shallow copy of `model` whose submodule `path` is nn.Identity; every other module is shared."""
    body = copy.copy(model)                   # a new module object with the same attributes...
    body._modules = copy.copy(model._modules)  # ...and its own table of children, so `model` keeps its head
    name, _, rest = path.partition(".")
    body._modules[name] = _without(model._modules[name], rest) if rest else nn.Identity()
    return body


def backbone_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """Split a pretrained classifier where transfer learning cuts it.

    Args:
        model: One of
            - torchvision's EfficientNet layout (`features`, `avgpool`, `classifier`: torchvision's
              EfficientNet or the course's EfficientNet-Lite): cut before `classifier`;
            - a timm-style model (`forward_features`, `forward_head`): cut before its classifier
              (`get_classifier()` where there is one, else the child named in HEAD_NAMES; the course's
              ViT and its stand-in keep it in `heads`);
            - any model whose forward ends in a child named `heads`, `head`, `fc` or `classifier`
              (torchvision's VisionTransformer, ResNet, MobileNet, ...).

    Returns:
        (backbone, head): `head(backbone(x))` equals `model(x)` in eval mode, and the backbone
        returns (B, D) features. Nothing is copied: the backbone is either a Sequential of the model's
        own modules or a shallow copy of the model with the head swapped for nn.Identity, so it
        shares every parameter with `model` except the head's, and `model` itself is unchanged.

    Raises:
        TypeError: `model` has none of these layouts.
    """
    if all(hasattr(model, name) for name in ("features", "avgpool", "classifier")):
        return nn.Sequential(model.features, model.avgpool, nn.Flatten()), model.classifier
    path = _head_path(model)
    if path is None:
        raise TypeError(
            f"backbone_and_head does not know where to cut a {type(model).__name__}: expected an EfficientNet "
            "(.features, .avgpool, .classifier), a timm-style model (.forward_features, .forward_head), or a "
            f"model whose head is a child named one of {HEAD_NAMES}. Build the backbone yourself, e.g. "
            "nn.Sequential(<everything but the head>, nn.Flatten())."
        )
    return _without(model, path), model.get_submodule(path)


CPU_CHUNK = 4  # images per backbone call on a CPU (see `extract_features`)


def extract_features(backbone: nn.Module, dataloader: Iterable, device: torch.device | str, *,
                     amp: str | None = None, chunk: int | None = None) -> TensorDataset:
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
        chunk: Images per backbone call. None: `CPU_CHUNK` on a CPU, the whole batch elsewhere. On a
            CPU, image batches also go in as channels-last. Lesson 06, section 5.4 times both against
            one call on a whole batch of 32 (there, about half the time per image); the features
            agree with that call's to float rounding.

    Returns:
        TensorDataset(features, labels): features float32 (N, D) and labels int64 (N,), on the CPU.

    Raises:
        ValueError: the loader yields no batches, a batch is not (X, y), the backbone's output
            is not (B, D) with B the batch size, or `chunk` is not a positive int or None.
    """
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ValueError(f"chunk={chunk!r} is not a positive int or None. Use e.g. chunk=4, or None for the default.")
    device = torch.device(device)
    on_cpu = device.type == "cpu"
    chunk = chunk or (CPU_CHUNK if on_cpu else None)
    modes = [(module, module.training) for module in backbone.modules()]
    features, labels = [], []
    backbone.eval()
    try:
        with torch.inference_mode(), autocast(device, amp):  # the engine's one AMP switch
            for batch in dataloader:
                if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                    raise ValueError(f"The dataloader yielded a {type(batch).__name__}, expected (X, y) batches.")
                X, y = batch
                X = X.to(device, non_blocking=True)
                if on_cpu and X.ndim == 4:
                    X = X.contiguous(memory_format=torch.channels_last)  # convolutions follow the input's layout
                output = torch.cat([backbone(part) for part in X.split(chunk or len(X))]) if len(X) else backbone(X)
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


def feature_dataloaders(backbone: nn.Module, train_dataloader: Iterable, test_dataloader: Iterable | None,
                        device: torch.device | str, *, batch_size: int = 32, seed: int = 42,
                        val_dataloader: Iterable | None = None) -> tuple[DataLoader, ...]:
    """Extract the features of every split once and serve them as DataLoaders for the head.

    The training images are read in dataset order and their features shuffled like
    `data_setup.create_dataloaders(..., seed=seed)` shuffles images (an `EpochShuffleSampler`:
    the order depends on the seed and the epoch only), so with the same seed and batch size the
    head sees the same batches in the same order as it would on the live frozen backbone.

    Args:
        backbone: Module on `device` that maps images to (B, D) features (see `backbone_and_head`).
        train_dataloader: Training images, without random augmentation.
        test_dataloader: Testing images, or None to leave the test set alone until the very end
            (then a `val_dataloader` is needed).
        device: Where the backbone runs.
        batch_size: Samples per batch of features.
        seed: Seed for the training order.
        val_dataloader: Validation images (e.g. from `create_dataloaders(..., val_fraction=0.2)`), or None.

    Returns:
        (train_features, test_features); with a `val_dataloader` (train_features, val_features,
        test_features), or (train_features, val_features) when `test_dataloader` is None.
        DataLoaders of (features (B, D) float32, labels (B,) int64) on the CPU; the training one
        shuffles each epoch, the others keep their order.

    Raises:
        ValueError: `batch_size` is not a positive int, neither a test nor a validation loader is
            given, or `extract_features` refuses the data.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is not a positive int. Use e.g. batch_size=32.")
    if test_dataloader is None and val_dataloader is None:
        raise ValueError("test_dataloader is None and there is no val_dataloader: pass at least one "
                         "(e.g. val_dataloader= from create_dataloaders(..., val_fraction=0.2)).")
    train_features = extract_features(backbone, _in_order(train_dataloader), device)
    train = DataLoader(train_features, batch_size=batch_size,
                       sampler=EpochShuffleSampler(len(train_features), seed),
                       generator=seeded_generator(seed))  # as create_dataloaders: no draw from the global generator
    others = [extract_features(backbone, loader, device) for loader in (val_dataloader, test_dataloader)
              if loader is not None]
    return (train, *(DataLoader(features, batch_size=batch_size, shuffle=False) for features in others))
