# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""FoodVision Mini's model: an ONNX classifier run by onnxruntime, with its preprocessing in NumPy.

No PyTorch here: the model file made by lesson 09 holds the network, the class names and the
preprocessing (resize, centre crop, mean, std) it was trained with, so this file needs only
onnxruntime, NumPy and Pillow.

    model = FoodVisionMini()                       # foodvision_mini.onnx beside this file
    probabilities, seconds = model.predict("photo.jpg")
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import threading
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

    The size is checked from the file's header, before the pixels are decoded.

    Args:
        path: The file, exactly as it was uploaded.
        draft_size: For JPEGs, let the decoder scale down by 1/2, 1/4 or 1/8 as long as both sides
            stay at least this size (fast, and memory stays bounded for huge photos); 0: full size.

    Raises:
        BadImage: with a message that names the problem and the fix.
    """
    name = Path(path).name
    try:
        image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError:  # Pillow's own guard, far above MAX_PIXELS
        raise BadImage(f"{name} has more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP, too many to open safely; "
                       f"this app takes at most {MAX_PIXELS / 1e6:.0f} MP. Downscale it (a 1,000 px photo is plenty)."
                       ) from None
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


class Batcher:
    """Answers the requests that wait for the model together, in one call (dynamic batching).

    Each request thread prepares its own image, then hands it over and waits. One thread runs the
    model: it takes every image waiting (up to `max_batch`) and runs them as one batch, so while it
    works, the next requests gather. A lone request runs at once, as a batch of one.
    """

    def __init__(self, run, max_batch: int):
        self.run, self.max_batch, self.waiting = run, max_batch, queue.Queue()
        threading.Thread(target=self._serve, name="foodvision-batcher", daemon=True).start()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(1, 3, H, W) in, (1, classes) out, computed in a batch with whatever else was waiting."""
        answer = concurrent.futures.Future()
        self.waiting.put((image, answer))
        return answer.result()

    def _serve(self) -> None:
        while True:
            batch = [self.waiting.get()]  # blocks until a request arrives
            while len(batch) < self.max_batch and not self.waiting.empty():
                batch.append(self.waiting.get_nowait())
            try:
                results = self.run(np.concatenate([image for image, _ in batch]))  # (B, classes)
                for (_, answer), result in zip(batch, results):
                    answer.set_result(result[None])
            except Exception as error:  # noqa: BLE001 - hand the model's error to every waiting request
                for _, answer in batch:
                    answer.set_exception(error)


class FoodVisionMini:
    """Load the ONNX model once; `predict(image)` gives the class probabilities and the time taken.

    Args:
        model_file: The .onnx file made by lesson 09.
        threads: onnxruntime's intra-op threads (threads sharing one model call); default
            $FOODVISION_THREADS, else the number of CPU cores.
        batch: The most images one model call takes from requests that arrive together; 1 runs each
            request on its own. Default $FOODVISION_BATCH, else 16.
    """

    def __init__(self, model_file: str | Path = MODEL_FILE, threads: int | None = None, batch: int | None = None):
        model_file = Path(model_file)
        if not model_file.is_file():
            raise FileNotFoundError(
                f"{model_file} is missing. Make it by running lesson 09 (from the repository root: "
                "`python -m course run --only 09`), or copy it here from where you made it.")
        self.model_file = model_file
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("FOODVISION_THREADS", os.cpu_count() or 1))
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: a spinning thread burns a core that another request needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.threads = options.intra_op_num_threads
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        settings = json.loads(self.session.get_modelmeta().custom_metadata_map["foodvision"])
        self.class_names: list[str] = settings["class_names"]
        self.preprocessing: dict = settings["preprocessing"]
        self.description = f"{settings['model']} ({'int8' if settings.get('int8') else 'float32'})"
        mean, std = (np.array(self.preprocessing[key], dtype=np.float32) for key in ("mean", "std"))
        self.scale, self.shift = 1.0 / (255.0 * std), mean / std  # (pixel / 255 - mean) / std = pixel * scale - shift
        self.batch = batch or int(os.environ.get("FOODVISION_BATCH", "16"))
        self._batcher = Batcher(self.probabilities, self.batch) if self.batch > 1 else None

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
        pixels = np.asarray(image, dtype=np.float32) * self.scale - self.shift  # (crop, crop, 3), normalised
        return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])  # (1, 3, crop, crop)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Softmax of the model's logits for a preprocessed batch: (B, classes)."""
        logits = self.session.run(None, {"image": batch})[0]
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, image: str | Path | Image.Image) -> tuple[dict[str, float], float]:
        """Classify one image (a file path or a PIL image).

        Safe to call from several threads at once: with batching on, their model calls are combined.

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
        pixels = self.preprocess(image)
        probs = (self._batcher(pixels) if self._batcher else self.probabilities(pixels))[0]
        seconds = time.perf_counter() - start
        return {name: float(p) for name, p in zip(self.class_names, probs)}, seconds
