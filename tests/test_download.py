"""going_modular.download against a real HTTPS server on 127.0.0.1 (self-signed certificate)."""
from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from pathlib import Path

import pytest

from going_modular.download import (
    DownloadError,
    download_and_extract,
    download_file,
    extract_zip,
    git_blob_of,
    sha256_of,
)


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buffer.getvalue()


GOOD_ZIP = make_zip({"train/pizza/a.jpg": b"pizza", "test/sushi/b.jpg": b"sushi"})
GOOD_SHA = hashlib.sha256(GOOD_ZIP).hexdigest()
GOOD_BLOB = hashlib.sha1(b"blob %d\0" % len(GOOD_ZIP) + GOOD_ZIP).hexdigest()  # what `git hash-object` prints
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
    unpinned = (rf"No SHA-256 is pinned .* a sha256= or git_blob= pin is needed\. .* SHA-256 {GOOD_SHA} "
                rf"and git blob id {GOOD_BLOB}\. .*pin that digest \(sha256=\.\.\.\) or that blob id \(git_blob=")
    with pytest.raises(DownloadError, match=unpinned):
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


# ----------------------------------------------------------------------------- git blob pins


def test_git_blob_of_matches_git(tmp_path):
    """Oracle: the ids git itself gives the empty blob and b"hello\\n" (`git hash-object`)."""
    empty, hello = tmp_path / "empty", tmp_path / "hello"
    empty.write_bytes(b"")
    hello.write_bytes(b"hello\n")
    assert git_blob_of(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_of(hello) == "ce013625030ba8dba906f756967f9e9ca394464a"
    big = tmp_path / "big"
    big.write_bytes(GOOD_ZIP * 7)
    assert git_blob_of(big, chunk_size=5) == hashlib.sha1(b"blob %d\0" % big.stat().st_size + GOOD_ZIP * 7).hexdigest()


def test_git_blob_pin_alone_is_enough(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    target = download_file(f"{base}/data.zip", tmp_path / "data.zip", git_blob=GOOD_BLOB.upper(), context=context)
    assert target.read_bytes() == GOOD_ZIP
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.zip"], "a temporary file was left behind"
    assert (target.stat().st_mode & 0o777) == 0o644
    routes.clear()  # a verified file is reused without the network, also when pinned by blob id
    assert download_file(f"{base}/data.zip", target, git_blob=GOOD_BLOB, context=context) == target


def test_both_pins_are_checked(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    target = download_file(f"{base}/data.zip", tmp_path / "data.zip", sha256=GOOD_SHA, git_blob=GOOD_BLOB,
                           context=context)
    assert sha256_of(target) == GOOD_SHA and git_blob_of(target) == GOOD_BLOB
    target.unlink()
    with pytest.raises(DownloadError, match=rf"pinned git blob id: expected {'1' * 40}, got {GOOD_BLOB}"):
        download_file(f"{base}/data.zip", target, sha256=GOOD_SHA, git_blob="1" * 40, context=context)
    assert_nothing_left(tmp_path)


def test_wrong_git_blob_is_rejected_and_nothing_is_kept(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    wrong = hashlib.sha1(GOOD_ZIP).hexdigest()  # the plain SHA-1, without git's "blob <size>\\0" header
    message = rf"does not match its pinned git blob id: expected {wrong}, got {GOOD_BLOB} .* was not kept"
    with pytest.raises(DownloadError, match=message):
        download_file(f"{base}/data.zip", tmp_path / "data.zip", git_blob=wrong, context=context)
    assert_nothing_left(tmp_path)


def test_existing_file_with_another_blob_is_left_untouched(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    mine = tmp_path / "data.zip"
    mine.write_bytes(b"my own file")
    with pytest.raises(DownloadError, match=r"already exists and is not the file pinned"):
        download_file(f"{base}/data.zip", mine, git_blob=GOOD_BLOB, context=context)
    assert mine.read_bytes() == b"my own file"


def test_extract_with_a_git_blob_pin(server, routes, tmp_path):
    base, context = server
    serve(routes, "/data.zip", GOOD_ZIP)
    out = download_and_extract(f"{base}/data.zip", tmp_path / "food", git_blob=GOOD_BLOB, context=context)
    assert (out / "train" / "pizza" / "a.jpg").read_bytes() == b"pizza"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["food"], "the archive or a temp folder was left"
    with pytest.raises(DownloadError, match=r"pinned git blob id: expected 0{40}"):
        download_and_extract(f"{base}/data.zip", tmp_path / "food2", git_blob="0" * 40, context=context)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["food"], "a rejected archive was kept"


@pytest.mark.parametrize("pins, message", [
    ({"git_blob": "abc"}, r"git_blob='abc' is not a valid pin: expected 40 hex digits"),
    ({"sha256": GOOD_BLOB}, r"sha256='[0-9a-f]{40}' is not a valid pin: expected 64 hex digits"),
    ({"git_blob": "g" * 40}, r"git_blob='g{40}' is not a valid pin"),
], ids=["short-blob", "blob-as-sha256", "not-hex"])
def test_malformed_pins_are_refused_before_any_download(tmp_path, pins, message):
    with pytest.raises(DownloadError, match=message):
        download_file("https://127.0.0.1:9/data.zip", tmp_path / "data.zip", **pins)
    assert_nothing_left(tmp_path)
