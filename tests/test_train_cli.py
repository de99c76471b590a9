"""Tests for `python -m going_modular.train`: real processes (also under torchrun) and its error messages."""
import math
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from going_modular import engine, train, utils
from going_modular.data_setup import create_dataloaders
from going_modular.model_builder import TinyVGG

CLASSES = ["pizza", "steak", "sushi"]
SMALL = ["--batch-size", "4", "--image-size", "16", "--hidden-units", "4", "--num-workers", "0", "--device", "cpu"]


def run(args: list, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run a command in its own process group, killing the whole group if it hangs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{args} ran past {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def data(tmp_path_factory, make_folder):
    root = tmp_path_factory.mktemp("cli")
    return make_folder(root / "train", per_class=3, seed=1), make_folder(root / "test", per_class=3, seed=2)


def data_flags(data) -> list:
    return ["--train-dir", data[0], "--test-dir", data[1], *SMALL]


@pytest.fixture(scope="module")
def single_process(data, tmp_path_factory):
    """One epoch in a real process; returns (completed process, checkpoint path)."""
    output = tmp_path_factory.mktemp("single") / "tiny.pth"
    return run(["-m", "going_modular.train", *data_flags(data), "--epochs", "1", "--output", output]), output


def loaders(data, val_fraction=0.2):
    """The CLI's DataLoaders for the tiny folders (16x16 images, batches of 4, seed 42)."""
    transform = transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor()])
    return create_dataloaders(*data, transform, 4, 0, seed=42, val_fraction=val_fraction)


def test_one_epoch_in_a_process(single_process, data):
    result, output = single_process
    assert result.returncode == 0, result.stderr
    assert "config:\n  train_dir: " in result.stdout and "\n  epochs: 1\n" in result.stdout
    assert "\n  val_fraction: 0.2\n" in result.stdout and "\n  lr_schedule: none\n" in result.stdout
    assert "Epoch: 1 | train_loss: " in result.stdout and f"saved {output} (epoch 1)" in result.stdout
    checkpoint = utils.load_checkpoint(output, TinyVGG(3, 4, 3, image_size=16))
    assert checkpoint.class_names == CLASSES and checkpoint.epoch == 1
    assert checkpoint.config == {**asdict(train.TrainConfig()), "train_dir": str(data[0]),
                                 "test_dir": str(data[1]), "epochs": 1, "batch_size": 4, "image_size": 16,
                                 "hidden_units": 4, "num_workers": 0, "device": "cpu", "output": str(output)}
    # Validation every epoch, the best epoch kept beside --output, and the test set left alone.
    assert f"val_acc: {checkpoint.history['val_acc'][0]:.4f}" in result.stdout
    assert "test_loss" not in checkpoint.history and "test_loss" not in result.stdout
    best = utils.load_checkpoint(train.best_path(output), TinyVGG(3, 4, 3, image_size=16))
    assert best.epoch == 1 and train.best_path(output).name == "tiny_best.pth"
    assert f"saved {train.best_path(output)} (best so far: epoch 1)" in result.stdout


def test_help_names_validation_patience_and_schedules():
    text = " ".join(train.build_parser().format_help().split())
    for flag in ("--val-fraction", "--patience", "--lr-schedule {none,step,cosine,plateau}"):
        assert flag in text, flag
    assert "(default: 0.2)" in text and "cosine: from --lr down to 0" in text


@pytest.mark.parametrize("name, expected", [
    ("none", None),
    ("step", [1e-3] * 4 + [1e-4] * 2 + [1e-5] * 2),  # /10 after half and after three quarters of 8 epochs
    ("cosine", [1e-3 * (1 + math.cos(math.pi * e / 8)) / 2 for e in range(8)]),
])
def test_make_scheduler(name, expected):
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = train.make_scheduler(name, optimizer, 8)
    if expected is None:
        assert scheduler is None
        return
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx(expected)


def test_make_scheduler_plateau_and_bad_names():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = train.make_scheduler("plateau", optimizer, 8)
    for val_loss in (1.0, 0.9, 0.95, 0.95):  # two epochs without a lower loss: divided by 10
        optimizer.step()
        scheduler.step(val_loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match=r"lr_schedule='linear' is not one of \('none', 'step', 'cosine', 'plateau'\)"):
        train.make_scheduler("linear", optimizer, 8)


