"""going_modular.download against a real HTTPS server on 127.0.0.1 (self-signed certificate)."""
from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from pathlib import Path

import pytest

from going_modular.download import DownloadError, download_and_extract, download_file, extract_zip


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


GOOD_ZIP = make_zip({"train/pizza/a.jpg": b"pizza", "test/sushi/b.jpg": b"sushi"})
GOOD_SHA = hashlib.sha256(GOOD_ZIP).hexdigest()
SLIP_ZIP = make_zip({"train/ok.txt": b"fine", "../../evil.txt": b"gotcha"})
ABSOLUTE_ZIP = make_zip({"train/ok.txt": b"fine", "/tmp/evil.txt": b"gotcha"})


@pytest.fixture
def server(https_server):
    """(base_url, client_ssl_context) of the loopback HTTPS server from conftest.py."""
    base, _, context = https_server
    return base, context


def serve(routes, path, body, content_type="application/zip", status=200, sent=None, headers=None):
    routes[path] = (status, {"Content-Type": content_type, **(headers or {})}, body,
                    len(body) if sent is None else sent)


def assert_nothing_left(folder: Path):
    assert sorted(p.name for p in folder.iterdir()) == [], "a file or temporary file was left behind"


def test_good_zip_downloads_and_extracts(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    out = download_and_extract(f"{base}/data.zip", tmp_path / "food", sha256=GOOD_SHA, context=context)
    assert out == tmp_path / "food"
    assert (out / "train" / "pizza" / "a.jpg").read_bytes() == b"pizza"
    assert (out / "test" / "sushi" / "b.jpg").read_bytes() == b"sushi"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["food"], "the archive or a temp folder was left"


def test_download_file_checks_digest_and_reuses_a_verified_file(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    target = download_file(f"{base}/data.zip", tmp_path / "data.zip", sha256=GOOD_SHA.upper(), context=context)
    assert target.read_bytes() == GOOD_ZIP
    routes.clear()  # the server now answers 404: a second call must not need it
    assert download_file(f"{base}/data.zip", target, sha256=GOOD_SHA, context=context) == target


def test_existing_different_file_is_left_untouched(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    mine = tmp_path / "data.zip"
    mine.write_bytes(b"my own file")
    with pytest.raises(DownloadError, match=r"already exists and is not the file pinned .* left untouched"):
        download_file(f"{base}/data.zip", mine, sha256=GOOD_SHA, context=context)
    assert mine.read_bytes() == b"my own file"


def test_wrong_checksum_keeps_nothing(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    with pytest.raises(DownloadError, match=rf"does not match its pinned SHA-256: expected {'0' * 64}, got {GOOD_SHA}"):
        download_file(f"{base}/data.zip", tmp_path / "data.zip", sha256="0" * 64, context=context)
    assert_nothing_left(tmp_path)


def test_unpinned_download_is_refused_and_prints_the_digest(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    with pytest.raises(DownloadError, match=rf"No SHA-256 is pinned .* SHA-256 {GOOD_SHA}\. .*pin that digest"):
        download_file(f"{base}/data.zip", tmp_path / "data.zip", sha256=None, context=context)
    assert_nothing_left(tmp_path)


def test_html_page_with_status_200_is_refused(server, routes, tmp_path):
    base, context = server
    page = b"<html><body>Sign in to continue</body></html>"
    serve(routes, "/data.zip", page, content_type="text/html; charset=utf-8")
    with pytest.raises(DownloadError, match=r"sent Content-Type 'text/html', not a data file"):
        download_and_extract(f"{base}/data.zip", tmp_path / "food", sha256=GOOD_SHA, context=context)
    assert_nothing_left(tmp_path)


def test_404_is_a_clear_error(server, routes, tmp_path):
    base, context = server
    with pytest.raises(DownloadError, match=r"/missing\.zip answered HTTP 404 Not Found; expected 200 OK"):
        download_and_extract(f"{base}/missing.zip", tmp_path / "food", sha256=GOOD_SHA, context=context)
    assert_nothing_left(tmp_path)


@pytest.mark.parametrize(
    "archive, message",
    [(SLIP_ZIP, r"'\.\./\.\./evil\.txt', which climbs out of the destination"),
     (ABSOLUTE_ZIP, r"'/tmp/evil\.txt', which is an absolute path")],
    ids=["zip-slip", "absolute"],
)
def test_unsafe_zip_members_are_refused_before_writing(server, routes, tmp_path, archive, message):
    base, context = server
    serve(routes, "/bad.zip", archive)
    work = tmp_path / "work"
    work.mkdir()
    digest = hashlib.sha256(archive).hexdigest()
    with pytest.raises(DownloadError, match=message):
        download_and_extract(f"{base}/bad.zip", work / "food", sha256=digest, context=context)
    assert_nothing_left(work)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"], "a member escaped the destination"


def test_extract_zip_rejects_backslash_traversal(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"ok\\..\\..\\evil.txt": b"x"}))
    with pytest.raises(DownloadError, match=r"climbs out of the destination"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_interrupted_download_keeps_nothing(server, routes, tmp_path):
    base, context = server
    body = GOOD_ZIP * 50
    serve(routes, "/data.zip", body, sent=len(body) // 3)  # declares the full length, closes early
    with pytest.raises(DownloadError, match=r"(cut short: received [\d,]+ of the [\d,]+ bytes|was interrupted)"):
        download_file(f"{base}/data.zip", tmp_path / "data.zip", sha256=hashlib.sha256(body).hexdigest(),
                      context=context)
    assert_nothing_left(tmp_path)


def test_plain_http_is_refused(tmp_path):
    with pytest.raises(DownloadError, match=r"'http://127\.0\.0\.1/data\.zip' uses http scheme; only https:// URLs"):
        download_file("http://127.0.0.1/data.zip", tmp_path / "data.zip", sha256=GOOD_SHA)
    assert_nothing_left(tmp_path)


def test_redirect_to_plain_http_is_refused(server, routes, tmp_path):
    base, context = server
    serve(routes, "/moved.zip", b"", status=302, headers={"Location": "http://127.0.0.1:9/data.zip"})
    with pytest.raises(DownloadError, match=r"redirected to http://127\.0\.0\.1:9/data\.zip, which is not HTTPS"):
        download_file(f"{base}/moved.zip", tmp_path / "data.zip", sha256=GOOD_SHA, context=context)
    assert_nothing_left(tmp_path)


def test_untrusted_certificate_is_not_called_offline(server, routes, tmp_path):
    base, _ = server
    serve(routes, "/data.zip", GOOD_ZIP)
    with pytest.raises(DownloadError, match=r"Could not make a trusted HTTPS connection"):
        download_file(f"{base}/data.zip", tmp_path / "data.zip", sha256=GOOD_SHA)  # system CAs only
    assert_nothing_left(tmp_path)


def test_unreachable_server_explains_offline_mode(tmp_path):
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    offline = r'Could not reach .* seems to be offline\. Run the lesson with DATA = "offline"'
    with pytest.raises(DownloadError, match=offline):
        download_file(f"https://127.0.0.1:{port}/data.zip", tmp_path / "data.zip", sha256=GOOD_SHA, timeout=5)
    assert_nothing_left(tmp_path)
