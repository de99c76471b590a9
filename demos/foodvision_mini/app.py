# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""FoodVision Mini: a Gradio app that says whether a photo shows pizza, steak or sushi.

    python app.py                       # serves on http://127.0.0.1:7860 (PORT or GRADIO_SERVER_PORT to change)

On a Hugging Face Space the same file runs as it is (the Space sets the port).
"""
from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
from PIL import UnidentifiedImageError

from model import HERE, BadImage, FoodVisionMini



def make_predict(model: FoodVisionMini):
    """The function the app calls: an uploaded file's path -> (top-3 probabilities, seconds taken)."""

    def predict(image_path: str | None) -> tuple[dict[str, float], float]:
        if image_path is None:
            raise gr.Error("No image yet: upload a photo of pizza, steak or sushi, or click an example.")
        try:
            probabilities, seconds = model.predict(image_path)
        except BadImage as error:
            raise gr.Error(str(error)) from None
        return probabilities, round(seconds, 4)

    return predict


def _readable_uploads_only(component: gr.Image) -> gr.Image:
    """Turn Gradio's own error for an unreadable upload into a message for the person uploading.

    gr.Image opens every upload with Pillow (the header only, with type="filepath") before our
    function runs; a file that is not an image would otherwise fail there with a bare "Error".
    """
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            name = getattr(payload, "orig_name", None) or "The upload"
            raise gr.Error(f"{name} is not an image file Pillow can read ({type(error).__name__}). "
                           "Upload a JPEG, PNG or WebP photo.") from None

    component.preprocess = checked
    return component


def build_demo(model: FoodVisionMini | None = None) -> gr.Blocks:
    """The app's page: an image in, the top 3 classes with probabilities and the prediction time out."""
    model = model or FoodVisionMini()
    examples = sorted(str(p) for p in (HERE / "examples").glob("*.jpg"))
    with gr.Blocks(title="FoodVision Mini") as demo:
        gr.Markdown(f"# FoodVision Mini\nIs it {', '.join(model.class_names[:-1])} or {model.class_names[-1]}? "
                    f"Upload a photo or click an example. Model: {model.description}, run by onnxruntime.")
        with gr.Row():
            with gr.Column():
                image = _readable_uploads_only(gr.Image(type="filepath", label="Photo", sources=["upload"]))
                button = gr.Button("Predict", variant="primary")
            with gr.Column():
                label = gr.Label(num_top_classes=3, label="Predictions")
                seconds = gr.Number(label="Prediction time (s)", precision=4)
        if examples:
            gr.Examples(examples=examples, inputs=image)
        button.click(make_predict(model), inputs=image, outputs=[label, seconds], api_name="predict",
                     concurrency_limit=4)
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
