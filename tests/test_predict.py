"""Unit tests for going_modular/predictions.py and the `python -m going_modular.predict` CLI."""
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed; must come before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torchvision import transforms  # noqa: E402

from going_modular import predict  # noqa: E402
from going_modular.model_builder import tinyvgg  # noqa: E402
from going_modular.predictions import pred_and_plot_image, predict_image  # noqa: E402
from going_modular.utils import save_checkpoint, save_model  # noqa: E402

CLASSES = ["pizza", "steak", "sushi"]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return tinyvgg(3, hidden_units=4, image_size=16)


def expected_prediction(model, image_file):
    """The prediction worked out by hand: resize, to float, add the batch dimension."""
    from PIL import Image
    x = transforms.functional.to_tensor(Image.open(image_file).convert("RGB").resize((16, 16), Image.BILINEAR))
    model.eval()
    with torch.inference_mode():
        probs = torch.softmax(model(x.unsqueeze(0)), dim=1)[0]
    return CLASSES[int(probs.argmax())], float(probs.max())


def test_predict_image_matches_a_hand_computation(model, image_file):
    model.train()
    label, prob = predict_image(model, image_file, CLASSES)
    assert model.training  # the model's mode is given back
    expected = expected_prediction(model, image_file)
    assert label == expected[0] and prob == pytest.approx(expected[1], abs=1e-3)
    assert 0.0 < prob <= 1.0


def test_uint8_transform_and_explicit_device(model, image_file):
    uint8 = transforms.Compose([transforms.Resize((16, 16)), transforms.PILToTensor()])  # dtype error avoided
    label, prob = predict_image(model, image_file, CLASSES, transform=uint8, device="cpu")
    expected = expected_prediction(model, image_file)
    assert label == expected[0] and prob == pytest.approx(expected[1], abs=2e-2)


def test_pred_and_plot_image_titles_the_prediction(model, image_file):
    label, prob = pred_and_plot_image(model, CLASSES, image_file)  # the original course's argument order
    ax = plt.gcf().axes[0]
    assert ax.get_title() == f"Pred: {label} | Prob: {prob:.3f}"
    assert ax.get_images()[0].get_array().shape == (24, 24, 3)
    plt.close("all")


def test_pred_and_plot_image_resizes_to_image_size(model, image_file):
    # The image is 24x24; image_size=(16, 16) resizes it to what this TinyVGG(image_size=16) accepts.
    label, prob = pred_and_plot_image(model=model, class_names=CLASSES, image_path=image_file, image_size=(16, 16))
    assert (label, prob) == predict_image(model, image_file, CLASSES)
    with pytest.raises(ValueError):  # image_size is really used: 20x20 is not what this model takes
        pred_and_plot_image(model, CLASSES, image_file, image_size=(20, 20))
    plt.close("all")


def test_missing_and_unreadable_images(model, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No image file at '.*nothing.jpg'"):
        predict_image(model, tmp_path / "nothing.jpg", CLASSES)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=r"Could not read '.*notes.jpg' as an image"):
        predict_image(model, text, CLASSES)


