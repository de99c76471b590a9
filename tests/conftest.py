"""Shared fixtures: tiny ImageFolder trees of random images, and a loopback HTTPS server."""
from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("pizza", "steak", "sushi")


def make_image_folder(root: Path, per_class: int, *, classes=CLASSES, size: int = 20, seed: int = 0) -> Path:
    """Write `per_class` random images per class under root/<class>/, alternating PNG and JPEG."""
    rng = np.random.default_rng(seed)
    for label in classes:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{label}_{i}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture(scope="session")
def make_folder():
    """The `make_image_folder` function, for tests that need a tree of their own shape."""
    return make_image_folder


@pytest.fixture
def food_dirs(tmp_path) -> tuple[Path, Path]:
    """(train_dir, test_dir): 3 classes, 3 train and 2 test images each, 20x20 pixels.

    9 training images in batches of 4 leave a last batch of 1: the case where
    batch-averaged metrics go wrong.
    """
    train_dir = make_image_folder(tmp_path / "food" / "train", per_class=3, seed=1)
    test_dir = make_image_folder(tmp_path / "food" / "test", per_class=2, seed=2)
    return train_dir, test_dir


@pytest.fixture
def image_file(tmp_path) -> Path:
    """One 24x24 random JPEG."""
    path = tmp_path / "photo.jpg"
    pixels = np.random.default_rng(3).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# ----------------------------------------------------------------------------- loopback HTTPS


class LoopbackHandler(BaseHTTPRequestHandler):
    """Serves `routes[path]`: bytes (200, application/octet-stream) or a tuple
    (status, headers, body, bytes_actually_sent) for error pages and cut-off downloads."""

    routes: dict = {}

    def do_GET(self):
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        if isinstance(route, bytes):
            route = (200, {"Content-Type": "application/octet-stream"}, route, len(route))
        status, headers, body, sent = route
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[:sent])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="session")
def https_server(tmp_path_factory):
    """(base_url, cert_file, client_context): an HTTPS server on 127.0.0.1 in a background thread,
    with a self-signed certificate made by the openssl command-line tool. No test leaves loopback."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the openssl command is needed to make a test certificate: install it (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), LoopbackHandler)
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    yield f"https://127.0.0.1:{httpd.server_address[1]}", folder / "cert.pem", client_context
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def routes():
    """The loopback server's routes, empty at the start and the end of each test."""
    LoopbackHandler.routes = {}
    yield LoopbackHandler.routes
    LoopbackHandler.routes = {}
