"""Unit tests for going_modular/data_setup.py."""
import pytest
import torch
from torchvision import transforms

from going_modular.custom_data import train_val_split
from going_modular.data_setup import EpochShuffleSampler, TensorCacheDataset, create_dataloaders

TRANSFORM = transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor()])


def labels_in_order(dataloader) -> list[int]:
    return [int(label) for _, y in dataloader for label in y]


def test_original_positional_call(food_dirs):
    train_dir, test_dir = food_dirs
    train_dl, test_dl, class_names = create_dataloaders(train_dir, test_dir, TRANSFORM, 4, 0)
    assert class_names == ["pizza", "steak", "sushi"]
    assert (len(train_dl.dataset), len(test_dl.dataset)) == (9, 6)
    X, y = next(iter(train_dl))
    assert X.shape == (4, 3, 16, 16) and X.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert [len(y) for _, y in train_dl] == [4, 4, 1]
    assert labels_in_order(test_dl) == [0, 0, 1, 1, 2, 2]  # test data is not shuffled


def test_pin_memory_defaults_to_cuda_availability(food_dirs):
    train_dl, test_dl, _ = create_dataloaders(*food_dirs, TRANSFORM, 4, 0)
    assert train_dl.pin_memory is torch.cuda.is_available() and test_dl.pin_memory is torch.cuda.is_available()
    train_dl, _, _ = create_dataloaders(*food_dirs, TRANSFORM, 4, 0, pin_memory=False)
    assert train_dl.pin_memory is False


def test_seed_repeats_the_shuffle(food_dirs):
    orders = [labels_in_order(create_dataloaders(*food_dirs, TRANSFORM, 4, 0, seed=s)[0]) for s in (5, 5, 6)]
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    one_batch = [create_dataloaders(*food_dirs, TRANSFORM, 9, 0, seed=s)[0] for s in (5, 6)]
    assert not torch.equal(next(iter(one_batch[0]))[0], next(iter(one_batch[1]))[0])  # another seed, another order


def test_test_transform_is_separate(food_dirs):
    test_transform = transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()])
    train_dl, test_dl, _ = create_dataloaders(*food_dirs, TRANSFORM, 4, 0, test_transform=test_transform)
    assert next(iter(train_dl))[0].shape[-2:] == (16, 16)
    assert next(iter(test_dl))[0].shape[-2:] == (8, 8)


def test_cache_gives_the_same_tensors_as_decoding_every_time(food_dirs):
    plain = create_dataloaders(*food_dirs, TRANSFORM, 4, 0)[1]
    cached = create_dataloaders(*food_dirs, TRANSFORM, 4, 0, cache=True)[1]
    assert isinstance(cached.dataset, TensorCacheDataset)
    assert all(image.dtype == torch.uint8 and image.shape == (3, 16, 16) for image in cached.dataset.images)
    for (x1, y1), (x2, y2) in zip(plain, cached, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_cache_augments_every_read(food_dirs):
    train_dir, _ = food_dirs
    flip = transforms.Compose([transforms.Resize((16, 16)), transforms.RandomHorizontalFlip(p=1.0),
                               transforms.ToTensor()])
    data = TensorCacheDataset(train_dir, flip)
    assert len(data.images) == 9 and data.classes == ["pizza", "steak", "sushi"]
    image, label = data[0]
    assert torch.equal(image, data.images[0].flip(-1).float() / 255) and label == 0
    random_crop = transforms.Compose([transforms.Resize((16, 16)), transforms.RandomCrop(8), transforms.ToTensor()])
    cropped = TensorCacheDataset(train_dir, random_crop)
    torch.manual_seed(0)
    crops = {tuple(cropped[0][0].flatten().tolist()) for _ in range(5)}
    assert len(crops) > 1  # augmentation is redrawn each time, not cached


def test_cache_batches_only_deterministic_transforms(food_dirs):
    train_dir, _ = food_dirs
    plain = TensorCacheDataset(train_dir, TRANSFORM)
    assert plain.batchable
    batch = plain.__getitems__([0, 4, 8])
    assert all(torch.equal(image, plain[i][0]) and label == plain[i][1] for (image, label), i in zip(batch, [0, 4, 8]))
    flip = TensorCacheDataset(train_dir, transforms.Compose(
        [transforms.Resize((16, 16)), transforms.RandomHorizontalFlip(p=0.5), transforms.ToTensor()]))
    assert not flip.batchable
    torch.manual_seed(0)
    views = {tuple(image.flatten().tolist()) for image, _ in flip.__getitems__([0] * 16)}
    assert len(views) == 2  # each item of one batch draws its own flip


def test_corrupt_image_is_named_when_caching(food_dirs):
    train_dir, test_dir = food_dirs
    (train_dir / "pizza" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"Could not decode .*broken\.jpg.*Delete or replace"):
        create_dataloaders(train_dir, test_dir, TRANSFORM, 4, 0, cache=True)


def test_missing_folder(tmp_path, food_dirs):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"train_dir: No folder at '.*nowhere'\. Expected an image folder laid out as"):
        create_dataloaders(missing, food_dirs[1], TRANSFORM, 4, 0)
    with pytest.raises(FileNotFoundError, match=r"test_dir: No folder at '.*nowhere'"):
        create_dataloaders(food_dirs[0], missing, TRANSFORM, 4, 0)