def run_predict(*args):
    return subprocess.run([sys.executable, "-m", "going_modular.predict", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_predict_cli(model, image_file, tmp_path):
    checkpoint = save_checkpoint(tmp_path / "ck.pth", model,
                                 {"model": "tinyvgg", "hidden_units": 4, "image_size": 16}, CLASSES)
    second = tmp_path / "second.jpg"
    second.write_bytes(image_file.read_bytes())
    result = run_predict("--checkpoint", checkpoint, "--device", "cpu", image_file, second)
    assert result.returncode == 0, result.stderr
    label, prob = expected_prediction(model, image_file)
    assert result.stdout.splitlines() == [f"{image_file}: {label} ({prob:.3f})", f"{second}: {label} ({prob:.3f})"]


def test_predict_cli_errors(model, image_file, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "ck.pth", model,
                                 {"model": "tinyvgg", "hidden_units": 4, "image_size": 16}, CLASSES)
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--checkpoint", str(checkpoint), str(image_file), str(tmp_path / "gone.jpg")])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and captured.out == ""
    assert f"error: no such image file: {tmp_path / 'gone.jpg'}" in captured.err
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--checkpoint", str(tmp_path / "none.pth"), str(image_file)])
    assert exit_info.value.code == 2
    assert "none.pth: no such file; train one with python -m going_modular.train" in capsys.readouterr().err


def test_predict_cli_takes_bare_weights_with_the_model_flags(model, image_file, tmp_path, capsys):
    weights = save_model(model, tmp_path, "weights.pth")  # a bare state_dict, as lessons 01-05 save models
    capsys.readouterr()
    flags = ["--model", "tinyvgg", "--class-names", "pizza, steak,sushi", "--hidden-units", "4", "--image-size", "16"]
    assert predict.main(["--checkpoint", str(weights), "--device", "cpu", *flags, str(image_file)]) == 0
    label, prob = expected_prediction(model, image_file)
    assert capsys.readouterr().out.splitlines() == [f"{image_file}: {label} ({prob:.3f})"]


def test_predict_cli_bare_weights_defaults_match_save_time(tmp_path, image_file, capsys):
    torch.manual_seed(1)
    default = tinyvgg(3)  # hidden_units=10, image_size=64: the lesson's and train.py's defaults
    weights = save_model(default, tmp_path, "default.pth")
    capsys.readouterr()
    assert predict.main(["--checkpoint", str(weights), "--model", "tinyvgg", "--class-names", "pizza,steak,sushi",
                         str(image_file)]) == 0
    label, prob = predict_image(default, image_file, CLASSES)
    assert capsys.readouterr().out.strip() == f"{image_file}: {label} ({prob:.3f})"


@pytest.mark.parametrize("flags, message", [
    ([], r"holds bare weights \(a state_dict, as utils.save_model writes\).*name them, e.g. --model tinyvgg "
         r"--class-names pizza,steak,sushi"),
    (["--model", "tinyvgg"], r"holds bare weights.*--class-names"),
    (["--class-names", "pizza,steak,sushi"], r"holds bare weights.*--model tinyvgg"),
    (["--model", "tinyvgg", "--class-names", "pizza,steak", "--hidden-units", "4", "--image-size", "16"],
     r"is a model with 3 outputs, but --class-names names 2 classes"),
    (["--model", "tinyvgg", "--class-names", "pizza,steak,sushi", "--image-size", "16"],
     r"does not fit --model tinyvgg --hidden-units 10 --image-size 16: conv_block_1.0.weight is \(4, 3, 3, 3\) "
     r"in the file and \(10, 3, 3, 3\) in the model; pass the values the model was built with"),
    (["--model", "tinyvgg", "--class-names", "pizza,,sushi"], r"give each class once"),
    (["--model", "resnet"], r"argument --model: invalid choice: 'resnet'"),
])
def test_predict_cli_bare_weights_errors(model, image_file, tmp_path, capsys, flags, message):
    weights = save_model(model, tmp_path, "weights.pth")
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--checkpoint", str(weights), *flags, str(image_file)])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and f"{image_file}:" not in captured.out
    assert re.search(message, captured.err), captured.err


def test_predict_cli_checkpoint_refuses_model_flags(model, image_file, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "ck.pth", model,
                                 {"model": "tinyvgg", "hidden_units": 4, "image_size": 16}, CLASSES)
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--checkpoint", str(checkpoint), "--class-names", "a,b,c", str(image_file)])
    assert exit_info.value.code == 2
    assert "is a checkpoint that names its own model and classes; leave out --model and --class-names" in \
        capsys.readouterr().err


def test_predict_cli_unreadable_file(image_file, tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a torch file")
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--checkpoint", str(junk), str(image_file)])
    assert exit_info.value.code == 2
    assert "could not read" in capsys.readouterr().err
