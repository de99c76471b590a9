# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Checkpoints: weights plus everything needed to rebuild the model and continue the run, in one file."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from going_modular.atomic import atomic_save  # advanced: never half-written (section 15)
from going_modular.distributed import unwrap  # a DistributedDataParallel saves like a plain model
from going_modular.model_builder import MODELS

_PLAIN = (str, int, float, bool, type(None))


@dataclasses.dataclass
class Checkpoint:
    """What `load_checkpoint` returns."""

    model: nn.Module
    config: dict
    class_names: list[str]
    epoch: int
    optimizer_state: dict | None
    history: dict


def save_checkpoint(path: str | Path, model: nn.Module, config: Any, class_names: Sequence[str], *,
                    epoch: int = 0, optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Save weights, config, class names, epoch (and optimizer state) in one file, atomically.

    Args:
        path: Where to write, e.g. "models/tinyvgg.pth".
        model: The model (a DistributedDataParallel is unwrapped).
        config: A dataclass or dict of plain values (str, int, float, bool, None) that built the
            run; to rebuild the model it needs "model" (a MODELS name) and that builder's arguments.
        class_names: The class names, in label order.
        epoch: Number of epochs trained so far.
        optimizer: Its state is saved too, so a run can be resumed.
    """
    config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in config.items()}
    for key, value in config.items():
        if not isinstance(value, _PLAIN):
            raise TypeError(f"config[{key!r}] is a {type(value).__name__}; use str, int, float, bool or None.")
    model = unwrap(model)
    checkpoint = {
        "arch": type(model).__name__,
        "state_dict": model.state_dict(),
        "config": config,
        "class_names": list(class_names),
        "epoch": epoch,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "history": dict(getattr(model, "history", {})),
    }
    path = Path(path)
    atomic_save(checkpoint, path)
    return path


def load_checkpoint(path: str | Path, model: nn.Module | None = None, *,
                    map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by `save_checkpoint` (with torch.load(weights_only=True)).

    Args:
        path: The checkpoint file.
        model: A model to load the weights into; None builds one from MODELS and the saved config.
        map_location: Where to put the loaded tensors.

    Returns:
        A Checkpoint with the model (weights loaded), config, class names, epoch, optimizer state, history.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {str(path)!r}. Train one (python -m going_modular.train "
                                "--output PATH) or check the path.")
    saved = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise ValueError(f"{str(path)!r} holds a bare state_dict, not a checkpoint; load it with "
                         "model.load_state_dict(torch.load(path, weights_only=True)).")
    config, class_names = saved["config"], saved["class_names"]
    if model is None:
        if config.get("model") not in MODELS:
            raise ValueError(f"{str(path)!r} was saved from model {config.get('model')!r}, which is not in "
                             f"MODELS ({', '.join(MODELS)}); build the model yourself and pass model=.")
        sizes = {k: config[k] for k in ("hidden_units", "image_size") if k in config}
        model = MODELS[config["model"]](len(class_names), **sizes)
    _check_fits(path, saved, unwrap(model))
    unwrap(model).load_state_dict(saved["state_dict"])
    if isinstance(getattr(unwrap(model), "history", None), dict):
        unwrap(model).history = {k: list(v) for k, v in saved["history"].items()}
    return Checkpoint(model, config, class_names, saved["epoch"], saved["optimizer"], saved["history"])


def _check_fits(path: Path, saved: dict, model: nn.Module) -> None:
    """Refuse, with the fix, a checkpoint of another architecture or another number of classes."""
    arch, class_names = type(model).__name__, saved["class_names"]
    if saved["arch"] != arch:
        raise ValueError(f"{str(path)!r} holds a {saved['arch']}, but the model is a {arch}; "
                         f"build a {saved['arch']} or pass model=None to build it from the checkpoint.")
    own = model.state_dict()
    if set(own) != set(saved["state_dict"]):
        diff = sorted(set(own) ^ set(saved["state_dict"]))[:3]
        raise ValueError(f"{str(path)!r} does not fit this {arch}: the layers differ ({', '.join(diff)}, ...); "
                         "build the model with the checkpoint's config.")
    for key, tensor in saved["state_dict"].items():
        theirs, ours = tuple(tensor.shape), tuple(own[key].shape)
        if theirs == ours:
            continue
        if theirs[:1] == (len(class_names),) != ours[:1]:  # the output layer
            raise ValueError(f"{str(path)!r} is for {len(class_names)} classes ({', '.join(class_names)}), "
                             f"but the model outputs {ours[0]}; build it with {len(class_names)} outputs.")
        raise ValueError(f"{str(path)!r} does not fit this {arch}: {key} is {theirs} in the checkpoint and "
                         f"{ours} in the model; build the model with the checkpoint's config {saved['config']}.")