def test_empty_folder_and_folder_without_class_subfolders(tmp_path, food_dirs, make_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"train_dir: '.*empty' has no class subfolders.*a subfolder named after the class"):
        create_dataloaders(empty, food_dirs[1], TRANSFORM, 4, 0)
    flat = make_folder(tmp_path / "flat", per_class=2)
    for image in flat.rglob("*.*"):
        image.rename(flat / image.name)
    for folder in list(flat.iterdir()):
        if folder.is_dir():
            folder.rmdir()
    with pytest.raises(ValueError, match=r"has no class subfolders"):
        create_dataloaders(flat, food_dirs[1], TRANSFORM, 4, 0)


def test_class_folders_without_images(tmp_path, food_dirs):
    for label in ("pizza", "steak"):
        (tmp_path / "hollow" / label).mkdir(parents=True)
    with pytest.raises(ValueError, match=r"has class folders \(pizza, steak\) but no images"):
        create_dataloaders(tmp_path / "hollow", food_dirs[1], TRANSFORM, 4, 0)


def test_train_and_test_classes_must_match(tmp_path, food_dirs, make_folder):
    other = make_folder(tmp_path / "other", per_class=1, classes=("pizza", "tacos"))
    with pytest.raises(ValueError, match=r"test_dir has \['pizza', 'tacos'\]"):
        create_dataloaders(food_dirs[0], other, TRANSFORM, 4, 0)


def test_distributed_needs_a_process_group(food_dirs):
    with pytest.raises(RuntimeError, match="init_process_group"):
        create_dataloaders(*food_dirs, TRANSFORM, 4, 0, distributed=True)


def test_seeded_shuffle_depends_on_seed_and_epoch_only(food_dirs):
    train_dataloader = create_dataloaders(*food_dirs, TRANSFORM, 4, 0, seed=7)[0]
    sampler = train_dataloader.sampler
    assert isinstance(sampler, EpochShuffleSampler)
    first = list(sampler)
    assert sorted(first) == list(range(9))
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first  # a new order every epoch
    fresh = create_dataloaders(*food_dirs, TRANSFORM, 4, 0, seed=7)[0].sampler
    fresh.set_epoch(1)
    assert list(fresh) == second  # a fresh loader (a resumed run) repeats epoch 1's order


def test_validation_split_is_carved_from_the_training_folder(food_dirs):
    transform = transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()])
    augment = transforms.Compose([transforms.Resize((8, 8)), transforms.ColorJitter(0.9), transforms.ToTensor()])
    train_dl, val_dl, test_dl, classes = create_dataloaders(*food_dirs, augment, 4, 0, test_transform=transform,
                                                            seed=0, val_fraction=0.34)
    train_idx, val_idx = train_dl.dataset.indices, val_dl.dataset.indices
    assert sorted(train_idx + val_idx) == list(range(9)) and len(val_idx) == 3  # one image per class held out
    assert sorted(labels_in_order(val_dl)) == [0, 1, 2]                             # stratified
    assert len(test_dl.dataset) == 6 and classes == ["pizza", "steak", "sushi"]
    assert val_dl.dataset.dataset.transform is transform                            # no augmentation
    again = create_dataloaders(*food_dirs, augment, 4, 0, seed=0, val_fraction=0.34)
    assert again[1].dataset.indices == val_idx                                      # same seed, same split
    assert len(create_dataloaders(*food_dirs, transform, 4, 0)) == 3                 # the original's 3 values


def test_train_val_split_is_stratified_seeded_and_checked():
    targets = [0] * 10 + [1] * 30
    train, val = train_val_split(targets, 0.2, seed=1)
    assert sorted(train + val) == list(range(40))
    assert sum(targets[i] == 0 for i in val) == 2 and sum(targets[i] == 1 for i in val) == 6
    assert train_val_split(targets, 0.2, seed=1) == (train, val)
    assert train_val_split(targets, 0.2, seed=2) != (train, val)
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match=f"val_fraction={bad}"):
            train_val_split(targets, bad)
    with pytest.raises(ValueError, match="at least 2 per class"):
        train_val_split([0, 0, 1], 0.5)