def test_dry_run_in_a_process(data, tmp_path):
    output = tmp_path / "dry.pth"
    result = run(["-m", "going_modular.train", *data_flags(data), "--output", output, "--dry-run"])
    assert result.returncode == 0, result.stderr
    assert "dry run: one train batch and one validation batch; no checkpoint" in result.stdout
    assert result.stdout.count("Epoch: ") == 1 and not output.exists()


def test_torchrun_writes_the_single_process_checkpoint_format(single_process, data, tmp_path):
    _, single_output = single_process
    output = tmp_path / "ddp.pth"
    result = run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "going_modular.train",
                  *data_flags(data), "--epochs", "1", "--output", output, "--final-test"])
    assert result.returncode == 0, result.stderr
    assert "processes: 2" in result.stdout
    assert result.stdout.count("Epoch: 1 |") == 1  # only rank 0 prints

    single, ddp = torch.load(single_output, weights_only=True), torch.load(output, weights_only=True)
    assert set(ddp) == set(single) and set(ddp["state_dict"]) == set(single["state_dict"])
    assert {**ddp["config"], "output": None, "final_test": None} == {**single["config"], "output": None, "final_test": None}
    assert ddp["class_names"] == single["class_names"] and ddp["epoch"] == single["epoch"] == 1
    model = TinyVGG(3, 4, 3, image_size=16)
    utils.load_checkpoint(output, model)  # no "module." prefixes: DDP was unwrapped

    # The validation metrics were all-reduced over both processes' shards: they are those of the whole
    # validation set (3 images: rank 0 holds 0 and 2, so its own metrics differ). The same holds for the
    # test set, evaluated once at the end on the best epoch (here the only one, the weights just loaded).
    _, val_loader, test_loader, _ = loaders(data)
    loss_fn = torch.nn.CrossEntropyLoss()
    full = engine.test_step(model, val_loader, loss_fn, "cpu")
    rank_0 = engine.test_step(model, DataLoader(Subset(val_loader.dataset, range(0, 3, 2)), batch_size=4),
                              loss_fn, "cpu")
    assert abs(full[0] - rank_0[0]) > 1e-4  # so the next line tells the two apart
    assert ddp["history"]["val_loss"][0] == pytest.approx(full[0], rel=1e-6)
    assert ddp["history"]["val_acc"][0] == pytest.approx(full[1])
    test_loss, test_acc = engine.test_step(model, test_loader, loss_fn, "cpu")
    assert f"Test (once, best epoch 1 on validation): test_loss: {test_loss:.4f} | test_acc: {test_acc:.4f}" \
        in result.stdout


def test_resume_continues_to_the_total_epochs(data, tmp_path, capsys):
    output = str(tmp_path / "run.pth")
    common = [*map(str, data_flags(data)), "--output", output]
    assert train.main([*common, "--epochs", "1"]) == 0
    assert train.main([*common, "--epochs", "2", "--resume"]) == 0
    checkpoint = utils.load_checkpoint(output)
    assert checkpoint.epoch == 2 and checkpoint.model.history["epochs"] == [1, 2]
    assert train.main([*common, "--epochs", "2", "--resume"]) == 0
    assert "has trained 2 epochs already; raise --epochs to train more" in capsys.readouterr().out


