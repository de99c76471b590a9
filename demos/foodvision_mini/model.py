# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""FoodVision Mini's model: an ONNX classifier run by onnxruntime, with its preprocessing in NumPy.

No PyTorch here: the model file made by lesson 09 holds the network, the class names and the
preprocessing (resize, centre crop, mean, std) it was trained with, so this file needs only
onnxruntime, NumPy and Pillow.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps, UnidentifiedImageError

HERE = Path(__file__).resolve().parent
MODEL_FILE = HERE / "foodvision_mini.onnx"
MAX_PIXELS = 40_000_000  # refuse larger images before decoding them (a 10,000 x 10,000 PNG is 100 MP)
MIN_SIDE = 8  # smaller images hold nothing to classify
MAX_ASPECT = 10  # a 20,000 x 10 strip would be resized to 584,000 x 292 pixels (half a gigabyte) before the crop
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
             "nearest": Image.Resampling.NEAREST}


class BadImage(ValueError):
    """The upload is not an image this app can classify; the message says why and what to do."""


def check_size(width: int, height: int, name: str = "The image") -> None:
    """Refuse images too large to decode safely, too small to classify, or too thin to be a photo.

    Raises:
        BadImage: naming the size, the limit and what to do.
    """
    if width * height > MAX_PIXELS:
        raise BadImage(f"{name} is {width:,} x {height:,} pixels ({width * height / 1e6:.0f} MP); this app "
                       f"takes at most {MAX_PIXELS / 1e6:.0f} MP. Downscale it (a 1,000 px photo is plenty).")
    if min(width, height) < MIN_SIDE:
        raise BadImage(f"{name} is only {width} x {height} pixels; upload a photo at least "
                       f"{MIN_SIDE} x {MIN_SIDE} pixels (a few hundred is best).")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise BadImage(f"{name} is {width:,} x {height:,} pixels, a strip rather than a photo (sides more than "
                       f"{MAX_ASPECT}:1). Crop it to the food and upload that.")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: grey, palette, RGBA and CMYK directly; 16-bit and float grey rescaled.

    Pillow's `convert("RGB")` clips 16-bit values at 255, which turns a 16-bit greyscale PNG white.
    """
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        low, high = (0.0, 65535.0) if image.mode.startswith("I;16") else (float(pixels.min()), float(pixels.max()))
        scaled = (pixels - low) * (255.0 / max(high - low, 1e-6))
        image = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8))  # 2-D uint8 -> mode "L"
    return image.convert("RGB")


def load_image(path: str | Path, draft_size: int = 0) -> Image.Image:
    """Open an image file as RGB, refusing what is not an image, broken, too small, too large or too thin.

    Args:
        path: The file.
        draft_size: For JPEGs, let the decoder scale down by 1/2, 1/4 or 1/8 as long as both sides
            stay at least this size (fast, and memory stays bounded for huge photos); 0: full size.

    Raises:
        BadImage: with a message that names the problem and the fix.
    """
    name = Path(path).name
    try:
        image = Image.open(path)  # reads the header only
    except UnidentifiedImageError:
        raise BadImage(f"{name} is not an image file Pillow can read. Upload a JPEG, PNG or WebP photo.") from None
    except OSError as error:
        raise BadImage(f"{name} could not be opened ({error}). Upload the photo again.") from None
    with image:
        check_size(*image.size, name)
        if draft_size and image.format == "JPEG":
            image.draft("RGB", (draft_size, draft_size))  # decode at a reduced scale when it is big enough
        try:
            image = ImageOps.exif_transpose(image)  # phone photos: apply the rotation stored in EXIF
            return to_rgb(image)  # decodes the pixels
        except (OSError, SyntaxError, ValueError) as error:
            raise BadImage(f"{name} is damaged and cannot be decoded ({error}). "
                           "It may be truncated: upload the complete file.") from None


class FoodVisionMini:
    """Load the ONNX model once; `predict(image)` gives the class probabilities and the time taken."""

    def __init__(self, model_file: str | Path = MODEL_FILE, threads: int | None = None):
        model_file = Path(model_file)
        if not model_file.is_file():
            raise FileNotFoundError(
                f"{model_file} is missing. Make it by running lesson 09 (from the repository root: "
                "`python -m course run --only 09`), or copy it here from where you made it.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("FOODVISION_THREADS", "1"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        settings = json.loads(self.session.get_modelmeta().custom_metadata_map["foodvision"])
        self.class_names: list[str] = settings["class_names"]
        self.preprocessing: dict = settings["preprocessing"]
        self.description = f"{settings['model']} ({'int8' if settings.get('int8') else 'float32'})"
        self.mean = np.array(self.preprocessing["mean"], dtype=np.float32).reshape(3, 1, 1)
        self.std = np.array(self.preprocessing["std"], dtype=np.float32).reshape(3, 1, 1)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB PIL image -> (1, 3, crop, crop) float32, as torchvision's ImageClassification preset does."""
        resize, crop = self.preprocessing["resize"], self.preprocessing["crop"]
        width, height = image.size
        if width <= height:  # the shorter side becomes `resize`, the aspect ratio is kept
            size = (resize, int(resize * height / width))
        else:
            size = (int(resize * width / height), resize)
        image = image.resize(size, _RESAMPLE[self.preprocessing["interpolation"]])
        left, top = int(round((size[0] - crop) / 2.0)), int(round((size[1] - crop) / 2.0))
        image = image.crop((left, top, left + crop, top + crop))
        pixels = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0  # (3, crop, crop) in [0, 1]
        return ((pixels - self.mean) / self.std)[None]  # (1, 3, crop, crop)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Softmax of the model's logits for a preprocessed batch: (B, classes)."""
        logits = self.session.run(None, {"image": batch})[0]
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, image: str | Path | Image.Image) -> tuple[dict[str, float], float]:
        """Classify one image (a file path or a PIL image).

        Returns:
            ({class name: probability}, seconds taken from the file to the probabilities).

        Raises:
            BadImage: the file is not a usable image (see `load_image`).
        """
        start = time.perf_counter()
        if not isinstance(image, Image.Image):
            image = load_image(image, draft_size=2 * self.preprocessing["resize"])
        else:
            check_size(*image.size)
            image = to_rgb(image)
        probs = self.probabilities(self.preprocess(image))[0]
        seconds = time.perf_counter() - start
        return {name: float(p) for name, p in zip(self.class_names, probs)}, seconds
