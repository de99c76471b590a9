# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""FoodVision Mini: a Gradio app that says whether a photo shows pizza, steak or sushi.

    python app.py                       # serves on http://127.0.0.1:7860 (PORT or GRADIO_SERVER_PORT to change)

On a Hugging Face Space the same file runs as it is (the Space sets the port).
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import gradio as gr

from model import HERE, BadImage, FoodVisionMini

WORKERS = int(os.environ.get("FOODVISION_WORKERS", "16"))  # requests prepared at the same time


def make_predict(model: FoodVisionMini):
    """The function the app calls: an uploaded file's path -> (top-3 probabilities, seconds taken)."""

    def predict(image_path: str | None) -> tuple[dict[str, float], float]:
        if image_path is None:
            raise gr.Error("No image yet: upload a photo of pizza, steak or sushi, or click an example.",
                           print_exception=False)
        try:
            probabilities, seconds = model.predict(image_path)
        except BadImage as error:  # shown to the person who uploaded; not a fault of the server, so not logged
            raise gr.Error(str(error), print_exception=False) from None
        return probabilities, round(seconds, 4)

    return predict


def as_uploaded(component: gr.Image) -> gr.Image:
    """Hand the function the uploaded file itself, bytes untouched, without Gradio opening it.

    gr.Image would open every upload with Pillow first and, with its default image_mode="RGB",
    save an 8-bit RGB copy (a 16-bit PNG turns white); with image_mode=None it still opens the
    header, where Pillow refuses very large images before model.py can say why. model.py does
    every check itself, so the path of the upload is all it needs.
    """
    preprocess = component.preprocess

    def untouched(payload):
        if payload is None or payload.path is None:
            return preprocess(payload)
        if (payload.url or "").startswith("data:"):  # an image sent inline as base64: its bytes, as sent
            data = base64.b64decode(payload.url.split(",", 1)[1])
            path = Path(component.GRADIO_CACHE) / hashlib.sha256(data).hexdigest()[:20] / "upload"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return str(path)
        return payload.path

    component.preprocess = untouched
    return component


def build_demo(model: FoodVisionMini | None = None, workers: int = WORKERS) -> gr.Blocks:
    """The app's page: an image in, the top 3 classes with probabilities and the prediction time out."""
    model = model or FoodVisionMini()
    examples = sorted(str(p) for p in (HERE / "examples").glob("*.jpg"))
    with gr.Blocks(title="FoodVision Mini") as demo:
        gr.Markdown(f"# FoodVision Mini\nIs it {', '.join(model.class_names[:-1])} or {model.class_names[-1]}? "
                    f"Upload a photo or click an example. Model: {model.description}, run by onnxruntime.")
        with gr.Row():
            with gr.Column():
                image = as_uploaded(gr.Image(type="filepath", image_mode=None, label="Photo", sources=["upload"]))
                button = gr.Button("Predict", variant="primary")
            with gr.Column():
                label = gr.Label(num_top_classes=3, label="Predictions")
                seconds = gr.Number(label="Prediction time (s)", precision=4)
        if examples:
            gr.Examples(examples=examples, inputs=image)
        button.click(make_predict(model), inputs=image, outputs=[label, seconds], api_name="predict",
                     concurrency_limit=workers)
    return demo


def server_port(default: int = 7860) -> int:
    """The port to serve on: $PORT, else $GRADIO_SERVER_PORT, else `default`."""
    raw = os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"PORT={raw!r} is not a port number (1-65535); set PORT=7860 or another free port.")
    return int(raw)


if __name__ == "__main__":
    build_demo().queue(max_size=64).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), server_port=server_port(),
        max_file_size="25mb", show_error=False)
