# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Save and load models: bare weights (save_model, the original course's helper) and checkpoints."""
from __future__ import annotations

from pathlib import Path

import torch  # noqa: F401  (tests patch utils.torch.save to interrupt a save)
from torch import nn

from going_modular.atomic import atomic_save  # advanced: never half-written (section 15)
from going_modular.checkpoints import Checkpoint, load_checkpoint, save_checkpoint  # noqa: F401 (re-exported)
from going_modular.distributed import unwrap
from going_modular.runtime import set_seeds  # noqa: F401  (re-exported: the original course had it here)


def save_model(model: nn.Module, target_dir: str | Path, model_name: str) -> Path:
    """Save a model's state_dict to `target_dir/model_name`.

    Args:
        model: The model to save.
        target_dir: Folder to save into (created if needed).
        model_name: File name ending in ".pth" or ".pt", e.g. "05_tinyvgg.pth".

    Returns:
        The path written. Load it with `model.load_state_dict(torch.load(path, weights_only=True))`.
    """
    if not model_name.endswith((".pth", ".pt")):
        raise ValueError(f"model_name={model_name!r} should end with '.pth' or '.pt', e.g. {model_name + '.pth'!r}.")
    path = Path(target_dir) / model_name
    print(f"[INFO] Saving model to: {path}")
    return atomic_save(unwrap(model).state_dict(), path)
