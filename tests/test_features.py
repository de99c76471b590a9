"""Unit tests for going_modular/features.py."""
import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision import transforms

from going_modular import engine
from going_modular.data_setup import create_dataloaders
from going_modular.features import (FrozenBackbone, backbone_and_head, extract_features,
                                    feature_dataloaders)


class TinyEfficientNetLayout(nn.Module):
    """The torchvision EfficientNet layout in miniature: features (with BatchNorm), avgpool, classifier."""

    def __init__(self, classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(6, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def tiny_model() -> TinyEfficientNetLayout:
    """Seeded, with BatchNorm running statistics that are not the defaults (as a pretrained net's)."""
    torch.manual_seed(0)
    model = TinyEfficientNetLayout()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 12, 12) * 2)
    return model.eval()


@pytest.fixture
def images():
    """10 images (3, 12, 12) with labels 0, 1, 2, 0, ... in batches of 4 (the last holds 2), unshuffled."""
    X = torch.rand(10, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    y = torch.arange(10) % 3
    return DataLoader(TensorDataset(X, y), batch_size=4), X, y


def test_features_shape_dtype_and_order(images):
    loader, X, y = images
    model = tiny_model()
    backbone, _ = backbone_and_head(model)
    cached = extract_features(backbone, loader, "cpu")
    features, labels = cached.tensors
    assert features.shape == (10, 6) and features.dtype == torch.float32 and features.device.type == "cpu"
    assert labels.dtype == torch.int64 and torch.equal(labels, y)
    with torch.no_grad():
        expected = backbone(X)  # in eval mode: the running statistics
    torch.testing.assert_close(features, expected)


def test_features_carry_no_graph_and_leave_no_gradients(images):
    loader, _, _ = images
    model = tiny_model()
    backbone, _ = backbone_and_head(model)
    features, _ = extract_features(backbone, loader, "cpu").tensors
    assert not features.requires_grad and features.grad_fn is None
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # extracting does not freeze anything itself


def test_eval_mode_is_used_and_each_module_mode_restored(images):
    loader, X, _ = images
    model = tiny_model()
    backbone, _ = backbone_and_head(model)
    backbone.train()
    model.features[4].eval()  # a mix of modes must come back as it was
    modes = [m.training for m in backbone.modules()]
    features, _ = extract_features(backbone, loader, "cpu").tensors
    assert [m.training for m in backbone.modules()] == modes
    with torch.no_grad():
        train_mode = backbone(X)  # batch statistics: not what the cache holds
    assert not torch.allclose(features, train_mode, atol=1e-4)


def test_bf16_features_are_stored_as_float32(images):
    loader, X, _ = images
    backbone, _ = backbone_and_head(tiny_model())
    features, _ = extract_features(backbone, loader, "cpu", amp="bf16").tensors
    assert features.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(features, backbone(X), atol=0.05, rtol=0.05)
    with pytest.raises(ValueError, match="amp='fp8'"):
        extract_features(backbone, loader, "cpu", amp="fp8")


def test_bad_input_is_named():
    backbone, _ = backbone_and_head(tiny_model())
    empty = DataLoader(TensorDataset(torch.zeros(0, 3, 12, 12), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        extract_features(backbone, empty, "cpu")
    loader = DataLoader(TensorDataset(torch.rand(4, 3, 12, 12), torch.zeros(4, dtype=torch.long)), batch_size=2)
    unflattened = nn.Sequential(tiny_model().features, nn.AdaptiveAvgPool2d(1))
    with pytest.raises(ValueError, match=r"into \(2, 6, 1, 1\).*nn.Flatten"):
        extract_features(unflattened, loader, "cpu")
    with pytest.raises(ValueError, match="expected \\(X, y\\)"):
        extract_features(backbone, [torch.rand(2, 3, 12, 12)], "cpu")
    with pytest.raises(TypeError, match="Linear"):
        backbone_and_head(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="batch_size=0"):
        feature_dataloaders(backbone, loader, loader, "cpu", batch_size=0)


def test_backbone_and_head_recompose_the_model(images):
    _, X, _ = images
    model = tiny_model()
    backbone, head = backbone_and_head(model)
    assert head is model.classifier and backbone[0] is model.features  # shared, not copied
    with torch.no_grad():
        torch.testing.assert_close(head(backbone(X)), model(X))


def _check_split(model, x):
    """backbone_and_head(model) cuts before the head, shares everything else, and leaves `model` as it was."""
    head_before = [name for name, _ in model.named_children()]
    with torch.no_grad():
        logits = model(x)
    backbone, head = backbone_and_head(model)
    with torch.no_grad():
        features = backbone(x)
        assert features.ndim == 2 and features.shape[0] == len(x)
        torch.testing.assert_close(head(features), logits)
        torch.testing.assert_close(model(x), logits)  # the model still has its head
    assert [name for name, _ in model.named_children()] == head_before
    head_params = {id(p) for p in head.parameters()}
    model_params = {id(p) for p in model.parameters()}
    backbone_params = {id(p) for p in backbone.parameters()}
    assert head_params and not head_params & backbone_params  # the head is not part of the backbone
    assert backbone_params | head_params == model_params  # and nothing was copied
    FrozenBackbone(backbone)
    assert all(p.requires_grad for p in head.parameters())  # freezing the backbone leaves the head trainable
    assert not any(p.requires_grad for p in backbone.parameters())
    return features, head


def test_backbone_and_head_of_a_torchvision_vit():
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=8,
                            mlp_dim=16, num_classes=3).eval()
    features, head = _check_split(vit, torch.rand(2, 3, 16, 16))
    assert features.shape == (2, 8) and head is vit.heads


def test_backbone_and_head_of_the_course_vit():
    """going_modular.vit.ViT: timm's forward_features/forward_head, its head in `heads` (found without naming the class)."""
    from going_modular.vit import ViT

    torch.manual_seed(0)
    vit = ViT(img_size=32, patch_size=16, num_classes=3, embedding_dim=16, depth=1, num_heads=2, mlp_size=32).eval()
    nn.init.normal_(vit.heads[0].weight)  # the ViT starts with a zero head: make the comparison mean something
    features, head = _check_split(vit, torch.rand(2, 3, 32, 32))
    assert features.shape == (2, 16) and head is vit.heads


def test_backbone_and_head_of_the_vit_standin():
    from course.vit_standin import load_student

    student = load_student()
    features, head = _check_split(student, torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0)))
    assert features.shape == (2, 192) and head is student.heads


