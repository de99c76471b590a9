"""Unit tests for going_modular/plotting.py (written by notebooks/01_pytorch_workflow.ipynb)."""
import matplotlib

matplotlib.use("Agg")  # no display needed; must come before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from going_modular.plotting import plot_loss_curves, plot_predictions  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def line_data():
    X = torch.arange(0, 1, 0.1).unsqueeze(dim=1)  # (10, 1)
    y = 0.7 * X + 0.3
    return X[:8], y[:8], X[8:], y[8:]


def offsets(collection) -> np.ndarray:
    return np.asarray(collection.get_offsets())


def engine_results():
    """The shape of dict that engine.train returns in lesson 04/05: four lists, one value per epoch."""
    return {
        "train_loss": [1.0, 0.7, 0.5],
        "train_acc": [0.40, 0.60, 0.75],
        "test_loss": [1.1, 0.8, 0.65],
        "test_acc": [0.35, 0.55, 0.70],
    }


# ---------------------------------------------------------------- plot_predictions

def test_plot_predictions_scatters_inputs_and_labels(line_data):
    X_train, y_train, X_test, y_test = line_data
    fig = plot_predictions(X_train, y_train, X_test, y_test)

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.collections) == 2
    np.testing.assert_allclose(offsets(ax.collections[0]), torch.cat([X_train, y_train], dim=1).numpy())
    np.testing.assert_allclose(offsets(ax.collections[1]), torch.cat([X_test, y_test], dim=1).numpy())
    assert ax.get_title() == "Training and testing data"
    assert ax.get_xlabel() and ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Training data", "Testing data"]


def test_plot_predictions_adds_predictions_series(line_data):
    X_train, y_train, X_test, y_test = line_data
    preds = y_test + 0.05
    fig = plot_predictions(X_train, y_train, X_test, y_test, predictions=preds)

    ax = fig.axes[0]
    assert len(ax.collections) == 3
    np.testing.assert_allclose(offsets(ax.collections[2]), torch.cat([X_test, preds], dim=1).numpy())
    assert "predictions" in ax.get_title().lower()
    assert "Predictions" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_predictions_accepts_grad_tensors_arrays_and_lists():
    weight = torch.tensor(2.0, requires_grad=True)
    X_test = torch.tensor([[0.8], [0.9]])
    preds = weight * X_test  # still attached to the graph: the helper must detach it
    fig = plot_predictions(np.array([0.0, 0.5]), [1.0, 2.0], X_test, torch.tensor([1.6, 1.8]), preds)

    np.testing.assert_allclose(offsets(fig.axes[0].collections[0]), [[0.0, 1.0], [0.5, 2.0]])
    np.testing.assert_allclose(offsets(fig.axes[0].collections[2]), [[0.8, 1.6], [0.9, 1.8]])


