"""The weights layer: the offline Lite stand-ins are real ImageNet models (an oracle on real photos),
shaped like torchvision's, and named for what they are."""
import pytest
import skimage.data
import torch
from PIL import Image

from course.weights import WeightsNotAvailable, get_weights, hub_checkpoint


def _top5(weights, model, array):
    x = weights.transforms()(Image.fromarray(array).convert("RGB")).unsqueeze(0)
    with torch.inference_mode():
        probs = model(x).softmax(dim=1)[0]
    return [weights.meta["categories"][i] for i in probs.topk(5).indices]


@pytest.fixture(autouse=True)
def empty_hub(tmp_path_factory):
    """Every test starts from an empty torch hub cache (the offline path) and restores the real one."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path_factory.mktemp("hub")))
    yield
    torch.hub.set_dir(old)


@pytest.fixture(scope="module", params=["efficientnet_b0", "efficientnet_b2"])
def lite(request, tmp_path_factory):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path_factory.mktemp("hub")))  # the offline path, even where B0 is cached
    try:
        weights = get_weights(request.param, data="offline", verbose=False)
        return weights, weights.build()
    finally:
        torch.hub.set_dir(old)


def test_lite_is_named_as_lite_not_b(lite):
    weights, _ = lite
    assert weights.real is False
    assert weights.name in ("EfficientNet-Lite0", "EfficientNet-Lite2")
    assert "-pytorch-model package" in weights.source and "stand-in for EfficientNet-B" in weights.source
    assert "B0" not in weights.name and "B2" not in weights.name


def test_lite_has_torchvision_layout_and_the_published_size(lite):
    weights, model = lite
    assert len(model.features) == 9  # stem, 7 stages, head: as torchvision's efficientnet_b0().features
    assert model.classifier[1].in_features == 1280 and model.classifier[1].out_features == 1000
    assert sum(p.numel() for p in model.parameters()) == weights.meta["num_params"]
    assert len(weights.meta["categories"]) == 1000 and weights.meta["categories"][285] == "Egyptian cat"
    assert not model.training


@pytest.mark.parametrize("photo, expected", [
    ("chelsea", {"tabby", "tiger cat", "Egyptian cat"}),
    ("coffee", {"espresso", "cup"}),
])
def test_oracle_the_offline_weights_recognise_real_photos(lite, photo, expected):
    weights, model = lite
    top5 = _top5(weights, model, getattr(skimage.data, photo)())
    assert top5[0] in expected, f"{weights.name} saw {photo} as {top5}"


def test_lite_normalisation_is_tensorflows(lite):
    weights, _ = lite
    preset = weights.transforms()
    assert list(preset.mean) == [0.5, 0.5, 0.5] and list(preset.std) == [0.5, 0.5, 0.5]


def test_bad_arch_and_data_are_refused():
    with pytest.raises(ValueError, match=r"arch='resnet50' is not one of efficientnet_b0"):
        get_weights("resnet50")
    with pytest.raises(ValueError, match=r"data='online' is not one of offline, real"):
        get_weights("efficientnet_b0", data="online")


def test_real_without_network_is_an_error_not_a_stand_in(monkeypatch):
    import torchvision.models as tvm

    def no_network(self, *args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvm.WeightsEnum, "get_state_dict", no_network)
    with pytest.raises(WeightsNotAvailable, match=r"DATA='real' asked for torchvision's .*network unreachable.*course fetch"):
        get_weights("efficientnet_b0", data="real")


def test_a_cached_torchvision_file_wins(capsys):
    import torchvision.models as tvm

    real = tvm.efficientnet_b0()  # random weights stand in for the downloaded file
    target = hub_checkpoint(tvm.EfficientNet_B0_Weights.DEFAULT.url)
    target.parent.mkdir(parents=True)
    torch.save(real.state_dict(), target)
    weights = get_weights("efficientnet_b0", data="offline")
    assert weights.real and weights.name == "EfficientNet-B0"
    assert "from the torch hub cache" in capsys.readouterr().out
    built = weights.build()
    assert torch.equal(built.classifier[1].weight, real.classifier[1].weight)


# --------------------------------------------------------------------------- lesson 10's GAN generator
def test_offline_gan_weights_are_vintagifys_file_named_and_pinned(capsys):
    from course.weights import VINTAGIFY_SHA256, get_gan_weights
    from going_modular.download import sha256_of

    weights = get_gan_weights("offline")
    assert weights.real is False and "vintagify" in weights.name and "vintage" in weights.name
    assert weights.path.name == "G_A2B_epoch33.pth" and sha256_of(weights.path) == VINTAGIFY_SHA256
    assert capsys.readouterr().out.startswith("weights: vintagify's CycleGAN generator")
    x = weights.transforms(64)(Image.fromarray(skimage.data.chelsea()))
    assert x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1  # mean = std = 0.5: [-1, 1]


def test_real_gan_weights_offline_are_an_error_not_vintagify(monkeypatch, tmp_path):
    from course import weights as w
    from going_modular import download

    def no_network(url, destination, **pins):
        raise download.DownloadError(f"Could not reach {url} (network unreachable).")

    monkeypatch.setattr(download, "download_file", no_network)
    with pytest.raises(WeightsNotAvailable, match=r"DATA='real' asked for the book's horse2zebra_0.4.0.pth.*"
                                                  r"network unreachable.*course fetch --only horse2zebra"):
        w.get_gan_weights("real", root=tmp_path)
    with pytest.raises(ValueError, match=r"data='online' is not one of offline, real"):
        w.get_gan_weights("online")


def test_a_cached_book_file_is_checked_against_its_git_blob(monkeypatch, tmp_path, capsys):
    from course import weights as w
    from going_modular.download import git_blob_of

    cached = tmp_path / w.BOOK_FOLDER / "horse2zebra_0.4.0.pth"
    cached.parent.mkdir()
    cached.write_bytes(b"not the book's generator")
    with pytest.raises(WeightsNotAvailable, match=r"is not the book's horse2zebra_0.4.0.pth.*left untouched"):
        w.get_gan_weights("real", root=tmp_path)
    monkeypatch.setitem(w.HORSE2ZEBRA, "git_blob", git_blob_of(cached))  # now it is "the" file
    weights = w.get_gan_weights("real", root=tmp_path)
    assert weights.real and weights.path == cached and weights.git_blob == git_blob_of(cached)
    assert "horse2zebra_0.4.0.pth (horse -> zebra), real, from the local cache" in capsys.readouterr().out
