"""Unit tests for going_modular/custom_data.py (written by notebooks/04_pytorch_custom_datasets.ipynb).

torchvision's ImageFolder is the oracle: on the same folder, ImageFolderCustom must find the
same classes, the same files in the same order, with the same labels and the same pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets, transforms

from going_modular.custom_data import IMG_EXTENSIONS, ImageFolderCustom, find_classes, load_image


def save_image(path: Path, seed: int, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> Path:
    """A small random image at `path`; the format comes from the file ending."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (size[1], size[0], channels) if channels else (size[1], size[0])
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path)  # PIL picks JPEG or PNG from the file ending
    return path


@pytest.fixture
def tree(tmp_path) -> Path:
    """A small, awkward ImageFolder: names that sort differently from creation order, mixed
    extensions and case, a nested subfolder, a greyscale and an RGBA image, and files to skip."""
    root = tmp_path / "food"
    layout = {
        "sushi": ["b.jpg", "a.png", "C.JPG"],
        "pizza": ["z.jpeg", "m.jpg", "nested/k.png", "nested/deeper/a.jpg", "y.jpg"],
        "Steak": ["1.png", "10.png", "2.png"],  # capital S sorts before lower-case letters
    }
    seed = 0
    for label, names in layout.items():
        for name in names:
            save_image(root / label / name, seed)
            seed += 1
    save_image(root / "pizza" / "grey.png", 99, mode="L")
    save_image(root / "sushi" / "alpha.png", 98, mode="RGBA")
    (root / "pizza" / "notes.txt").write_text("not an image")  # skipped: not an image ending
    (root / "sushi" / "README").write_text("no ending at all")  # skipped too
    return root


TO_TENSOR = transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()])


def test_extensions_match_torchvision():
    assert IMG_EXTENSIONS == datasets.folder.IMG_EXTENSIONS


def test_same_classes_and_samples_as_imagefolder(tree):
    ours, theirs = ImageFolderCustom(tree), datasets.ImageFolder(tree)
    assert ours.classes == theirs.classes == ["Steak", "pizza", "sushi"]
    assert ours.class_to_idx == theirs.class_to_idx == {"Steak": 0, "pizza": 1, "sushi": 2}
    assert len(ours) == len(theirs) == 13
    assert [(str(path), label) for path, label in zip(ours.paths, ours.targets)] == theirs.samples
    assert ours.targets == theirs.targets


def test_sample_order_is_sorted_folder_by_folder(tree):
    ours = ImageFolderCustom(tree)
    names = [path.relative_to(tree).as_posix() for path in ours.paths]
    assert names[:3] == ["Steak/1.png", "Steak/10.png", "Steak/2.png"]  # string order, not numeric
    assert names[3:9] == ["pizza/grey.png", "pizza/m.jpg", "pizza/y.jpg", "pizza/z.jpeg",
                          "pizza/nested/k.png", "pizza/nested/deeper/a.jpg"]
    assert names[9:] == ["sushi/C.JPG", "sushi/a.png", "sushi/alpha.png", "sushi/b.jpg"]


def test_items_equal_imagefolder_items_with_transform(tree):
    ours = ImageFolderCustom(tree, transform=TO_TENSOR)
    theirs = datasets.ImageFolder(tree, transform=TO_TENSOR)
    for index in range(len(theirs)):
        (x_ours, y_ours), (x_theirs, y_theirs) = ours[index], theirs[index]
        assert x_ours.shape == (3, 8, 8) and x_ours.dtype == torch.float32
        assert torch.equal(x_ours, x_theirs), f"pixels differ at index {index}: {ours.paths[index]}"
        assert y_ours == y_theirs and isinstance(y_ours, int)


def test_without_transform_items_are_rgb_pil_images(tree):
    ours = ImageFolderCustom(tree)
    grey_index = [path.name for path in ours.paths].index("grey.png")
    image, label = ours[grey_index]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (12, 10)
    assert label == ours.class_to_idx["pizza"]


def test_transform_is_applied(tree):
    calls = []

    def transform(image):
        calls.append(image.size)
        return "transformed"

    image, label = ImageFolderCustom(tree, transform=transform)[0]
    assert image == "transformed" and calls == [(12, 10)] and label == 0


def test_works_with_a_dataloader(tree):
    loader = torch.utils.data.DataLoader(ImageFolderCustom(tree, transform=TO_TENSOR), batch_size=5)
    shapes = [tuple(X.shape) for X, _ in loader]
    assert shapes == [(5, 3, 8, 8), (5, 3, 8, 8), (3, 3, 8, 8)]
    labels = torch.cat([y for _, y in loader])
    assert labels.tolist() == datasets.ImageFolder(tree).targets


def test_find_classes_matches_torchvision(tree):
    assert find_classes(tree) == datasets.folder.find_classes(tree)
    assert find_classes(str(tree)) == (["Steak", "pizza", "sushi"], {"Steak": 0, "pizza": 1, "sushi": 2})


def test_find_classes_missing_folder(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match=r"No folder at '.*no_such_folder'.*<class_name>"):
        find_classes(missing)
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        ImageFolderCustom(missing)


def test_find_classes_folder_without_class_subfolders(tmp_path):
    flat = tmp_path / "flat"
    save_image(flat / "a.jpg", 1)  # images straight in the folder, no class subfolders
    with pytest.raises(ValueError, match=r"'.*flat' has no class subfolders.*<class_name>"):
        find_classes(flat)
    with pytest.raises(ValueError, match="has no class subfolders"):
        ImageFolderCustom(flat)


def test_find_classes_on_a_file(tmp_path):
    file = save_image(tmp_path / "a.jpg", 1)
    with pytest.raises(NotADirectoryError, match=r"a\.jpg' is a file"):
        find_classes(file)


def test_empty_class_folder_is_an_error_like_imagefolder(tree):
    (tree / "ramen").mkdir()
    with pytest.raises(FileNotFoundError, match=r"'.*ramen' holds no images"):
        ImageFolderCustom(tree)
    with pytest.raises(FileNotFoundError):  # the oracle refuses it as well
        datasets.ImageFolder(tree)


def test_load_image_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.jpg"):
        load_image(tmp_path / "nothing.jpg")


@pytest.mark.parametrize(
    "name, content",
    [
        ("garbage.jpg", b"\x00\x01 definitely not a JPEG" * 10),
        ("notes.jpg", b"A text file that was renamed to .jpg\n"),
    ],
)
def test_load_image_non_image_names_the_path(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"Could not read '.*{name}' as an image"):
        load_image(path)


def test_truncated_jpeg_names_the_path_and_fails_in_getitem(tmp_path):
    good = save_image(tmp_path / "food" / "pizza" / "good.jpg", 1, size=(64, 64))
    data = good.read_bytes()
    broken = tmp_path / "food" / "pizza" / "broken.jpg"
    broken.write_bytes(data[: len(data) // 2])  # the header survives, half the pixels do not
    with pytest.raises(ValueError, match=r"Could not read '.*broken\.jpg' as an image"):
        load_image(broken)
    dataset = ImageFolderCustom(tmp_path / "food")
    assert [path.name for path in dataset.paths] == ["broken.jpg", "good.jpg"]
    assert dataset[1][0].size == (64, 64)  # the good file still loads
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        dataset[0]


def test_load_image_converts_to_rgb(tmp_path):
    rgba = save_image(tmp_path / "a.png", 3, mode="RGBA")
    image = load_image(rgba)
    assert image.mode == "RGB" and image.size == (12, 10)
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(rgba).convert("RGB")))