def test_plot_predictions_accepts_half_precision_tensors(line_data):
    X_train, y_train, X_test, y_test = (t.to(torch.bfloat16) for t in line_data)
    fig = plot_predictions(X_train, y_train, X_test, y_test)
    assert offsets(fig.axes[0].collections[0]).shape == (8, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_plot_predictions_moves_gpu_tensors_to_cpu(line_data):
    on_gpu = [t.to("cuda") for t in line_data]
    fig = plot_predictions(*on_gpu, predictions=on_gpu[3])
    np.testing.assert_allclose(offsets(fig.axes[0].collections[2])[:, 1], line_data[3].squeeze(1).numpy())


def test_plot_predictions_rejects_mismatched_lengths(line_data):
    X_train, y_train, X_test, y_test = line_data
    with pytest.raises(ValueError, match=r"predictions has 1 values but test_data has 2"):
        plot_predictions(X_train, y_train, X_test, y_test, predictions=y_test[:1])
    with pytest.raises(ValueError, match=r"train_labels has 7 values but train_data has 8"):
        plot_predictions(X_train, y_train[:7], X_test, y_test)


def test_plot_predictions_rejects_more_than_one_feature(line_data):
    _, y_train, X_test, y_test = line_data
    with pytest.raises(ValueError, match=r"train_data has shape \(8, 2\).*Pass shape \(N,\) or \(N, 1\)"):
        plot_predictions(torch.zeros(8, 2), y_train, X_test, y_test)


# ---------------------------------------------------------------- plot_loss_curves

def test_plot_loss_curves_loss_only_has_one_panel_with_default_epochs():
    results = {"train_loss": [0.9, 0.5, 0.3, 0.2], "test_loss": [1.0, 0.6, 0.4, 0.35]}
    fig = plot_loss_curves(results)

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    train_line, test_line = ax.get_lines()
    np.testing.assert_allclose(train_line.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(train_line.get_ydata(), results["train_loss"])
    np.testing.assert_allclose(test_line.get_ydata(), results["test_loss"])
    assert "loss" in ax.get_title().lower()
    assert ax.get_xlabel() == "epoch"
    assert ax.get_ylabel() == "loss"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]


def test_plot_loss_curves_engine_results_get_a_loss_and_an_accuracy_panel():
    results = engine_results()
    fig = plot_loss_curves(results)

    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert "loss" in loss_ax.get_title().lower() and "accuracy" in acc_ax.get_title().lower()
    assert acc_ax.get_xlabel() == "epoch" and acc_ax.get_ylabel() == "accuracy"
    np.testing.assert_allclose(acc_ax.get_lines()[0].get_ydata(), results["train_acc"])
    np.testing.assert_allclose(acc_ax.get_lines()[1].get_ydata(), results["test_acc"])
    np.testing.assert_allclose(loss_ax.get_lines()[1].get_ydata(), results["test_loss"])


def test_plot_loss_curves_uses_given_epochs_for_x():
    results = {"epochs": [0, 10, 20], "train_loss": [0.5, 0.3, 0.1], "test_loss": [0.6, 0.4, 0.2]}
    fig = plot_loss_curves(results)
    for line in fig.axes[0].get_lines():
        np.testing.assert_allclose(line.get_xdata(), [0, 10, 20])


def test_plot_loss_curves_accepts_0d_tensors_and_tensors_with_grad():
    w = torch.tensor(1.0, requires_grad=True)
    results = {
        "train_loss": [w * 0.5, w * 0.25],  # attached to the graph, as if appended without .item()
        "test_loss": [torch.tensor(0.75), torch.tensor(0.5)],
    }
    fig = plot_loss_curves(results)
    train_line, test_line = fig.axes[0].get_lines()
    np.testing.assert_allclose(train_line.get_ydata(), [0.5, 0.25])
    np.testing.assert_allclose(test_line.get_ydata(), [0.75, 0.5])


def test_plot_loss_curves_names_the_missing_key_and_the_keys_it_got():
    with pytest.raises(ValueError, match=r"missing 'test_loss'; got keys \['train_loss', 'train_acc'\]"):
        plot_loss_curves({"train_loss": [1.0], "train_acc": [0.5]})
    with pytest.raises(ValueError, match=r"missing 'train_loss' and 'test_loss'; got keys \['loss'\]"):
        plot_loss_curves({"loss": [1.0]})


def test_plot_loss_curves_rejects_lists_of_different_lengths():
    results = engine_results()
    results["test_acc"] = results["test_acc"][:2]
    with pytest.raises(ValueError, match=r"differ in length \(train_loss: 3, test_loss: 3, train_acc: 3, test_acc: 2"):
        plot_loss_curves(results)


def test_plot_loss_curves_rejects_epochs_of_a_different_length():
    with pytest.raises(ValueError, match=r"differ in length .*epochs: 3"):
        plot_loss_curves({"train_loss": [1.0, 0.5], "test_loss": [1.0, 0.6], "epochs": [0, 10, 20]})


def test_plot_loss_curves_rejects_empty_lists():
    with pytest.raises(ValueError, match=r"'train_loss'\] is empty"):
        plot_loss_curves({"train_loss": [], "test_loss": []})


def test_plot_loss_curves_rejects_non_dicts_and_non_numbers():
    with pytest.raises(TypeError, match=r"expects a dict of lists, got list"):
        plot_loss_curves([0.5, 0.4])
    with pytest.raises(TypeError, match=r"results\['test_loss'\] must be a list of numbers"):
        plot_loss_curves({"train_loss": [0.5], "test_loss": ["high"]})
