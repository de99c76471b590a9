"""Unit tests for going_modular/classification.py (written by notebooks/02_pytorch_classification.ipynb)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from torch import nn  # noqa: E402

from going_modular.classification import accuracy_fn, plot_decision_boundary  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# --- accuracy_fn -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("y_true", "y_pred", "expected"),
    [
        ([1, 0, 1, 1], [1, 0, 1, 1], 100.0),
        ([1, 0, 1, 1], [0, 1, 0, 0], 0.0),
        ([1, 0, 1, 1], [1, 0, 0, 1], 75.0),
        ([2, 0, 1], [2, 1, 1], 200 / 3),
    ],
)
def test_accuracy_fn_is_a_percentage(y_true, y_pred, expected):
    result = accuracy_fn(torch.tensor(y_true), torch.tensor(y_pred))
    assert isinstance(result, float)
    assert result == pytest.approx(expected)


def test_accuracy_fn_compares_float_labels_with_rounded_probabilities():
    y_true = torch.tensor([1.0, 0.0, 1.0, 0.0])
    y_pred = torch.round(torch.sigmoid(torch.tensor([3.0, -2.0, -0.5, 0.2])))
    assert accuracy_fn(y_true, y_pred) == pytest.approx(50.0)


def test_accuracy_fn_accepts_numpy_arrays():
    assert accuracy_fn(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 0])) == pytest.approx(75.0)


def test_accuracy_fn_rejects_a_column_against_a_vector():
    # Unchecked, (4,) == (4, 1) broadcasts to a (4, 4) comparison and gives a wrong number.
    y_true = torch.tensor([1.0, 0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"y_true has shape \(4,\) but y_pred has shape \(4, 1\).*squeeze"):
        accuracy_fn(y_true, y_true.unsqueeze(dim=1))


def test_accuracy_fn_rejects_labels_of_another_split():
    with pytest.raises(ValueError, match=r"\(800,\).*\(200,\)"):
        accuracy_fn(torch.zeros(800), torch.zeros(200))


def test_accuracy_fn_rejects_empty_labels():
    with pytest.raises(ValueError, match="empty"):
        accuracy_fn(torch.tensor([]), torch.tensor([]))


# --- plot_decision_boundary --------------------------------------------------------------

def binary_model() -> nn.Module:
    """One logit, x0: class 1 right of the line x0 = 0, class 0 left of it."""
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0]]))
        model.bias.zero_()
    return model


def three_class_model() -> nn.Module:
    """Logits (-x0, 0, x0): class 0 left of x0 = 0, class 2 right of it, class 1 nowhere."""
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]))
        model.bias.zero_()
    return model


def sample_data(num_classes: int):
    X = torch.tensor([[-1.0, -1.0], [-0.5, 0.8], [0.6, -0.3], [1.0, 1.0]])
    y = torch.tensor([0, 0, num_classes - 1, num_classes - 1])
    return X, y


def predicted_regions(ax: Axes) -> torch.Tensor:
    """The class the helper coloured at each grid point, as a (rows, columns) tensor."""
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    return torch.as_tensor(np.asarray(mesh.get_array()))


class Recorder(nn.Module):
    """Wraps a model and records the device, dtype and inference mode of every input."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.calls = []

    def forward(self, x):
        self.calls.append((x.device, x.dtype, torch.is_inference_mode_enabled()))
        return self.model(x)


def test_binary_model_regions_follow_sigmoid_and_round():
    # X spans x0 in [-1, 1], so the grid is symmetric: left half x0 < 0, right half x0 > 0.
    X, y = sample_data(num_classes=2)
    regions = predicted_regions(plot_decision_boundary(binary_model(), X, y, resolution=21))
    assert regions.shape == (21, 21)
    assert (regions[:, :10] == 0).all(), "a negative logit should be coloured class 0"
    assert (regions[:, 11:] == 1).all(), "a positive logit should be coloured class 1"


