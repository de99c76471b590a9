# Written by notebooks/00_pytorch_fundamentals.ipynb: edit the notebook, not this file.
"""Where code runs and how it repeats: one device helper and one seed helper for the course."""
import random

import numpy as np
import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def get_device(preference: str = "auto") -> torch.device:
    """Turn "auto", "cpu" or "cuda" into a torch.device.

    "auto" picks CUDA when a GPU is visible and the CPU otherwise. Asking for "cuda"
    on a machine without one is an error rather than a silent fall-back to the CPU.

    Args:
        preference: one of DEVICE_CHOICES.

    Returns:
        The device to hand to `tensor.to(...)` and `model.to(...)`.

    Raises:
        ValueError: `preference` is not one of DEVICE_CHOICES.
        RuntimeError: "cuda" was asked for, but PyTorch sees no GPU.
    """
    if preference not in DEVICE_CHOICES:
        raise ValueError(
            f"device={preference!r} is not one of {', '.join(DEVICE_CHOICES)}. "
            "Use 'auto' to take a GPU when there is one, or name 'cpu' or 'cuda'."
        )
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device='cuda' was asked for, but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}). Use device='auto' or 'cpu' here, "
            "or run on a machine with an NVIDIA GPU and a CUDA build of PyTorch."
        )
    return torch.device(preference)


def set_seeds(seed: int = 42) -> None:
    """Seed Python's, NumPy's and PyTorch's random number generators (CPU and every GPU).

    Args:
        seed: the seed; the same seed gives the same random numbers on the same machine.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def seeded_generator(seed: int = 42) -> torch.Generator:
    """A generator to hand to a DataLoader, so its shuffling repeats run after run.

    Args:
        seed: the seed for this generator alone (the global generators are left alone).

    Returns:
        A CPU `torch.Generator` seeded with `seed`.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
