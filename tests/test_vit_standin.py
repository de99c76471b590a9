"""The committed offline ViT stand-in (course/vit_standin.py): digest, loading, naming, recipe (no network)."""
from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from course import food, vit_standin
from course.weights import get_weights

TINY = {**vit_standin.RECIPE, "drawn_per_class": 2, "photos": ["chelsea", "coffee"], "crops_per_photo": 2,
        "epochs": 1, "batch_size": 4}


def test_committed_file_has_the_recorded_digest_and_fits_the_size_limit():
    path = vit_standin.WEIGHTS_FILE
    assert path.is_file()
    assert vit_standin.sha256_of(path) == vit_standin.SHA256
    assert path.stat().st_size <= 12 * 2**20


def test_committed_file_loads_with_weights_only_and_is_fp16():
    state = torch.load(vit_standin.WEIGHTS_FILE, map_location="cpu", weights_only=True)
    assert {t.dtype for t in state.values()} == {torch.float16}
    assert set(state) == set(vit_standin.build_student().state_dict())


def test_student_loads_and_gives_features():
    student = vit_standin.load_student()
    assert not student.training
    x = vit_standin.standin_transforms()(torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)).unsqueeze(0)
    assert x.shape == (1, 3, 96, 96)
    with torch.inference_mode():
        out = student(x)
    assert out.shape == (1, vit_standin.FEATURE_DIM) and torch.isfinite(out).all()
    assert out.std() > 0.01  # trained weights, not the zero head of a fresh ViT


def test_a_wrong_digest_or_a_missing_file_is_refused(tmp_path):
    copy = tmp_path / "copy.pt"
    shutil.copyfile(vit_standin.WEIGHTS_FILE, copy)
    with pytest.raises(ValueError, match=r"has SHA-256 [0-9a-f]{64}, expected 0{64}"):
        vit_standin.load_student(copy, sha256="0" * 64)
    with pytest.raises(FileNotFoundError, match=r"missing.*python -m course.vit_standin build"):
        vit_standin.load_student(tmp_path / "nothing.pt")


def test_get_weights_offline_gives_the_honestly_named_standin(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no cached torchvision weights
    weights = get_weights("vit_b_16", data="offline", verbose=False)
    assert weights.real is False and weights.arch == "vit_b_16"
    assert "distilled from EfficientNet-Lite0" in weights.name
    assert "imagenet" not in weights.name.lower() and "not ImageNet-trained" in weights.source
    assert weights.meta["sha256"] == vit_standin.SHA256
    assert not vit_standin.WEIGHTS_FILE.name.startswith("vit_b_16-")  # never a torchvision file name
    model = weights.build()
    assert isinstance(model.heads, nn.Module) and model.hidden_dim == 192 and model.image_size == 96
    model.heads = nn.Identity()  # lesson code: the class token's features
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 96, 96)).shape == (2, 192)
    assert len(weights.meta["categories"]) == vit_standin.FEATURE_DIM


def test_distillation_images_are_disjoint_from_the_lessons_and_deterministic():
    assert TINY["drawn_seed"] != food.DEFAULT_SEED
    images = vit_standin.distillation_images(TINY, size=64, progress=False)
    again = vit_standin.distillation_images(TINY, size=64, progress=False)
    assert images.shape == (3 * 2 + 2 * 2, 3, 64, 64) and images.dtype == torch.uint8
    assert torch.equal(images, again)
    import numpy as np

    lesson = np.asarray(food.draw_food("pizza", food.image_rng(food.DEFAULT_SEED, "train", "pizza", 0), size=64))
    assert not torch.equal(images[0], torch.from_numpy(lesson.copy()).permute(2, 0, 1))


def test_distil_runs_the_recipe_end_to_end_on_a_tiny_budget():
    student, log = vit_standin.distil(TINY, progress=False)
    assert log["images"] == 10 and len(log["loss"]) == 1 and log["loss"][0] > 0
    assert isinstance(student.heads.head, nn.Linear) and student.heads.head.out_features == vit_standin.FEATURE_DIM