def test_multiclass_model_regions_follow_softmax_and_argmax():
    X, y = sample_data(num_classes=3)
    regions = predicted_regions(plot_decision_boundary(three_class_model(), X, y, resolution=21))
    assert (regions[:, :10] == 0).all() and (regions[:, 11:] == 2).all()
    assert not (regions == 1).any(), "class 1 never has the largest logit, so it should colour nothing"


def test_returns_titled_labelled_axes_and_draws_on_the_given_one():
    X, y = sample_data(num_classes=2)
    ax = plot_decision_boundary(binary_model(), X, y)
    assert isinstance(ax, Axes)
    assert ax.get_title() == "Decision boundary"
    assert ax.get_xlabel() and ax.get_ylabel()

    fig, given = plt.subplots()
    returned = plot_decision_boundary(binary_model(), X, y, ax=given, title="Test split")
    assert returned is given
    assert given.get_title() == "Test split"


@pytest.mark.parametrize("start_in_train_mode", [True, False])
def test_restores_train_or_eval_mode(start_in_train_mode):
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(p=0.5), nn.Linear(8, 1))
    model.train(start_in_train_mode)
    X, y = sample_data(num_classes=2)
    plot_decision_boundary(model, X, y)
    assert model.training is start_in_train_mode
    assert all(m.training is start_in_train_mode for m in model.modules())


def test_evaluates_in_eval_mode_even_when_called_in_train_mode():
    seen = []
    model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(p=0.5), nn.Linear(8, 1))
    model[1].register_forward_hook(lambda module, inputs, output: seen.append(module.training))
    model.train()
    plot_decision_boundary(model, *sample_data(num_classes=2))
    assert seen == [False]


def test_restores_mode_when_the_model_raises():
    class Broken(nn.Linear):
        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken(2, 1).train()
    with pytest.raises(RuntimeError, match="boom"):
        plot_decision_boundary(model, *sample_data(num_classes=2))
    assert model.training


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_models_device_and_leaves_the_model_there(device):
    model = Recorder(binary_model()).to(device)
    X, y = sample_data(num_classes=2)
    plot_decision_boundary(model, X, y, resolution=11)
    assert len(model.calls) == 1
    input_device, input_dtype, inference = model.calls[0]
    assert input_device.type == device
    assert input_dtype == torch.float32
    assert inference, "the grid should be evaluated under torch.inference_mode()"
    assert all(p.device.type == device for p in model.parameters())


def test_moves_the_grid_to_the_models_dtype():
    model = Recorder(binary_model()).to(torch.float64)
    plot_decision_boundary(model, *sample_data(num_classes=2), resolution=5)
    assert model.calls[0][1] == torch.float64


def test_resolution_sets_the_number_of_grid_points():
    seen = []
    model = binary_model()
    model.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    plot_decision_boundary(model, *sample_data(num_classes=2), resolution=7)
    assert seen == [torch.Size([49, 2])]


def test_leaves_parameters_and_gradients_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 4))
    before = [p.detach().clone() for p in model.parameters()]
    plot_decision_boundary(model, *sample_data(num_classes=4))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_accepts_numpy_inputs():
    X, y = sample_data(num_classes=2)
    regions = predicted_regions(plot_decision_boundary(binary_model(), X.numpy(), y.numpy(), resolution=21))
    assert (regions[:, :10] == 0).all() and (regions[:, 11:] == 1).all()


def test_rejects_inputs_without_two_features():
    with pytest.raises(ValueError, match=r"X has shape \(4, 3\); expected \(N, 2\)"):
        plot_decision_boundary(binary_model(), torch.zeros(4, 3), torch.zeros(4))


def test_rejects_labels_that_do_not_match_the_samples():
    with pytest.raises(ValueError, match=r"y has shape \(3,\); expected \(4,\)"):
        plot_decision_boundary(binary_model(), torch.zeros(4, 2), torch.zeros(3))


def test_rejects_a_resolution_below_two():
    with pytest.raises(ValueError, match="resolution=1"):
        plot_decision_boundary(binary_model(), *sample_data(num_classes=2), resolution=1)
