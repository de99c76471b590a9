"""Unit tests for going_modular/engine.py."""
import math
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchvision import transforms

from going_modular import engine
from going_modular.data_setup import create_dataloaders
from going_modular.model_builder import TinyVGG


@pytest.fixture
def linear_data():
    """9 samples, 4 features, 3 classes, in batches of 4: the last batch holds 1 sample."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(9, 4, generator=g), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    return DataLoader(TensorDataset(X, y), batch_size=4), X, y


@pytest.fixture
def food_batches(food_dirs):
    """(train, test) DataLoaders of the tiny image folders, 16x16 images, batches of 4."""
    transform = transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor()])
    train_loader, test_loader, _ = create_dataloaders(*food_dirs, transform, 4, 0, seed=0, cache=True)
    return train_loader, test_loader


def frozen_linear():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    return model, torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the weights stay put


def test_metrics_are_weighted_by_samples(linear_data):
    loader, X, y = linear_data
    model, optimizer = frozen_linear()
    with torch.no_grad():
        logits = model(X)
        per_sample = nn.functional.cross_entropy(logits, y, reduction="none")
        hits = (logits.argmax(dim=1) == y).float()
    expected = (per_sample.mean().item(), hits.mean().item())
    per_batch = (sum(per_sample[i:i + 4].mean().item() for i in (0, 4, 8)) / 3,
                 sum(hits[i:i + 4].mean().item() for i in (0, 4, 8)) / 3)
    assert not math.isclose(expected[0], per_batch[0], rel_tol=1e-3)  # the two ways differ on this data

    loss_fn = nn.CrossEntropyLoss()
    test = engine.test_step(model, loader, loss_fn, "cpu")
    train = engine.train_step(model, loader, loss_fn, optimizer, "cpu")
    for result in (test, train):
        assert result[0] == pytest.approx(expected[0], rel=1e-6)
        assert result[1] == pytest.approx(expected[1], rel=1e-6)


def test_one_host_read_per_epoch(linear_data, monkeypatch):
    """The engine reads device numbers on the host once per epoch (the DataLoader may read its own)."""
    loader, _, _ = linear_data
    model, optimizer = frozen_linear()
    calls = []
    for method in ("item", "tolist"):
        original = getattr(torch.Tensor, method)

        def counted(self, _original=original, _name=method):
            if sys._getframe(1).f_code.co_filename == engine.__file__:
                calls.append(_name)
            return _original(self)
        monkeypatch.setattr(torch.Tensor, method, counted)
    engine.train_step(model, loader, nn.CrossEntropyLoss(), optimizer, "cpu")
    engine.test_step(model, loader, nn.CrossEntropyLoss(), "cpu")
    assert calls == ["tolist", "tolist"]


def test_train_returns_the_course_contract_and_fills_history(food_batches):
    train_loader, test_loader = food_batches
    torch.manual_seed(0)
    model = TinyVGG(3, 4, 3, image_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seen = []
    results = engine.train(model, train_loader, test_loader, optimizer, nn.CrossEntropyLoss(), 2, "cpu",
                           on_epoch_end=lambda epoch, metrics: seen.append((epoch, metrics)), progress=False)
    assert list(results) == ["train_loss", "train_acc", "test_loss", "test_acc"]
    assert all(len(v) == 2 and all(isinstance(x, float) and math.isfinite(x) for x in v) for v in results.values())
    assert all(0.0 <= acc <= 1.0 for acc in results["train_acc"] + results["test_acc"])
    assert [epoch for epoch, _ in seen] == [0, 1]
    assert seen[1][1] == {key: values[1] for key, values in results.items()}
    assert model.history == {"epochs": [1, 2], **results}
    engine.train(model, train_loader, test_loader, optimizer, nn.CrossEntropyLoss(), 1, "cpu",
                 start_epoch=2, progress=False, verbose=False)
    assert model.history["epochs"] == [1, 2, 3] and len(model.history["test_acc"]) == 3


def test_plain_module_and_printout(food_batches, capsys):
    train_loader, test_loader = food_batches
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    results = engine.train(model, train_loader, test_loader, optimizer, nn.CrossEntropyLoss(), 1, "cpu",
                           start_epoch=4, progress=False)
    assert len(results["test_loss"]) == 1 and not hasattr(model, "history")
    assert capsys.readouterr().out.startswith("Epoch: 5 | train_loss: ")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_and_channels_last(food_batches, amp):
    train_loader, test_loader = food_batches
    torch.manual_seed(0)
    model = TinyVGG(3, 4, 3, image_size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    results = engine.train(model, train_loader, test_loader, optimizer, nn.CrossEntropyLoss(), 1, "cpu",
                           amp=amp, channels_last=True, progress=False, verbose=False)
    assert math.isfinite(results["train_loss"][0]) and math.isfinite(results["test_loss"][0])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps float32 weights
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert model.conv_block_1[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_nan_loss_names_epoch_and_batch(linear_data):
    _, X, y = linear_data
    X = X.clone()
    X[5] = float("nan")  # second batch (samples 4-7)
    loader = DataLoader(TensorDataset(X, y), batch_size=4)
    model, optimizer = frozen_linear()
    with pytest.raises(FloatingPointError, match=r"train loss became NaN or infinite at epoch 3, batch 2\."):
        engine.train(model, loader, loader, optimizer, nn.CrossEntropyLoss(), 1, "cpu",
                     start_epoch=2, progress=False, verbose=False)


def test_bad_arguments_are_explained(linear_data):
    loader, _, _ = linear_data
    model, optimizer = frozen_linear()
    loss_fn = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"amp='float16' is not one of \(None, 'bf16', 'fp16'\)"):
        engine.train(model, loader, loader, optimizer, loss_fn, 1, "cpu", amp="float16", progress=False)
    with pytest.raises(ValueError, match=r"The model is on cpu but device=meta; call model.to\(device\) first"):
        engine.train(model, loader, loader, optimizer, loss_fn, 1, "meta", progress=False)
    with pytest.raises(ValueError, match="The test dataloader yielded no batches"):
        engine.test_step(model, [], loss_fn, "cpu")


def test_one_mixed_precision_switch():
    from going_modular.mixed_precision import autocast, grad_scaler
    cpu = torch.device("cpu")
    assert grad_scaler(cpu, "fp16").is_enabled()
    assert not grad_scaler(cpu, "bf16").is_enabled() and not grad_scaler(cpu, None).is_enabled()
    layer, x = nn.Linear(2, 2), torch.rand(1, 2)
    with autocast(cpu, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(cpu, None):  # a do-nothing context
        assert layer(x).dtype == torch.float32
    with pytest.raises(ValueError, match=r"amp='fp8' is not one of"):
        autocast(cpu, "fp8")


def drifting_data(n=24, seed=0):
    """A linearly separable 2-class problem, so a few SGD epochs lower the validation loss."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 4, generator=g)
    y = (X[:, 0] > 0).long()
    return DataLoader(TensorDataset(X, y), batch_size=8)


