"""`python -m course fetch` against the loopback HTTPS server, with the URL table pointed at it."""
import hashlib
import io
import zipfile

import pytest
import torch

from course import data, fetch
from course.run import main


@pytest.fixture
def trusted(https_server, routes, monkeypatch, tmp_path):
    """Loopback routes, a trusted certificate (SSL_CERT_FILE) and an empty torch hub cache."""
    base, cert, _ = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield base, routes
    torch.hub.set_dir(old)


def weight_file(routes, base, monkeypatch, body: bytes, prefix: str | None = None) -> str:
    prefix = prefix or hashlib.sha256(body).hexdigest()[:8]
    name = f"/efficientnet_b0_test-{prefix}.pth"
    routes[name] = body
    monkeypatch.setitem(fetch.WEIGHT_URLS, "efficientnet_b0", base + name)
    return name


def test_weights_are_downloaded_verified_and_then_found_in_the_cache(trusted, monkeypatch, tmp_path, capsys):
    base, routes = trusted
    buffer = io.BytesIO()
    torch.save({"w": torch.arange(3.0)}, buffer)
    name = weight_file(routes, base, monkeypatch, buffer.getvalue())

    assert main(["fetch", "--only", "efficientnet_b0", "--root", str(tmp_path / "data")]) == 0
    target = tmp_path / "hub" / "checkpoints" / name.lstrip("/")
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.arange(3.0))
    assert f"ok     efficientnet_b0: {target}" in capsys.readouterr().out

    routes.clear()  # a second run must not download again
    assert main(["fetch", "--only", "efficientnet_b0", "--root", str(tmp_path / "data")]) == 0
    assert "(already cached)" in capsys.readouterr().out


def test_a_weight_file_that_fails_torchvisions_hash_check_is_not_kept(trusted, monkeypatch, tmp_path, capsys):
    base, routes = trusted
    weight_file(routes, base, monkeypatch, b"not the published weights", prefix="0123abcd")
    assert main(["fetch", "--only", "efficientnet_b0", "--root", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    assert "FAILED efficientnet_b0: RuntimeError: invalid hash value" in out
    assert "0 of 1 assets ready, 1 failed" in out
    assert list((tmp_path / "hub" / "checkpoints").iterdir()) == []


def test_datasets_land_where_the_lessons_look(trusted, monkeypatch, tmp_path, capsys):
    base, routes = trusted
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("train/pizza/1.jpg", b"jpeg")
        zf.writestr("test/steak/2.jpg", b"jpeg")
    body = buffer.getvalue()
    routes["/pss.zip"] = body
    blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
    monkeypatch.setitem(data.FOOD_REAL, "10%", data.RealZip(f"{base}/pss.zip", None, "pizza_steak_sushi", blob))
    root = tmp_path / "data"
    assert main(["fetch", "--only", "pizza_steak_sushi", "--root", str(root)]) == 0
    assert (root / "pizza_steak_sushi" / "test" / "steak" / "2.jpg").read_bytes() == b"jpeg"
    capsys.readouterr()
    # and the lesson's own call now finds it in the cache, with the network gone
    routes.clear()
    assert data.food_images("real", root=root) == root / "pizza_steak_sushi"
    assert "real data from the local cache" in capsys.readouterr().out


def test_unknown_assets_are_named_with_the_choices():
    with pytest.raises(SystemExit, match=r"unknown asset\(s\) resnet.*Choose from: fashion_mnist"):
        main(["fetch", "--only", "resnet"])


def test_every_real_asset_the_lessons_use_is_listed(capsys):
    assert main(["fetch", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("fashion_mnist", "pizza_steak_sushi", "pizza_steak_sushi_20_percent", "food101",
                 "efficientnet_b0", "efficientnet_b2", "vit_b_16", "horse2zebra", "horse_jpg"):
        assert name in out


def test_the_books_gan_files_are_fetched_by_git_blob_into_the_data_folder(trusted, monkeypatch, tmp_path, capsys):
    from course import weights

    base, routes = trusted
    for name, body in (("HORSE2ZEBRA", b"generator bytes"), ("HORSE_JPG", b"jpeg bytes")):
        filename = getattr(weights, name)["url"].rsplit("/", 1)[-1]
        routes[f"/{filename}"] = body
        blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
        monkeypatch.setattr(weights, name, {"url": f"{base}/{filename}", "git_blob": blob})
    root = tmp_path / "data"
    assert main(["fetch", "--only", "horse2zebra,horse_jpg", "--root", str(root)]) == 0
    assert (root / "dlwpt_p1ch2" / "horse2zebra_0.4.0.pth").read_bytes() == b"generator bytes"
    assert (root / "dlwpt_p1ch2" / "horse.jpg").read_bytes() == b"jpeg bytes"
    assert "2 of 2 assets ready" in capsys.readouterr().out
    routes.clear()  # the lesson's own call now finds the file in the cache, with the network gone
    assert weights.get_gan_weights("real", root=root).path == root / "dlwpt_p1ch2" / "horse2zebra_0.4.0.pth"


def test_a_book_file_that_does_not_match_its_git_blob_is_not_kept(trusted, monkeypatch, tmp_path, capsys):
    from course import weights

    base, routes = trusted
    routes["/horse2zebra_0.4.0.pth"] = b"something else"
    monkeypatch.setattr(weights, "HORSE2ZEBRA", {"url": f"{base}/horse2zebra_0.4.0.pth",
                                                 "git_blob": "ce10268a67fba8227bd42a071e17eef1b358fa2b"})
    root = tmp_path / "data"
    assert main(["fetch", "--only", "horse2zebra", "--root", str(root)]) == 1
    assert "does not match its pinned git blob id" in capsys.readouterr().out
    assert not (root / "dlwpt_p1ch2" / "horse2zebra_0.4.0.pth").exists()
