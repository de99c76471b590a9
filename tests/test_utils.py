"""Unit tests for going_modular/utils.py."""
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from going_modular import runtime, utils
from going_modular.model_builder import TinyVGG, tinyvgg

CLASSES = ["pizza", "steak", "sushi"]
CONFIG = {"model": "tinyvgg", "hidden_units": 4, "image_size": 16, "lr": 0.01, "train_dir": "data/x"}


def trained_model() -> tuple[TinyVGG, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = tinyvgg(3, hidden_units=4, image_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    nn.CrossEntropyLoss()(model(torch.rand(2, 3, 16, 16)), torch.tensor([0, 2])).backward()
    optimizer.step()
    model.history = {"epochs": [1, 2], "train_loss": [1.1, 0.9]}
    return model, optimizer


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_set_seeds_is_the_runtime_helper():
    assert utils.set_seeds is runtime.set_seeds


def test_save_model_round_trip(tmp_path, capsys):
    model, _ = trained_model()
    path = utils.save_model(model, tmp_path / "models", "tiny.pth")
    assert path == tmp_path / "models" / "tiny.pth" and path.is_file()
    assert "Saving model to" in capsys.readouterr().out
    fresh = tinyvgg(3, hidden_units=4, image_size=16)
    assert not same_weights(model, fresh)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    assert same_weights(model, fresh)


def test_save_model_needs_a_torch_suffix(tmp_path):
    model, _ = trained_model()
    with pytest.raises(ValueError, match=r"model_name='tiny.pkl' should end with '.pth' or '.pt'"):
        utils.save_model(model, tmp_path, "tiny.pkl")
    assert not any(tmp_path.iterdir())


def test_checkpoint_round_trip(tmp_path):
    model, optimizer = trained_model()
    path = utils.save_checkpoint(tmp_path / "ck.pth", model, CONFIG, CLASSES, epoch=2, optimizer=optimizer)
    raw = torch.load(path, weights_only=True)  # the contract: plain data, safe to load
    assert set(raw) == {"arch", "state_dict", "config", "class_names", "epoch", "optimizer", "history"}

    fresh = tinyvgg(3, hidden_units=4, image_size=16)
    checkpoint = utils.load_checkpoint(path, fresh)
    assert checkpoint.model is fresh and same_weights(model, fresh)
    assert (checkpoint.config, checkpoint.class_names, checkpoint.epoch) == (CONFIG, CLASSES, 2)
    assert fresh.history == model.history
    new_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.01)
    new_optimizer.load_state_dict(checkpoint.optimizer_state)
    assert new_optimizer.state_dict()["state"][0]["step"] == 1

    built = utils.load_checkpoint(path).model  # no model given: built from MODELS and the config
    assert isinstance(built, TinyVGG) and built.image_size == 16 and same_weights(model, built)


def test_checkpoint_config_may_be_a_dataclass(tmp_path):
    @dataclass
    class Config:
        model: str = "tinyvgg"
        hidden_units: int = 4
        image_size: int = 16
        output: Path = Path("models/x.pth")

    model, _ = trained_model()
    utils.save_checkpoint(tmp_path / "ck.pt", model, Config(), CLASSES)
    assert utils.load_checkpoint(tmp_path / "ck.pt").config["output"] == str(Path("models/x.pth"))
    with pytest.raises(TypeError, match=r"config\['bad'\] is a object; use str, int, float, bool or None"):
        utils.save_checkpoint(tmp_path / "ck2.pt", model, {**CONFIG, "bad": object()}, CLASSES)


def test_checkpoint_for_other_classes_or_architecture_is_refused(tmp_path):
    model, _ = trained_model()
    path = utils.save_checkpoint(tmp_path / "ck.pth", model, CONFIG, CLASSES)
    with pytest.raises(ValueError, match=r"is for 3 classes \(pizza, steak, sushi\), but the model outputs 2"):
        utils.load_checkpoint(path, tinyvgg(2, hidden_units=4, image_size=16))
    shapes = r"conv_block_1.0.weight is \(4, 3, 3, 3\) in the checkpoint and \(8, 3, 3, 3\) in the model"
    with pytest.raises(ValueError, match=shapes):
        utils.load_checkpoint(path, tinyvgg(3, hidden_units=8, image_size=16))
    with pytest.raises(ValueError, match=r"holds a TinyVGG, but the model is a Linear"):
        utils.load_checkpoint(path, nn.Linear(3, 3))


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No checkpoint at '.*missing.pth'.*going_modular.train"):
        utils.load_checkpoint(tmp_path / "missing.pth")
    model, _ = trained_model()
    bare = utils.save_model(model, tmp_path, "bare.pth")
    with pytest.raises(ValueError, match=r"holds a bare state_dict, not a checkpoint.*load_state_dict"):
        utils.load_checkpoint(bare)
    path = utils.save_checkpoint(tmp_path / "ck.pth", model, {**CONFIG, "model": "resnet"}, CLASSES)
    with pytest.raises(ValueError, match=r"model 'resnet', which is not in MODELS \(tinyvgg\).*pass model="):
        utils.load_checkpoint(path)


def test_save_is_atomic(tmp_path, monkeypatch):
    model, _ = trained_model()
    path = utils.save_checkpoint(tmp_path / "ck.pth", model, CONFIG, CLASSES, epoch=1)
    before = path.read_bytes()

    def interrupted_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(utils.torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        utils.save_checkpoint(path, model, CONFIG, CLASSES, epoch=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]  # no temporary file left behind


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_get_the_mode_open_would_give(tmp_path, umask, mode):
    """mkstemp makes private 0600 files; a saved model should be readable like any file the user writes."""
    model, _ = trained_model()
    old = os.umask(umask)
    try:
        weights = utils.save_model(model, tmp_path, "w.pth")
        checkpoint = utils.save_checkpoint(tmp_path / "ck.pth", model, CONFIG, CLASSES)
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives under this umask: the oracle
    finally:
        os.umask(old)
    assert stat.S_IMODE(plain.stat().st_mode) == mode
    assert stat.S_IMODE(weights.stat().st_mode) == mode
    assert stat.S_IMODE(checkpoint.stat().st_mode) == mode
