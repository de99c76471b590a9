# Written by notebooks/05_going_modular.ipynb: edit the notebook, not this file.
"""Classify image files with a checkpoint from going_modular.train.

    python -m going_modular.predict --checkpoint models/tinyvgg.pth pizza.jpg sushi.jpg
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from going_modular.predictions import predict_image
from going_modular.runtime import DEVICE_CHOICES, get_device
from going_modular.utils import load_checkpoint


def build_parser() -> argparse.ArgumentParser:
    """The command line: --checkpoint, --device and one or more image files."""
    p = argparse.ArgumentParser(prog="python -m going_modular.predict", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a .pth file written by going_modular.train")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="auto takes a GPU when there is one")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG)")
    return p


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
        checkpoint = load_checkpoint(args.checkpoint, map_location=device)
        for image in args.images:
            label, prob = predict_image(checkpoint.model, image, checkpoint.class_names, device=device)
            print(f"{image}: {label} ({prob:.3f})")
    except (OSError, ValueError, RuntimeError) as err:
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