def test_backbone_and_head_of_timm_and_torchvision_cnns():
    """timm's get_classifier() (here nested: ConvNeXt's head.fc) and a head named `fc` (ResNet)."""
    import timm
    from torchvision.models import resnet18

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    convnext = timm.create_model("convnext_atto", pretrained=False, num_classes=3).eval()
    features, head = _check_split(convnext, x)
    assert head is convnext.head.fc and features.shape == (2, convnext.num_features)
    resnet = resnet18(num_classes=3).eval()
    features, head = _check_split(resnet, x)
    assert head is resnet.fc and features.shape == (2, 512)


def test_backbone_and_head_of_the_course_lite0():
    from course.weights import get_weights

    model = get_weights("efficientnet_b0", data="offline", verbose=False).build()
    backbone, head = backbone_and_head(model)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = backbone(x)
        assert features.shape == (2, 1280)
        torch.testing.assert_close(head(features), model(x))


def test_frozen_backbone_stays_in_eval_mode_and_gets_no_gradients():
    model = tiny_model()
    frozen = FrozenBackbone(backbone_and_head(model)[0])
    whole = nn.Sequential(frozen, model.classifier).train()
    assert not any(m.training for m in frozen.modules())
    assert model.classifier.training
    whole(torch.rand(4, 3, 12, 12)).sum().backward()
    assert all(p.grad is None for p in model.features.parameters())
    assert all(p.grad is not None for p in model.classifier.parameters())


def _train_head(train_loader, test_loader, head, model, epochs):
    torch.manual_seed(123)  # the head's Dropout draws the same masks in both runs
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    return engine.train(model, train_loader, test_loader, optimizer, nn.CrossEntropyLoss(), epochs, "cpu",
                        progress=False, verbose=False)


