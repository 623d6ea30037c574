"""Downloads against a local HTTP server on 127.0.0.1 (good checksum, bad checksum,
interrupted transfer, retry), safe extraction, and that nothing already on disk is
replaced or deleted."""

import dataclasses
import hashlib
import http.server
import io
import os
import stat
import tarfile
import threading

import pytest
import requests

from minicon.data import LAYOUTS, Archive, extract_members, fetch_archive, load_cifar10

from .cifar_fixtures import archive_of, shrink_layouts, tar_gz, write_binary


class _Server:
    """Serves ``files`` ({path: bytes}); ``cut`` paths send half the body, then hang up."""

    def __init__(self):
        self.files, self.cut, self.requests = {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 5

            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.cut:
                    server.cut.discard(self.path)  # only the first transfer is cut
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # never route loopback through a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    s = _Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(timeout=5)


def _archive(server, path, payload, md5=None):
    server.files[path] = payload
    return Archive(server.url(path), md5 or hashlib.md5(payload).hexdigest(), len(payload))


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_good_checksum_downloads_and_a_verified_copy_is_not_fetched_again(server, tmp_path):
    payload = tar_gz({"a/b.bin": b"x" * 5000})
    archive = _archive(server, "/data.tar.gz", payload)
    path = fetch_archive(archive, tmp_path / "cache", retries=0, progressbar=False)
    assert path.read_bytes() == payload and _leftovers(tmp_path / "cache") == ["data.tar.gz"]
    fetch_archive(archive, tmp_path / "cache", retries=0, progressbar=False)
    assert server.requests == ["/data.tar.gz"]  # the second call only checked the MD5


def test_bad_checksum_keeps_nothing_and_deletes_nothing(server, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    archive = _archive(server, "/data.tar.gz", b"not what was promised", md5="0" * 32)
    with pytest.raises(ValueError, match="MD5 hash of downloaded file .* does not match"):
        fetch_archive(archive, tmp_path, retries=0, progressbar=False)
    assert _leftovers(tmp_path) == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "mine"


def test_interrupted_transfer_fails_cleanly_and_a_retry_recovers(server, tmp_path):
    payload = bytes(range(256)) * 400
    archive = _archive(server, "/data.tar.gz", payload)
    server.cut.add("/data.tar.gz")
    with pytest.raises(requests.exceptions.RequestException):
        fetch_archive(archive, tmp_path, retries=0, progressbar=False, timeout=5)
    assert _leftovers(tmp_path) == []  # the partial temporary file is gone
    server.cut.add("/data.tar.gz")
    path = fetch_archive(archive, tmp_path, retries=1, progressbar=False, timeout=5)
    assert path.read_bytes() == payload and len(server.requests) == 3


def test_existing_file_with_wrong_checksum_is_reported_and_left_alone(server, tmp_path):
    (tmp_path / "data.tar.gz").write_bytes(b"half an archive")
    archive = _archive(server, "/data.tar.gz", b"the real archive")
    with pytest.raises(ValueError, match=r"data\.tar\.gz exists but is not the expected archive: 15 bytes "
                       r"with MD5 [0-9a-f]{32}, expected 16 bytes.*left as is"):
        fetch_archive(archive, tmp_path, retries=0, progressbar=False)
    assert (tmp_path / "data.tar.gz").read_bytes() == b"half an archive" and server.requests == []


def test_download_through_load_cifar10_keeps_the_users_files(server, tmp_path, monkeypatch):
    shrink_layouts(monkeypatch)
    source = tmp_path / "source"
    expected = write_binary(source, "cifar10")
    layout = LAYOUTS["cifar10"]["binary"]
    archive = _archive(server, "/cifar-10-binary.tar.gz", archive_of(source, layout))
    monkeypatch.setitem(LAYOUTS["cifar10"], "binary", dataclasses.replace(layout, archive=archive))
    root = tmp_path / "data"
    (root / layout.folder).mkdir(parents=True)
    mine = root / layout.folder / "test_batch.bin"
    mine.write_bytes((source / layout.folder / "test_batch.bin").read_bytes())
    before = mine.stat().st_mtime_ns

    images, labels, names = load_cifar10(root, "train", download=True)

    assert (images == expected["train"][0]).all() and (labels == expected["train"][1][:, 0]).all()
    assert mine.stat().st_mtime_ns == before  # not rewritten by the extraction
    assert sorted(p.name for p in (root / layout.folder).iterdir()) == sorted(
        n.split("/")[1] for n in layout.members())  # no readme, no temporary files
    assert (root / "cifar-10-binary.tar.gz").is_file()  # the verified archive is kept
    load_cifar10(root, "test", download=True)
    assert len(server.requests) == 1


def _tar_with(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def test_extraction_ignores_traversal_and_rejects_links(tmp_path):
    escape = tarfile.TarInfo("../escaped.bin")
    escape.size = 3
    absolute = tarfile.TarInfo(str(tmp_path / "absolute.bin"))
    absolute.size = 3
    good = tarfile.TarInfo("set/good.bin")
    good.size = 3
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_with([(escape, b"bad"), (absolute, b"bad"), (good, b"abc")]))
    out = tmp_path / "out"
    assert extract_members(archive, out, {"set/good.bin": 3}) == [out / "set" / "good.bin"]
    assert not (tmp_path / "escaped.bin").exists() and not (tmp_path / "absolute.bin").exists()
    assert (out / "set" / "good.bin").read_bytes() == b"abc"

    link = tarfile.TarInfo("set/data.bin")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive.write_bytes(_tar_with([(link, None)]))
    with pytest.raises(ValueError, match=r"member set/data\.bin is not a regular file"):
        extract_members(archive, out, {"set/data.bin": None})
    assert not (out / "set" / "data.bin").exists()


def test_extraction_checks_sizes_and_missing_members(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_gz({"set/a.bin": b"12345"}))
    with pytest.raises(ValueError, match=r"member set/a\.bin is 5 bytes, expected 6"):
        extract_members(archive, tmp_path / "out", {"set/a.bin": 6})
    with pytest.raises(ValueError, match=r"expected members missing: set/b\.bin"):
        extract_members(archive, tmp_path / "out", {"set/a.bin": 5, "set/b.bin": None})


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_extracted_files_honour_the_umask(tmp_path, umask):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_gz({"set/a.bin": b"12345"}))
    previous = os.umask(umask)
    try:
        (target,) = extract_members(archive, tmp_path / "out", {"set/a.bin": 5})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