@pytest.mark.parametrize("schedule", ["none", "step", "cosine", "plateau"])
def test_resumed_run_repeats_an_uninterrupted_one(schedule, data, tmp_path, monkeypatch):
    """Interrupted after epoch 2 of 4 and resumed: the same run, learning-rate schedule included."""
    common = [*map(str, data_flags(data)), "--lr-schedule", schedule, "--lr", "0.01", "--epochs", "4"]
    whole, halves = tmp_path / "whole.pth", tmp_path / "halves.pth"
    assert train.main([*common, "--output", str(whole)]) == 0
    assert train.main([*common, "--output", str(halves), "--dry-run"]) == 0  # writes nothing
    real_test_step = engine.test_step

    def ctrl_c_in_epoch_3(*args, epoch=0, **kwargs):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_test_step(*args, epoch=epoch, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(engine, "test_step", ctrl_c_in_epoch_3)
        assert train.main([*common, "--output", str(halves)]) == 130
    assert train.main([*common, "--output", str(halves), "--resume"]) == 0
    for path_a, path_b in ((whole, halves), (train.best_path(whole), train.best_path(halves))):
        a, b = utils.load_checkpoint(path_a), utils.load_checkpoint(path_b)
        assert a.model.history == b.model.history  # same shuffles, optimizer state, learning rates and metrics
        for name, tensor in a.model.state_dict().items():
            assert torch.equal(tensor, b.model.state_dict()[name]), name
    if schedule == "step":
        assert utils.load_checkpoint(whole).history["lr"] == pytest.approx([0.01, 0.01, 0.001, 0.0001])


def test_early_stopping_keeps_the_best_epoch_and_tests_it_once(data, tmp_path, monkeypatch, capsys):
    """Validation losses 1.0, 0.5, 0.7, 0.8 with --patience 2: stop after epoch 4, keep epoch 2, test it once."""
    real_test_step, val_losses, tested = engine.test_step, iter([1.0, 0.5, 0.7, 0.8, 0.9]), []

    def scripted(model, dataloader, loss_fn, device, *, split="test", **kwargs):
        if split == "validation":
            return next(val_losses), 0.5
        tested.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_test_step(model, dataloader, loss_fn, device, split=split, **kwargs)

    monkeypatch.setattr(engine, "test_step", scripted)
    output = tmp_path / "run.pth"
    common = [*map(str, data_flags(data)), "--patience", "2", "--output", str(output), "--final-test"]
    assert train.main([*common, "--epochs", "6"]) == 0
    out = capsys.readouterr().out
    assert "Early stop: validation loss has not improved for 2 epochs." in out
    assert "Test (once, best epoch 2 on validation)" in out and len(tested) == 1
    last, best = utils.load_checkpoint(output), utils.load_checkpoint(train.best_path(output))
    assert last.epoch == 4 and best.epoch == 2
    assert all(torch.equal(best.model.state_dict()[k], v) for k, v in tested[0].items())  # the test saw epoch 2
    assert train.main([*common, "--epochs", "6", "--resume"]) == 0
    assert "stopped early already: no lower validation loss in the 2 epochs after epoch 2" in capsys.readouterr().out


def test_resume_with_another_validation_split_is_refused(data, tmp_path, capsys):
    output = str(tmp_path / "run.pth")
    assert train.main([*map(str, data_flags(data)), "--epochs", "1", "--output", output]) == 0
    with pytest.raises(SystemExit):
        train.main([*map(str, data_flags(data)), "--epochs", "2", "--output", output, "--resume",
                    "--val-fraction", "0.5"])
    assert "trained with --val-fraction 0.2, not 0.5; resume with the same" in capsys.readouterr().err


def test_interrupted_run_keeps_the_last_finished_epoch(data, tmp_path, monkeypatch, capsys):
    output = tmp_path / "run.pth"
    real_test_step = engine.test_step

    def test_step_then_ctrl_c(*args, epoch=0, **kwargs):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_test_step(*args, epoch=epoch, **kwargs)

    monkeypatch.setattr(engine, "test_step", test_step_then_ctrl_c)
    assert train.main([*map(str, data_flags(data)), "--epochs", "3", "--output", str(output)]) == 130
    assert "interrupted: " in capsys.readouterr().err
    assert utils.load_checkpoint(output).epoch == 1


def test_existing_output_is_not_overwritten(data, tmp_path, capsys):
    output = tmp_path / "keep.pth"
    output.write_bytes(b"precious")
    with pytest.raises(SystemExit) as exit_info:
        train.main([*map(str, data_flags(data)), "--output", str(output)])
    assert exit_info.value.code == 2 and output.read_bytes() == b"precious"
    assert "already exists; add --resume to continue it, --overwrite to replace it" in capsys.readouterr().err
    assert train.main([*map(str, data_flags(data)), "--epochs", "1", "--output", str(output), "--overwrite"]) == 0
    assert utils.load_checkpoint(output).epoch == 1


@pytest.mark.parametrize("flags, message", [
    (["--model", "resnet"], r"argument --model: invalid choice: 'resnet' \(choose from '?tinyvgg'?\)"),
    (["--epochs", "0"], r"argument --epochs: 0 is below the minimum of 1"),
    (["--lr", "-0.1"], r"argument --lr: -0.1 must be greater than 0"),
    (["--batch-size", "two"], r"argument --batch-size: invalid int value: 'two'"),
    (["--image-size", "8"], r"argument --image-size: 8 is below the minimum of 16"),
    (["--amp", "fp8"], r"argument --amp: invalid choice: 'fp8'"),
    (["--val-fraction", "1"], r"argument --val-fraction: 1 is not in \[0, 1\); use e.g. 0.2"),
    (["--patience", "0"], r"argument --patience: 0 is below the minimum of 1"),
    (["--lr-schedule", "linear"], r"argument --lr-schedule: invalid choice: 'linear'"),
    (["--val-fraction", "0", "--patience", "2"], r"--patience 2 needs a validation set, but --val-fraction is 0"),
    (["--val-fraction", "0", "--lr-schedule", "plateau"], r"--lr-schedule plateau needs a validation set"),
    (["--val-fraction", "0", "--final-test"], r"--final-test needs a validation set.*choosing epochs on the test"),
    (["--resume", "--overwrite"], r"argument --overwrite: not allowed with argument --resume"),
    (["--output", "OUT/model.txt"], r"--output .*model.txt should end with .pth or .pt"),
    (["--resume", "--output", "OUT/none.pth"], r"--resume: there is no checkpoint at .*none.pth"),
    (["--train-dir", "OUT/missing"], r"train_dir: No folder at '.*missing'"),
])
def test_bad_flags_and_paths_are_argparse_errors(flags, message, data, tmp_path, capsys):
    flags = [flag.replace("OUT", str(tmp_path)) for flag in flags]
    with pytest.raises(SystemExit) as exit_info:
        train.main([*map(str, data_flags(data)), "--output", str(tmp_path / "x.pth"), *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "usage: python -m going_modular.train" in err
    assert re.search(message, err), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_an_argparse_error(data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main([*map(str, data_flags(data)), "--device", "cuda", "--output", str(tmp_path / "x.pth")])
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


def test_the_original_course_calls_run_on_the_package(data, tmp_path, capsys):
    """The calls the original course's train.py makes, by keyword, and its saved state_dict loads into TinyVGG."""
    from going_modular import data_setup, model_builder
    transform = transforms.Compose([transforms.Resize((64, 64)), transforms.ToTensor()])
    train_dataloader, test_dataloader, class_names = data_setup.create_dataloaders(
        train_dir=data[0], test_dir=data[1], transform=transform, batch_size=4)
    torch.manual_seed(42)
    model = model_builder.TinyVGG(input_shape=3, hidden_units=10, output_shape=len(class_names)).to("cpu")
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    results = engine.train(model=model, train_dataloader=train_dataloader, test_dataloader=test_dataloader,
                           loss_fn=loss_fn, optimizer=optimizer, epochs=1, device="cpu")
    assert [len(v) for v in results.values()] == [1, 1, 1, 1]
    path = utils.save_model(model=model, target_dir=tmp_path, model_name="05_going_modular_script_mode_tinyvgg_model.pth")
    loaded = model_builder.TinyVGG(input_shape=3, hidden_units=10, output_shape=3)
    loaded.load_state_dict(torch.load(path, weights_only=True))
    x = torch.rand(2, 3, 64, 64)
    model.eval(), loaded.eval()
    assert torch.equal(model(x), loaded(x))


# The original course's going_modular/train.py, as its lesson 05 writes it (mrdbourke/pytorch-deep-learning,
# going_modular/going_modular/train.py, MIT licence): kept here word for word so the test runs it unchanged.
ORIGINAL_TRAIN_PY = '''"""
Trains a PyTorch image classification model using device-agnostic code.
"""

import os
import torch
import data_setup, engine, model_builder, utils

from torchvision import transforms

# Setup hyperparameters
NUM_EPOCHS = 5
BATCH_SIZE = 32
HIDDEN_UNITS = 10
LEARNING_RATE = 0.001

# Setup directories
train_dir = "data/pizza_steak_sushi/train"
test_dir = "data/pizza_steak_sushi/test"

# Setup target device
device = "cuda" if torch.cuda.is_available() else "cpu"

# Create transforms
data_transform = transforms.Compose([
  transforms.Resize((64, 64)),
  transforms.ToTensor()
])

# Create DataLoaders with help from data_setup.py
train_dataloader, test_dataloader, class_names = data_setup.create_dataloaders(
    train_dir=train_dir,
    test_dir=test_dir,
    transform=data_transform,
    batch_size=BATCH_SIZE
)

# Create model with help from model_builder.py
model = model_builder.TinyVGG(
    input_shape=3,
    hidden_units=HIDDEN_UNITS,
    output_shape=len(class_names)
).to(device)

# Set loss and optimizer
loss_fn = torch.nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(),
                             lr=LEARNING_RATE)

# Start training with help from engine.py
engine.train(model=model,
             train_dataloader=train_dataloader,
             test_dataloader=test_dataloader,
             loss_fn=loss_fn,
             optimizer=optimizer,
             epochs=NUM_EPOCHS,
             device=device)

# Save the model with help from utils.py
utils.save_model(model=model,
                 target_dir="models",
                 model_name="05_going_modular_script_mode_tinyvgg_model.pth")
'''


def test_the_original_train_py_runs_unchanged_as_a_process(tmp_path, make_folder):
    """`python going_modular/train.py` with the original file beside our modules: it trains, saves, and the
    saved state_dict loads into our TinyVGG with weights_only=True."""
    import shutil

    package = tmp_path / "going_modular"
    package.mkdir()
    source = Path(engine.__file__).parent
    for module in source.glob("*.py"):  # our modules, as the original's folder holds its own
        if module.name != "train.py":
            shutil.copyfile(module, package / module.name)
    (package / "train.py").write_text(ORIGINAL_TRAIN_PY)
    make_folder(tmp_path / "data" / "pizza_steak_sushi" / "train", per_class=4, seed=1)
    make_folder(tmp_path / "data" / "pizza_steak_sushi" / "test", per_class=2, seed=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "going_modular/train.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    epochs = re.findall(r"Epoch: (\d+) \| train_loss: [\d.]+ \| train_acc: [\d.]+ \| test_loss: [\d.]+ \| test_acc: [\d.]+",
                        done.stdout)
    assert epochs == ["1", "2", "3", "4", "5"], done.stdout[-2000:]
    saved = tmp_path / "models" / "05_going_modular_script_mode_tinyvgg_model.pth"
    model = TinyVGG(input_shape=3, hidden_units=10, output_shape=3)
    model.load_state_dict(torch.load(saved, weights_only=True))
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 3)


def test_old_import_paths_still_work():
    """Names that moved to their own modules are the same objects under their old module."""
    from going_modular import (atomic, checkpoints, config, data_cache, data_setup, distributed,
                               mixed_precision, samplers)
    assert data_setup.TensorCacheDataset is data_cache.TensorCacheDataset
    assert data_setup.EpochShuffleSampler is samplers.EpochShuffleSampler
    assert engine.AMP_CHOICES is mixed_precision.AMP_CHOICES == (None, "bf16", "fp16")
    assert utils.save_checkpoint is checkpoints.save_checkpoint and utils.load_checkpoint is checkpoints.load_checkpoint
    assert utils.Checkpoint is checkpoints.Checkpoint and callable(atomic.atomic_save)
    assert train.TrainConfig is config.TrainConfig and train.build_parser is config.build_parser
    assert train.init_distributed is distributed.init_distributed


def test_distributed_helpers_do_nothing_in_one_process():
    from going_modular import distributed
    assert not distributed.is_distributed()
    sums = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(sums) is sums and sums.tolist() == [1.0, 2.0]
    model = torch.nn.Linear(2, 2)
    assert distributed.unwrap(model) is model
    wrapped = torch.nn.Module()
    wrapped.module = model  # what DistributedDataParallel looks like from outside
    assert distributed.unwrap(wrapped) is model
    assert distributed.init_distributed(torch.device("cpu")) == (0, 1, torch.device("cpu"))
