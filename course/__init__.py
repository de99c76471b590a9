"""Course infrastructure: the one call every lesson makes after its parameters cell.

This is not lesson material (that lives in `going_modular`, written by the notebooks);
it is the plumbing that makes a lesson re-runnable by a learner in JupyterLab, by an
instructor with papermill, and by CI with nbval:

    import course
    run = course.setup(device=DEVICE, data=DATA, seed=SEED, packages=["torchvision"])
    device = run.device

A parameter can be given two ways. Papermill rewrites the notebook's `parameters` cell;
nbval cannot, so every parameter can also be set with a `COURSE_<NAME>` environment
variable. When the variable is set, it wins, and the printout says where each value came from.
"""
from __future__ import annotations

import importlib
import os
import platform
from dataclasses import dataclass, field

import torch

from going_modular.runtime import DEVICE_CHOICES, get_device, set_seeds

DATA_CHOICES = ("offline", "real")


@dataclass(frozen=True)
class RunSettings:
    """What `setup` resolved: hand `device` to models and tensors, `data` to data getters."""

    device: torch.device
    data: str
    seed: int
    sources: dict = field(default_factory=dict, compare=False)


def resolve(name: str, notebook_value, choices=None, cast=str):
    """Return (value, source) for parameter `name`, with COURSE_<NAME> overriding the notebook."""
    env_name = f"COURSE_{name.upper()}"
    raw = os.environ.get(env_name)
    if raw is not None and raw.strip() != "":
        value, source = raw.strip(), env_name
        try:
            value = cast(value)
        except ValueError:
            raise ValueError(
                f"{env_name}={raw!r} is not a valid {cast.__name__}. "
                f"Set it to a {cast.__name__} (e.g. {env_name}={notebook_value}) or unset it."
            ) from None
    else:
        value, source = notebook_value, "parameters cell"
    if choices is not None and value not in choices:
        where = f"{env_name}={value!r}" if source == env_name else f"{name.upper()} = {value!r}"
        raise ValueError(
            f"{where} is not one of {', '.join(choices)}. "
            f"Use one of those, e.g. {name.upper()} = {choices[0]!r}."
        )
    return value, source


def setup(
    *,
    device: str = "auto",
    data: str = "offline",
    seed: int = 42,
    packages: tuple | list = (),
) -> RunSettings:
    """Resolve the lesson's parameters, seed every generator, pick the device, print versions.

    Args:
        device: "auto", "cpu" or "cuda" (COURSE_DEVICE overrides it).
        data: "offline" for the embedded stand-ins, "real" for the original datasets and
            weights from the local cache or a download (COURSE_DATA overrides it).
        seed: seed for Python, NumPy and PyTorch (COURSE_SEED overrides it).
        packages: extra import names whose versions this lesson depends on.
    """
    device_choice, device_src = resolve("device", device, DEVICE_CHOICES)
    data_choice, data_src = resolve("data", data, DATA_CHOICES)
    seed_value, seed_src = resolve("seed", seed, cast=int)

    set_seeds(seed_value)
    resolved = get_device(device_choice)

    versions = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    for name in packages:
        module = importlib.import_module(name)
        versions.append(f"{name} {getattr(module, '__version__', '?')}")
    print(" | ".join(versions))
    detail = f"{torch.cuda.get_device_name(resolved)}" if resolved.type == "cuda" else "CPU"
    print(f"device: {resolved} ({detail}; {device_choice!r} from {device_src})")
    print(f"data:   {data_choice} (from {data_src})")
    print(f"seed:   {seed_value} (from {seed_src})")
    return RunSettings(
        device=resolved,
        data=data_choice,
        seed=seed_value,
        sources={"device": device_src, "data": data_src, "seed": seed_src},
    )