def test_validation_keys_and_no_test_set():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    results = engine.train(model, drifting_data(), None, optimizer, nn.CrossEntropyLoss(), 3, "cpu",
                           val_dataloader=drifting_data(seed=1), progress=False, verbose=False)
    assert list(results) == ["train_loss", "train_acc", "val_loss", "val_acc"]
    assert all(len(v) == 3 for v in results.values())
    with pytest.raises(ValueError, match="at least one"):
        engine.train(model, drifting_data(), None, optimizer, nn.CrossEntropyLoss(), 1, "cpu", progress=False)


def test_old_call_keeps_its_keys(linear_data):
    loader, _, _ = linear_data
    model, optimizer = frozen_linear()
    results = engine.train(model, loader, loader, optimizer, nn.CrossEntropyLoss(), 2, "cpu", progress=False,
                           verbose=False)
    assert list(results) == ["train_loss", "train_acc", "test_loss", "test_acc"]


def test_early_stopping_restores_the_best_weights(monkeypatch):
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    script = iter([0.9, 0.5, 0.7, 0.8, 0.6, 0.1])  # best at epoch 2, then 3 epochs without improvement
    seen = []
    real_test_step = engine.test_step

    def scripted(model, loader, loss_fn, device, *, split="test", **kwargs):
        loss, acc = real_test_step(model, loader, loss_fn, device, split=split, **kwargs)
        if split == "validation":
            seen.append({k: v.clone() for k, v in model.state_dict().items()})
            return next(script), acc
        return loss, acc

    monkeypatch.setattr(engine, "test_step", scripted)
    results = engine.train(model, drifting_data(), None, optimizer, nn.CrossEntropyLoss(), 10, "cpu",
                           val_dataloader=drifting_data(seed=1), patience=2, progress=False, verbose=False)
    assert results["val_loss"] == [0.9, 0.5, 0.7, 0.8]  # stopped after 2 epochs without improvement
    for key, value in model.state_dict().items():
        assert torch.equal(value, seen[1][key])  # the weights of epoch 2 are back


@pytest.mark.parametrize("patience", [0, -1, 1.5, "3"])
def test_bad_patience_is_refused(patience):
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="patience"):
        engine.train(model, drifting_data(), None, optimizer, nn.CrossEntropyLoss(), 1, "cpu",
                     val_dataloader=drifting_data(), patience=patience, progress=False)


def test_patience_needs_validation_data():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="val_dataloader"):
        engine.train(model, drifting_data(), drifting_data(), optimizer, nn.CrossEntropyLoss(), 1, "cpu",
                     patience=2, progress=False)


def test_scheduler_steps_once_per_epoch_and_lr_is_recorded():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    results = engine.train(model, drifting_data(), drifting_data(), optimizer, nn.CrossEntropyLoss(), 3, "cpu",
                           scheduler=scheduler, progress=False, verbose=False)
    assert results["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0125)


def test_plateau_scheduler_needs_validation_loss():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    with pytest.raises(ValueError, match="ReduceLROnPlateau needs a val_dataloader"):
        engine.train(model, drifting_data(), drifting_data(), optimizer, nn.CrossEntropyLoss(), 1, "cpu",
                     scheduler=plateau, progress=False)
    results = engine.train(model, drifting_data(), None, optimizer, nn.CrossEntropyLoss(), 2, "cpu",
                           val_dataloader=drifting_data(seed=1), scheduler=plateau, progress=False, verbose=False)
    assert len(results["lr"]) == 2
