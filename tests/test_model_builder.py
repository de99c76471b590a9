"""Unit tests for going_modular/model_builder.py."""
import pytest
import torch
from torch import nn

from going_modular.model_builder import MODELS, CourseModel, TinyVGG, tinyvgg


@pytest.mark.parametrize("image_size, side", [(64, 13), (32, 5), (16, 1)])
def test_output_and_feature_shapes(image_size, side):
    torch.manual_seed(0)
    model = TinyVGG(input_shape=3, hidden_units=10, output_shape=3, image_size=image_size)
    x = torch.rand(2, 3, image_size, image_size)
    features = model.forward_features(x)
    assert features.shape == (2, 10, side, side)
    assert model.classifier[1].in_features == 10 * side * side
    logits = model(x)
    assert logits.shape == (2, 3)
    assert torch.equal(logits, model.forward_head(features))
    assert torch.isfinite(logits).all()


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = TinyVGG(3, 8, 4, image_size=32)
    loss = nn.CrossEntropyLoss()(model(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0, name


def test_state_dict_keys_match_the_original_course():
    keys = list(TinyVGG(3, 10, 3).state_dict())
    assert keys == [
        "conv_block_1.0.weight", "conv_block_1.0.bias", "conv_block_1.2.weight", "conv_block_1.2.bias",
        "conv_block_2.0.weight", "conv_block_2.0.bias", "conv_block_2.2.weight", "conv_block_2.2.bias",
        "classifier.1.weight", "classifier.1.bias",
    ]
    assert TinyVGG(3, 10, 3).classifier[1].in_features == 10 * 13 * 13  # the original 64x64 model


def test_wrong_input_shapes_are_explained():
    model = TinyVGG(3, 4, 3, image_size=32)
    with pytest.raises(ValueError, match=r"Input shape \(1, 3, 64, 64\).*resize to 32x32.*image_size=64"):
        model(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"Input shape \(3, 32, 32\).*unsqueeze\(0\)"):
        model(torch.rand(3, 32, 32))


def test_image_size_too_small():
    with pytest.raises(ValueError, match="image_size=12 is too small for TinyVGG; use 16 or more"):
        TinyVGG(3, 4, 3, image_size=12)


def test_course_model_blueprint():
    model = TinyVGG(3, 4, 3)
    assert isinstance(model, CourseModel) and isinstance(model, nn.Module)
    assert model.name == "TinyVGG" and model.history == {}
    assert TinyVGG(3, 4, 3, name="tinyvgg_aug").name == "tinyvgg_aug"
    assert "history" not in model.state_dict() and "name" not in model.state_dict()


def test_registry_builds_models_by_name():
    assert MODELS["tinyvgg"] is tinyvgg
    model = MODELS["tinyvgg"](5, hidden_units=6, image_size=32)
    assert isinstance(model, TinyVGG) and model.image_size == 32
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 5)
    assert model.conv_block_1[0].in_channels == 3 and model.conv_block_1[0].out_channels == 6


def test_missing_batch_dimension_is_named():
    model = TinyVGG(3, 4, 3)  # image_size=64
    with pytest.raises(ValueError, match=r"Input shape \(3, 64, 64\) is missing the batch dimension.*"
                                         r"add it with x\.unsqueeze\(0\)\.$") as info:
        model(torch.rand(3, 64, 64))
    assert "resize" not in str(info.value) and "image_size=" not in str(info.value)  # the size is already right
    with pytest.raises(ValueError, match=r"\(3, 32, 32\) is missing the batch dimension.*unsqueeze\(0\), "
                                         r"and resize it to 64x64"):
        model(torch.rand(3, 32, 32))
    assert model(torch.rand(3, 64, 64).unsqueeze(0)).shape == (1, 3)  # the fix the message names works


def test_course_model_is_abstract_until_forward_is_defined():
    """CourseModel is an abstract base: a subclass without forward fails when built, not at its first batch."""
    assert getattr(CourseModel.forward, "__isabstractmethod__", False)

    class Forgetful(CourseModel):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 2)

    with pytest.raises(TypeError, match=r"Can't instantiate abstract class Forgetful.*forward"):
        Forgetful()
    with pytest.raises(TypeError, match="abstract"):
        CourseModel()

    class Linear(Forgetful):
        def forward(self, x):
            return self.layer(x)

    model = Linear()  # defining forward is all it takes
    assert model(torch.rand(3, 4)).shape == (3, 2) and model.name == "Linear"


def test_abstract_blueprint_still_saves_compiles_and_wraps(tmp_path):
    """ABCMeta sits on nn.Module's metaclass without trouble: torch.save (whole model and weights),
    torch.compile and the DistributedDataParallel unwrap path all see an ordinary module."""
    from going_modular.distributed import unwrap
    torch.manual_seed(0)
    model = TinyVGG(3, 4, 3, image_size=16)
    x = torch.rand(2, 3, 16, 16)
    torch.save(model, tmp_path / "whole.pt")
    whole = torch.load(tmp_path / "whole.pt", weights_only=False)  # our own file: the class is importable
    model.eval(), whole.eval()
    assert torch.equal(whole(x), model(x)) and isinstance(whole, CourseModel)
    compiled = torch.compile(model, backend="eager")  # the graph capture, without a C++ compiler
    assert torch.allclose(compiled(x), model(x))
    wrapped = nn.Module()
    wrapped.module = model  # what DistributedDataParallel looks like from outside
    assert unwrap(wrapped) is model
