# Written by notebooks/03_pytorch_computer_vision.ipynb: edit the notebook, not this file.
"""The course's one download helper: fetch a file over HTTPS, check it, unpack it safely.

Every download in the course goes through `download_file` (one file) or
`download_and_extract` (a zip archive). They refuse to leave anything half-done behind:

- HTTPS only, with a timeout; redirects must stay on HTTPS;
- the HTTP status and Content-Type are checked, so an HTML error page is never saved as data;
- the body streams into a temporary file next to the destination, its length is checked
  against Content-Length, and it is renamed into place only when it matches its pin: a
  SHA-256 digest (`sha256=`), a git blob id (`git_blob=`, the id `git` gives a file, which
  GitHub shows for every file it hosts), or both (a download without any pin is refused, and
  the error prints both values to pin);
- zip members with absolute paths or `..` are rejected before anything is written, and the
  archive is extracted into a temporary folder that is renamed into place when complete.

Standard library only, so it works before anything else is installed.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

# Content types a data file may arrive with; anything textual (an HTML page) is refused.
BINARY_CONTENT_TYPES = (
    "application/octet-stream",
    "application/zip",
    "application/x-zip-compressed",
    "application/gzip",
    "application/x-gzip",
    "binary/octet-stream",
)
OFFLINE_HINT = (
    'This machine seems to be offline. Run the lesson with DATA = "offline" '
    "(or COURSE_DATA=offline) to use the course's embedded stand-in data, "
    "or connect to the internet and run the cell again."
)


class DownloadError(RuntimeError):
    """A download or extraction that failed; nothing half-done was left behind."""


class _HTTPSOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never from HTTPS down to plain HTTP."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme != "https":
            raise DownloadError(
                f"{req.full_url} redirected to {newurl}, which is not HTTPS. "
                "Refusing to download over an unencrypted connection; use an HTTPS source."
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The git blob id of a file: SHA-1 over b"blob <size>\\0" followed by the file's bytes.

    It is the id `git hash-object <file>` prints and the one git (and GitHub's API) uses
    for the file's content, so a file kept in a git repository can be pinned by it.
    """
    path = Path(path)
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pin(name: str, value: str | None, length: int) -> str | None:
    """A pin in lower case, or None; a pin that is not `length` hex digits is refused."""
    if value is None:
        return None
    pin = value.strip().lower()
    if len(pin) != length or any(c not in "0123456789abcdef" for c in pin):
        raise DownloadError(
            f"{name}={value!r} is not a valid pin: expected {length} hex digits. "
            f"Copy the whole {name} value (or pass {name}=None and read the value from the error)."
        )
    return pin


def _mismatches(path: Path, sha256: str | None, git_blob: str | None,
                known_sha256: str | None = None) -> list[tuple[str, str, str]]:
    """(what, expected, actual) for every given pin that `path` does not match."""
    wrong = []
    if sha256 is not None and (actual := known_sha256 or sha256_of(path)) != sha256:
        wrong.append(("SHA-256", sha256, actual))
    if git_blob is not None and (actual := git_blob_of(path)) != git_blob:
        wrong.append(("git blob id", git_blob, actual))
    return wrong


