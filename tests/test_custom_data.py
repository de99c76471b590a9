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

from going_modular.custom_data import IMG_EXTENSIONS, ImageFolderCustom, find_classes, load_image, train_val_split


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


# --------------------------------------------------------------------------- train_val_split
TARGETS = [0] * 75 + [1] * 75 + [2] * 75  # the 10 % food split's training folder: 75 per class


def test_split_is_a_partition_sorted_and_stratified():
    train, val = train_val_split(TARGETS, val_fraction=0.2, seed=42)
    assert sorted(train + val) == list(range(len(TARGETS)))  # every index exactly once
    assert train == sorted(train) and val == sorted(val)
    assert [sum(TARGETS[i] == c for i in val) for c in range(3)] == [15, 15, 15]  # 20 % of each class


def test_split_is_seeded_and_independent_of_global_random_state():
    first = train_val_split(TARGETS, 0.2, seed=7)
    torch.manual_seed(0)
    torch.rand(100)  # moving the global generator must not move the split
    assert train_val_split(TARGETS, 0.2, seed=7) == first
    assert train_val_split(TARGETS, 0.2, seed=8) != first


def test_split_matches_a_small_reimplementation():
    """The lesson's few-line split_by_class (section 5.2) picks the same images."""
    generator = torch.Generator().manual_seed(3)
    train, val = [], []
    targets = [2, 0, 1, 0, 2, 1, 0, 1, 2, 0, 0, 1] * 5
    for label in sorted(set(targets)):
        members = [i for i, t in enumerate(targets) if t == label]
        order = torch.randperm(len(members), generator=generator).tolist()
        n_val = round(len(members) * 0.25)
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    assert train_val_split(targets, 0.25, seed=3) == (sorted(train), sorted(val))


def test_split_keeps_at_least_one_image_per_class_on_each_side():
    targets = [0, 0, 1, 1, 1, 2, 2]
    for fraction in (0.01, 0.99):
        train, val = train_val_split(targets, fraction, seed=0)
        for label in (0, 1, 2):
            assert any(targets[i] == label for i in train) and any(targets[i] == label for i in val)


def test_split_same_for_imagefolder_and_custom_targets(tree):
    """The split depends only on the labels, so either dataset class gives the same one."""
    ours = ImageFolderCustom(tree)
    theirs = datasets.ImageFolder(tree)
    assert train_val_split(ours.targets, 0.3, seed=1) == train_val_split(theirs.targets, 0.3, seed=1)


@pytest.mark.parametrize("fraction", [0, 1, 20, -0.2])
def test_split_rejects_a_fraction_outside_0_and_1(fraction):
    with pytest.raises(ValueError, match=rf"val_fraction={fraction!r} must be strictly between 0 and 1"):
        train_val_split(TARGETS, fraction)


def test_split_rejects_a_class_with_one_image():
    with pytest.raises(ValueError, match=r"Class 1 has 1 sample\(s\)"):
        train_val_split([0, 0, 1, 2, 2], 0.5)
