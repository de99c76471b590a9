"""Tests for `python -m going_modular.train`: real processes (also under torchrun) and its error messages."""
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict

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


def test_one_epoch_in_a_process(single_process, data):
    result, output = single_process
    assert result.returncode == 0, result.stderr
    assert "config:\n  train_dir: " in result.stdout and "\n  epochs: 1\n" in result.stdout
    assert "Epoch: 1 | train_loss: " in result.stdout and f"saved {output} (epoch 1)" in result.stdout
    checkpoint = utils.load_checkpoint(output, TinyVGG(3, 4, 3, image_size=16))
    assert checkpoint.class_names == CLASSES and checkpoint.epoch == 1
    assert checkpoint.config == {**asdict(train.TrainConfig()), "train_dir": str(data[0]),
                                 "test_dir": str(data[1]), "epochs": 1, "batch_size": 4, "image_size": 16,
                                 "hidden_units": 4, "num_workers": 0, "device": "cpu", "output": str(output)}
    assert f"test_acc: {checkpoint.history['test_acc'][0]:.4f}" in result.stdout


def test_dry_run_in_a_process(data, tmp_path):
    output = tmp_path / "dry.pth"
    result = run(["-m", "going_modular.train", *data_flags(data), "--output", output, "--dry-run"])
    assert result.returncode == 0, result.stderr
    assert "dry run: one train batch and one test batch" in result.stdout
    assert result.stdout.count("Epoch: ") == 1 and not output.exists()


def test_torchrun_writes_the_single_process_checkpoint_format(single_process, data, tmp_path):
    _, single_output = single_process
    output = tmp_path / "ddp.pth"
    result = run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "going_modular.train",
                  *data_flags(data), "--epochs", "1", "--output", output])
    assert result.returncode == 0, result.stderr
    assert "processes: 2" in result.stdout
    assert result.stdout.count("Epoch: 1 |") == 1  # only rank 0 prints

    single, ddp = torch.load(single_output, weights_only=True), torch.load(output, weights_only=True)
    assert set(ddp) == set(single) and set(ddp["state_dict"]) == set(single["state_dict"])
    assert {**ddp["config"], "output": None} == {**single["config"], "output": None}
    assert ddp["class_names"] == single["class_names"] and ddp["epoch"] == single["epoch"] == 1
    model = TinyVGG(3, 4, 3, image_size=16)
    utils.load_checkpoint(output, model)  # no "module." prefixes: DDP was unwrapped

    # The test metrics were all-reduced over both processes' shards: they are those of the whole test set
    # (9 images: rank 0 holds 0, 2, 4, 6, 8, whose classes are not balanced, so its own metrics differ).
    transform = transforms.Compose([transforms.Resize((16, 16)), transforms.ToTensor()])
    _, test_loader, _ = create_dataloaders(*data, transform, 4, 0)
    loss_fn = torch.nn.CrossEntropyLoss()
    full = engine.test_step(model, test_loader, loss_fn, "cpu")
    rank_0 = engine.test_step(model, DataLoader(Subset(test_loader.dataset, range(0, 9, 2)), batch_size=4),
                              loss_fn, "cpu")
    assert abs(full[0] - rank_0[0]) > 1e-4  # so the next line tells the two apart
    assert ddp["history"]["test_loss"][0] == pytest.approx(full[0], rel=1e-6)
    assert ddp["history"]["test_acc"][0] == pytest.approx(full[1])


def test_resume_continues_to_the_total_epochs(data, tmp_path, capsys):
    output = str(tmp_path / "run.pth")
    common = [*map(str, data_flags(data)), "--output", output]
    assert train.main([*common, "--epochs", "1"]) == 0
    assert train.main([*common, "--epochs", "2", "--resume"]) == 0
    checkpoint = utils.load_checkpoint(output)
    assert checkpoint.epoch == 2 and checkpoint.model.history["epochs"] == [1, 2]
    assert train.main([*common, "--epochs", "2", "--resume"]) == 0
    assert "has trained 2 epochs already; raise --epochs to train more" in capsys.readouterr().out


def test_resumed_run_repeats_an_uninterrupted_one(data, tmp_path):
    common = [*map(str, data_flags(data))]
    whole, halves = str(tmp_path / "whole.pth"), str(tmp_path / "halves.pth")
    assert train.main([*common, "--output", whole, "--epochs", "3"]) == 0
    assert train.main([*common, "--output", halves, "--epochs", "1"]) == 0
    assert train.main([*common, "--output", halves, "--epochs", "3", "--resume"]) == 0
    a, b = utils.load_checkpoint(whole), utils.load_checkpoint(halves)
    assert a.model.history == b.model.history  # same shuffles, same optimizer state, same metrics
    for name, tensor in a.model.state_dict().items():
        assert torch.equal(tensor, b.model.state_dict()[name]), name


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