def _check_url(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme != "https":
        raise DownloadError(
            f"{url!r} uses {scheme or 'no'} scheme; only https:// URLs are downloaded. "
            "Use the https:// address of the file."
        )


def _open(url: str, timeout: float, context: ssl.SSLContext | None):
    """Open `url` and check the response; returns the response object."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context or ssl.create_default_context()),
        _HTTPSOnlyRedirects(),
    )
    request = urllib.request.Request(url, headers={"User-Agent": "pytorch-course-workbook"})
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        raise DownloadError(
            f"{url} answered HTTP {err.code} {err.reason}; expected 200 OK. "
            "Check the URL (the file may have moved) and try again later."
        ) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, ssl.SSLError):
            raise DownloadError(
                f"Could not make a trusted HTTPS connection to {url}: {err.reason}. "
                "Check the machine's clock and certificate store (or a proxy that intercepts HTTPS)."
            ) from None
        raise DownloadError(f"Could not reach {url} ({err.reason}). {OFFLINE_HINT}") from None
    except (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException) as err:
        raise DownloadError(f"Could not reach {url} ({err!r}). {OFFLINE_HINT}") from None
    if response.status != 200:
        response.close()
        raise DownloadError(f"{url} answered HTTP {response.status}; expected 200 OK. Check the URL.")
    content_type = response.headers.get_content_type() if response.headers.get("Content-Type") else ""
    if content_type and content_type not in BINARY_CONTENT_TYPES:
        response.close()
        raise DownloadError(
            f"{url} sent Content-Type {content_type!r}, not a data file "
            f"(expected one of {', '.join(BINARY_CONTENT_TYPES)}). "
            "It is probably an error or login page: open the URL in a browser to see what it serves."
        )
    return response


def download_file(
    url: str,
    destination: str | Path,
    *,
    sha256: str | None = None,
    git_blob: str | None = None,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
    chunk_size: int = 1 << 20,
) -> Path:
    """Download `url` to `destination`, checking its pin before it appears there.

    One pin is enough: a SHA-256 digest or a git blob id. When both are given, both must
    match. If `destination` already exists and matches its pins, nothing is downloaded.

    Args:
        url: an https:// URL.
        destination: the file to create. Its folder is created if needed.
        sha256: the pinned SHA-256 hex digest (64 hex digits), or None.
        git_blob: the pinned git blob id (40 hex digits, see `git_blob_of`), or None. With
            neither pin the download is refused after it is received, and the error message
            prints both values so one can be pinned.
        timeout: seconds to wait for the server to connect or send more data.
        context: the SSL context (default: the system's trusted certificates).
        chunk_size: bytes read at a time.

    Returns:
        `destination` as a Path.

    Raises:
        DownloadError: the URL is not HTTPS, a pin is not hex digits of the right length, the
            server is unreachable, answers an error or a non-data Content-Type, the body is cut
            short, or a pin does not match. No file and no temporary file is left behind.
    """
    _check_url(url)
    destination = Path(destination)
    expected = _pin("sha256", sha256, 64)
    expected_blob = _pin("git_blob", git_blob, 40)
    pinned = expected is not None or expected_blob is not None
    if destination.exists():
        if pinned and destination.is_file() and not _mismatches(destination, expected, expected_blob):
            return destination
        raise DownloadError(
            f"{destination} already exists and is not the file pinned for {url}. "
            "It was left untouched: move it away (or delete it) and run again."
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    response = _open(url, timeout, context)
    declared = response.headers.get("Content-Length")
    digest, received = hashlib.sha256(), 0
    temp = None
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
        temp = Path(temp_name)
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in iter(lambda: response.read(chunk_size), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
            except (OSError, ValueError, http.client.HTTPException) as err:  # reset, TLS EOF, IncompleteRead
                raise DownloadError(
                    f"The download of {url} was interrupted after {received:,} bytes ({err!r}). "
                    "Run the cell again to retry."
                ) from None
        if declared is not None and declared.isdigit() and received != int(declared):
            raise DownloadError(
                f"The download of {url} was cut short: received {received:,} of the "
                f"{int(declared):,} bytes the server announced. Run the cell again to retry."
            )
        actual = digest.hexdigest()
        if not pinned:
            raise DownloadError(
                f"No SHA-256 is pinned for {url}, and no git blob id either, so the download was not "
                f"kept: a sha256= or git_blob= pin is needed. The {received:,} bytes received have "
                f"SHA-256 {actual} and git blob id {git_blob_of(temp)}. If you trust this source, "
                "pin that digest (sha256=...) or that blob id (git_blob=...) where the URL is listed "
                "and run again."
            )
        wrong = _mismatches(temp, expected, expected_blob, known_sha256=actual)
        if wrong:
            what = " and ".join(f"{name}: expected {want}, got {got}" for name, want, got in wrong)
            raise DownloadError(
                f"{url} does not match its pinned {what} ({received:,} bytes). The file was not "
                "kept. It may be corrupt or may have changed upstream; retry, and if it changed on "
                "purpose, check it and update the pin."
            )
        os.chmod(temp, 0o644)  # mkstemp makes it private; a data file is readable like any other
        os.replace(temp, destination)
    finally:
        response.close()
        if temp is not None:
            temp.unlink(missing_ok=True)
    return destination


def _unsafe_member(name: str) -> str | None:
    """Why a zip member name may not be extracted, or None if it is safe."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "is an absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "climbs out of the destination with '..'"
    return None


def extract_zip(archive: str | Path, destination: str | Path) -> Path:
    """Extract `archive` into the new folder `destination`, safely and atomically.

    Every member name is checked first: absolute paths and `..` (zip-slip) are refused before
    anything is written. The members are extracted into a temporary folder next to
    `destination`, which is renamed into place when complete.

    Raises:
        DownloadError: the archive is not a zip file, has an unsafe member, or `destination`
            already exists (it is left untouched).
    """
    archive, destination = Path(archive), Path(destination)
    if destination.exists():
        raise DownloadError(
            f"{destination} already exists; it was left untouched. "
            "Remove it to extract the archive again, or choose another folder."
        )
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                why = _unsafe_member(info.filename)
                if why:
                    raise DownloadError(
                        f"{archive.name} contains the member {info.filename!r}, which {why}. "
                        "Nothing was extracted: the archive is unsafe. Get it from a trusted source."
                    )
            destination.parent.mkdir(parents=True, exist_ok=True)
            temp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent))
            try:
                zf.extractall(temp)
                os.chmod(temp, 0o755)  # mkdtemp makes it private
                os.replace(temp, destination)
            finally:
                if temp.exists():
                    shutil.rmtree(temp, ignore_errors=True)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive} is not a valid zip archive ({err}). Delete it and download it again.") from None
    return destination


def download_and_extract(
    url: str,
    destination: str | Path,
    *,
    sha256: str | None = None,
    git_blob: str | None = None,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> Path:
    """Download the zip at `url` (pinned) and extract it into the new folder `destination`.

    The pins are those of `download_file`: `sha256=`, `git_blob=`, or both. The archive is
    stored next to `destination` (as `<destination>.zip`) while it is extracted and deleted
    afterwards. If a file matching the pins is already there, it is used instead of
    downloading, and kept.

    Returns:
        `destination` as a Path.

    Raises:
        DownloadError: as `download_file` and `extract_zip`.
    """
    destination = Path(destination)
    if destination.exists():
        raise DownloadError(
            f"{destination} already exists; it was left untouched. "
            "Remove it to download it again, or choose another folder."
        )
    archive = destination.parent / f"{destination.name}.zip"
    already_there = archive.exists()  # a verified copy someone put there is used and kept
    download_file(url, archive, sha256=sha256, git_blob=git_blob, timeout=timeout, context=context)
    try:
        extract_zip(archive, destination)
    finally:
        if not already_there:
            archive.unlink(missing_ok=True)
    return destination