def test_cached_head_training_equals_the_live_frozen_backbone(food_dirs):
    """The oracle: engine.train on cached features == engine.train on images through a frozen backbone."""
    transform = transforms.Compose([transforms.Resize((12, 12)), transforms.ToTensor()])
    train_images, test_images, _ = create_dataloaders(*food_dirs, transform, 4, 0, seed=7, cache=True)

    live = tiny_model()
    live_backbone, live_head = backbone_and_head(live)
    live_model = nn.Sequential(FrozenBackbone(live_backbone), live_head)
    live_results = _train_head(train_images, test_images, live_head, live_model, epochs=3)

    cached = tiny_model()
    cached_backbone, cached_head = backbone_and_head(cached)
    feat_train, feat_test = feature_dataloaders(cached_backbone, train_images, test_images, "cpu",
                                                batch_size=4, seed=7)
    cached_results = _train_head(feat_train, feat_test, cached_head, cached_head, epochs=3)

    for key in live_results:
        assert cached_results[key] == pytest.approx(live_results[key], abs=1e-5), key
    for a, b in zip(live_head.parameters(), cached_head.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(live.features[1].running_mean, tiny_model().features[1].running_mean)

    # Freezing with requires_grad alone leaves BatchNorm in train mode: a different computation.
    naive = tiny_model()
    naive.features.requires_grad_(False)
    naive_results = _train_head(train_images, test_images, naive.classifier, naive, epochs=3)
    assert naive_results["train_loss"] != pytest.approx(live_results["train_loss"], abs=1e-5)


def test_feature_loaders_shuffle_like_the_image_loaders(food_dirs):
    transform = transforms.Compose([transforms.Resize((12, 12)), transforms.ToTensor()])
    train_images, test_images, _ = create_dataloaders(*food_dirs, transform, 4, 0, seed=3, cache=True)
    backbone, _ = backbone_and_head(tiny_model())
    feat_train, feat_test = feature_dataloaders(backbone, train_images, test_images, "cpu", batch_size=4, seed=3)
    assert len(feat_train.dataset) == 9 and len(feat_test.dataset) == 6
    for epoch in range(2):
        train_images.sampler.set_epoch(epoch)
        feat_train.sampler.set_epoch(epoch)
        image_labels = torch.cat([y for _, y in train_images])
        feature_labels = torch.cat([y for _, y in feat_train])
        assert torch.equal(image_labels, feature_labels)
    orders = []
    for epoch in range(2):
        feat_train.sampler.set_epoch(epoch)
        orders.append(torch.cat([x[:, 0] for x, _ in feat_train]))
    assert not torch.equal(orders[0], orders[1])  # a new shuffle each epoch
    assert torch.equal(torch.cat([y for _, y in feat_test]), torch.cat([y for _, y in test_images]))


def test_feature_loaders_with_a_validation_split(food_dirs):
    transform = transforms.Compose([transforms.Resize((12, 12)), transforms.ToTensor()])
    train_images, val_images, test_images, _ = create_dataloaders(*food_dirs, transform, 4, 0, seed=3, cache=True,
                                                                  val_fraction=0.34)
    backbone, _ = backbone_and_head(tiny_model())
    feat_train, feat_val, feat_test = feature_dataloaders(backbone, train_images, test_images, "cpu",
                                                          batch_size=4, seed=3, val_dataloader=val_images)
    assert (len(feat_train.dataset), len(feat_val.dataset), len(feat_test.dataset)) == (6, 3, 6)
    for images, feats in ((val_images, feat_val), (test_images, feat_test)):
        X = torch.cat([x for x, _ in images])
        with torch.no_grad():
            torch.testing.assert_close(torch.cat([f for f, _ in feats]), backbone.eval()(X))
        assert torch.equal(torch.cat([y for _, y in feats]), torch.cat([y for _, y in images]))
    train_images.sampler.set_epoch(1)
    feat_train.sampler.set_epoch(1)
    assert torch.equal(torch.cat([y for _, y in train_images]), torch.cat([y for _, y in feat_train]))
    assert len(feature_dataloaders(backbone, train_images, test_images, "cpu")) == 2  # the old pair without it
    only_val = feature_dataloaders(backbone, train_images, None, "cpu", val_dataloader=val_images)
    assert len(only_val) == 2 and len(only_val[1].dataset) == 3  # the test set left alone
    with pytest.raises(ValueError, match="no val_dataloader"):
        feature_dataloaders(backbone, train_images, None, "cpu")


def test_chunks_give_the_whole_batch_features_and_bad_chunks_are_named(images):
    loader, X, _ = images
    backbone, _ = backbone_and_head(tiny_model())
    whole = extract_features(backbone, loader, "cpu", chunk=len(X)).tensors[0]
    for chunk in (None, 1, 3):
        torch.testing.assert_close(extract_features(backbone, loader, "cpu", chunk=chunk).tensors[0], whole,
                                   atol=1e-5, rtol=1e-5)
    assert all(p.is_contiguous() for p in backbone.parameters())  # the backbone's own layout is left alone
    for bad in (0, -2, 2.5, True, "4"):
        with pytest.raises(ValueError, match=rf"chunk={bad!r} is not a positive int"):
            extract_features(backbone, loader, "cpu", chunk=bad)
