# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Classify image files with a model saved by going_modular.train or utils.save_model.

    python -m going_modular.predict --checkpoint models/tinyvgg.pth pizza.jpg sushi.jpg
    python -m going_modular.predict --checkpoint weights.pth --model tinyvgg --class-names pizza,steak,sushi pizza.jpg
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from going_modular.model_builder import MODELS
from going_modular.predictions import predict_image
from going_modular.runtime import DEVICE_CHOICES, get_device
from going_modular.utils import load_checkpoint


def build_parser() -> argparse.ArgumentParser:
    """The command line: --checkpoint, --device, the model flags for bare weights, and image files."""
    p = argparse.ArgumentParser(prog="python -m going_modular.predict", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="a .pth file: a checkpoint from going_modular.train, or weights from utils.save_model")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="auto takes a GPU when there is one")
    bare = p.add_argument_group("bare weights (utils.save_model)", "a state_dict does not say which model or "
                                "classes it is for: name them (a checkpoint from train.py needs none of these)")
    bare.add_argument("--model", choices=sorted(MODELS), help="the architecture the weights belong to")
    bare.add_argument("--class-names", help="the class names in label order, comma-separated, e.g. pizza,steak,sushi")
    bare.add_argument("--hidden-units", type=int, default=10, help="as when the model was built")
    bare.add_argument("--image-size", type=int, default=64, help="as when the model was built")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG)")
    return p


def load_for_prediction(args: argparse.Namespace, device: torch.device) -> tuple[nn.Module, list[str]]:
    """The model and its class names, from a checkpoint or from bare weights plus the model flags."""
    path = args.checkpoint
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a corrupt or foreign file fails deep in the unpickler, with many error types
        raise ValueError(f"could not read {path} as a PyTorch file ({type(err).__name__}: {err}); "
                         "check that it was saved with torch.save") from err
    if isinstance(saved, dict) and "state_dict" in saved:  # a checkpoint: it names its model and classes
        if args.model or args.class_names:
            raise ValueError(f"{path} is a checkpoint that names its own model and classes; "
                             "leave out --model and --class-names")
        checkpoint = load_checkpoint(path, map_location=device)
        return checkpoint.model, checkpoint.class_names
    if not (isinstance(saved, dict) and all(isinstance(v, torch.Tensor) for v in saved.values())):
        raise ValueError(f"{path} holds neither a checkpoint nor a state_dict; save one with "
                         "utils.save_checkpoint or utils.save_model")
    if args.model is None or args.class_names is None:
        raise ValueError(f"{path} holds bare weights (a state_dict, as utils.save_model writes), which do not "
                         "say which model or classes they are for; name them, e.g. --model tinyvgg "
                         "--class-names pizza,steak,sushi (and --hidden-units / --image-size if the model was "
                         "built with other values than 10 / 64)")
    class_names = [name.strip() for name in args.class_names.split(",")]
    if "" in class_names or len(set(class_names)) != len(class_names):
        raise ValueError(f"--class-names {args.class_names!r}: give each class once, comma-separated, "
                         "e.g. pizza,steak,sushi")
    model = MODELS[args.model](len(class_names), hidden_units=args.hidden_units, image_size=args.image_size)
    _check_weights_fit(path, saved, model, args, len(class_names))
    model.load_state_dict(saved)
    return model.to(device), class_names


def _check_weights_fit(path: str, weights: dict, model: nn.Module, args: argparse.Namespace, classes: int) -> None:
    """Refuse, naming the flag to change, weights that do not fit the model the flags build."""
    own = model.state_dict()
    if set(own) != set(weights):
        diff = ", ".join(sorted(set(own) ^ set(weights))[:3])
        raise ValueError(f"{path} does not hold {args.model} weights: the layers differ ({diff}, ...); check --model")
    last = list(own)[-1]  # the output layer's bias: one number per class
    if weights[last].shape[:1] != own[last].shape[:1]:
        raise ValueError(f"{path} is a model with {weights[last].shape[0]} outputs, but --class-names names "
                         f"{classes} classes; name one class per output, in label order")
    for key, tensor in weights.items():
        if tensor.shape != own[key].shape:
            raise ValueError(f"{path} does not fit --model {args.model} --hidden-units {args.hidden_units} "
                             f"--image-size {args.image_size}: {key} is {tuple(tensor.shape)} in the file and "
                             f"{tuple(own[key].shape)} in the model; pass the values the model was built with")


def main(argv: list[str] | None = None) -> int:
    """Print "<image>: <label> (<probability>)" for each image; bad input exits with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        parser.error(f"--checkpoint {args.checkpoint}: no such file; train one with python -m going_modular.train")
    missing = [image for image in args.images if not Path(image).is_file()]
    if missing:
        parser.error(f"no such image file: {', '.join(missing)}")
    try:
        device = get_device(args.device)
        model, class_names = load_for_prediction(args, device)
        for image in args.images:
            label, prob = predict_image(model, image, class_names, device=device)
            print(f"{image}: {label} ({prob:.3f})")
    except (OSError, ValueError, RuntimeError, TypeError) as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
