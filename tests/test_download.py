"""utils/data.py downloads, against a real HTTP server on 127.0.0.1 (no other network)."""

import functools
import http.server
import socket
import threading
import time
import types

import pandas as pd
import pytest

import utils
from utils import data
from utils.data import DataError

TRAIN = data.FILE_NAMES["train"]
TEST = data.FILE_NAMES["test"]

SLICE = pd.DataFrame({
    "label": [1, 0, 2],
    "label_text": ["Military: Positive", "Military: Negative", "Other"],
    "text_original": ["We will fund the navy.", "We will cut the defence budget.", "We will build schools."],
    "text_preceding": ["Our coast needs protection.", "", "Education matters."],
    "text_following": ["", "The money goes to hospitals.", "Every child counts."],
})


@pytest.fixture
def server(tmp_path):
    """A threaded http.server serving tmp_path/www; `requests` lists the paths asked for.

    Set `truncate` to a path to have that file sent with a Content-Length larger than its body,
    the connection then closed: an interrupted download. `replies` maps a path to (status,
    content type, body) sent instead of the file: an error page. `stall` maps a path to "before"
    (the server accepts the connection and never answers) or "during" (it sends the headers and
    half the body, then nothing): both hang until the test ends.
    """
    www = tmp_path / "www"
    (www / "mirror").mkdir(parents=True)
    for folder in (www, www / "mirror"):
        SLICE.to_csv(folder / TRAIN, index=False)  # no test file: asking for it gives a 404
    state = types.SimpleNamespace(requests=[], truncate=None, replies={}, stall={})
    release = threading.Event()  # set at the end: stalled handlers return

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            state.requests.append(self.path)
            if self.path in state.replies:
                status, content_type, body = state.replies[self.path]
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if state.stall.get(self.path) == "before":
                release.wait(30)
                return
            if self.path != state.truncate and self.path not in state.stall:
                return super().do_GET()
            body = (www / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + (1000 if self.path == state.truncate else 0)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if self.path in state.stall:
                release.wait(30)
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    state.www = www
    try:
        yield state
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cpu_mode(monkeypatch, tmp_path):
    """cpu mode with the cache in tmp_path/cache; returns the folder the data is cached under."""
    monkeypatch.setenv("COURSE_MODE", "cpu")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("no_proxy", "NO_PROXY"):  # never send 127.0.0.1 through a proxy
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return tmp_path / "cache" / "data"


def files_under(folder):
    """Every file below `folder`, hidden ones (.part) included."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("folder", ["", "/", "/mirror", "/mirror/"])
def test_first_load_downloads_then_the_cache_is_used(monkeypatch, server, cpu_mode, folder):
    monkeypatch.setenv("COURSE_DATA_URL", server.base + folder)
    expected_path = "/mirror/" + TRAIN if folder.startswith("/mirror") else "/" + TRAIN

    first = utils.load_course_data("train")
    assert server.requests == [expected_path]
    (cached,) = files_under(cpu_mode)  # one file, no .part file left
    assert cached.name == TRAIN
    assert cached.read_bytes() == (server.www / expected_path.lstrip("/")).read_bytes()

    second = utils.load_course_data("train")
    assert server.requests == [expected_path]  # no new request
    pd.testing.assert_frame_equal(first, second)
    assert first["label"].tolist() == [1, 0, 2]
    assert first["text_original"].tolist() == SLICE["text_original"].tolist()


def test_the_trailing_slash_does_not_change_the_cache(monkeypatch, server, cpu_mode):
    monkeypatch.setenv("COURSE_DATA_URL", server.base + "/mirror")
    utils.load_course_data("train")
    monkeypatch.setenv("COURSE_DATA_URL", server.base + "/mirror/")
    utils.load_course_data("train")
    assert server.requests == ["/mirror/" + TRAIN]


def test_each_source_has_its_own_cache(monkeypatch, server, cpu_mode):
    (server.www / "mirror" / TRAIN).write_text(SLICE.iloc[:1].to_csv(index=False), encoding="utf-8")
    monkeypatch.setenv("COURSE_DATA_URL", server.base)
    assert len(utils.load_course_data("train")) == 3
    monkeypatch.setenv("COURSE_DATA_URL", server.base + "/mirror")
    assert len(utils.load_course_data("train")) == 1  # not the other source's cached file
    assert server.requests == ["/" + TRAIN, "/mirror/" + TRAIN]
    cached = files_under(cpu_mode)
    assert [p.name for p in cached] == [TRAIN, TRAIN] and cached[0].parent != cached[1].parent


def test_data_url_defaults_to_the_papers_repository(monkeypatch):
    monkeypatch.delenv("COURSE_DATA_URL", raising=False)
    assert data.data_url() == data.DEFAULT_DATA_URL
    assert data.data_url().endswith("/data_clean/")


def test_missing_file_gives_a_connection_error_with_the_fixes(monkeypatch, server, cpu_mode):
    monkeypatch.setenv("COURSE_DATA_URL", server.base + "/")
    url = f"{server.base}/{TEST}"
    with pytest.raises(ConnectionError) as excinfo:
        utils.load_course_data("test")
    message = str(excinfo.value)
    assert url in message and "HTTP 404" in message
    assert "COURSE_DATA_URL" in message and "COURSE_MODE=ci" in message
    assert server.requests == ["/" + TEST]
    assert files_under(cpu_mode) == []  # neither the file nor a .part file


def test_interrupted_download_is_not_cached(monkeypatch, server, cpu_mode):
    monkeypatch.setenv("COURSE_DATA_URL", server.base)
    server.truncate = "/" + TRAIN
    with pytest.raises(ConnectionError, match="closed after"):
        utils.load_course_data("train")
    assert files_under(cpu_mode) == []

    server.truncate = None  # the network is back: the next call downloads again
    df = utils.load_course_data("train")
    assert server.requests == ["/" + TRAIN, "/" + TRAIN]
    assert df["label"].tolist() == [1, 0, 2]
    assert [p.name for p in files_under(cpu_mode)] == [TRAIN]


def test_a_file_url_is_read_in_place(monkeypatch, tmp_path, cpu_mode):
    own = tmp_path / "my data"
    own.mkdir()
    SLICE.to_csv(own / TRAIN, index=False)
    monkeypatch.setenv("COURSE_DATA_URL", own.as_uri())
    assert utils.load_course_data("train")["label"].tolist() == [1, 0, 2]
    SLICE.iloc[:2].to_csv(own / TRAIN, index=False)  # edited: the next load sees the edit
    assert utils.load_course_data("train")["label"].tolist() == [1, 0]
    assert files_under(cpu_mode) == []  # nothing cached
    with pytest.raises(FileNotFoundError) as excinfo:
        utils.load_course_data("test")
    assert str(own / TEST) in str(excinfo.value) and TRAIN in str(excinfo.value)


def test_download_replaces_an_empty_cached_file(server, tmp_path, cpu_mode):
    target = tmp_path / "dl" / TRAIN
    target.parent.mkdir()
    target.write_bytes(b"")
    assert data.download(f"{server.base}/{TRAIN}", target) == target
    assert server.requests == ["/" + TRAIN]
    assert target.read_bytes() == (server.www / TRAIN).read_bytes()


def test_download_keeps_a_cached_file(server, tmp_path, cpu_mode):
    target = tmp_path / "dl" / TRAIN
    target.parent.mkdir()
    cached = SLICE.iloc[:1].to_csv(index=False)  # not what the server has: proves nothing was fetched
    target.write_text(cached, encoding="utf-8")
    assert data.download(f"{server.base}/{TRAIN}", target) == target
    assert server.requests == [] and target.read_text(encoding="utf-8") == cached


def test_refused_connection(tmp_path, cpu_mode):
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{TRAIN}"
    target = tmp_path / "dl" / TRAIN
    with pytest.raises(ConnectionError) as excinfo:
        data.download(url, target, timeout=5)
    assert url in str(excinfo.value) and "COURSE_DATA_URL" in str(excinfo.value)
    assert list(target.parent.iterdir()) == []


# ---------------------------------------------------------------- what came back is not the CSV

# A rate-limit page as a proxy or a host may send it, with status 200. The first has a comma, so
# pandas cannot parse it (ParserError); the second parses, as one column named after its first line.
RATE_LIMIT_PAGE = (b"<!DOCTYPE html>\n<html><head><title>429 Too Many Requests</title></head>\n"
                   b"<body><p>Slow down, please: try again in a minute.</p></body></html>\n")
ERROR_PAGE = b"<html>\n<head><title>Service unavailable</title></head>\n<body>Back soon</body>\n</html>\n"


@pytest.mark.parametrize("body, shown", [(RATE_LIMIT_PAGE, "429 Too Many Requests"), (ERROR_PAGE, "Service unavailable")],
                         ids=["unparseable", "parses-as-one-column"])
def test_an_html_page_sent_with_status_200_is_not_cached(monkeypatch, server, cpu_mode, body, shown):
    monkeypatch.setenv("COURSE_DATA_URL", server.base)
    server.replies["/" + TRAIN] = (200, "text/html; charset=utf-8", body)
    with pytest.raises(DataError) as excinfo:
        utils.load_course_data("train")
    message = str(excinfo.value)
    assert f"{server.base}/{TRAIN}" in message and "web page (HTML)" in message
    assert "text/html" in message and shown in message  # what came back
    assert "Nothing was cached" in message and "COURSE_DATA_URL" in message
    assert "Rename your columns" not in message  # the misleading advice for one's own files
    assert files_under(cpu_mode) == []

    del server.replies["/" + TRAIN]  # the server is fine again: the next load downloads and works
    assert utils.load_course_data("train")["label"].tolist() == [1, 0, 2]
    assert server.requests == ["/" + TRAIN, "/" + TRAIN]


def test_a_csv_without_the_course_columns_is_not_cached(server, tmp_path, cpu_mode):
    server.replies["/other.csv"] = (200, "text/csv", b"id,score\n1,0.5\n2,0.7\n")
    target = tmp_path / "dl" / TRAIN
    with pytest.raises(DataError) as excinfo:
        data.download(f"{server.base}/other.csv", target)
    message = str(excinfo.value)
    assert "lacks the column(s) ['label_text', 'text_original'" in message and "found: ['id', 'score']" in message
    assert "text/csv" in message and "id,score" in message
    assert files_under(target.parent) == []


def test_a_cached_web_page_from_an_older_version_is_fetched_again(monkeypatch, server, cpu_mode):
    monkeypatch.setenv("COURSE_DATA_URL", server.base)
    utils.load_course_data("train")
    (cached,) = files_under(cpu_mode)
    cached.write_bytes(ERROR_PAGE)  # what the cache held when a bad download was stored
    df = utils.load_course_data("train")
    assert df["label"].tolist() == [1, 0, 2]
    assert server.requests == ["/" + TRAIN, "/" + TRAIN]
    assert cached.read_bytes() == (server.www / TRAIN).read_bytes()


def test_http_500_is_a_connection_error_and_nothing_is_cached(monkeypatch, server, cpu_mode):
    monkeypatch.setenv("COURSE_DATA_URL", server.base)
    server.replies["/" + TRAIN] = (500, "text/html", b"<h1>Internal Server Error</h1>")
    with pytest.raises(ConnectionError) as excinfo:
        utils.load_course_data("train")
    message = str(excinfo.value)
    assert f"{server.base}/{TRAIN}" in message and "HTTP 500" in message and "COURSE_DATA_URL" in message
    assert files_under(cpu_mode) == []
    del server.replies["/" + TRAIN]
    assert len(utils.load_course_data("train")) == 3


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_server_that_stalls_times_out_and_nothing_is_cached(server, tmp_path, cpu_mode, when):
    server.stall["/" + TRAIN] = when
    target = tmp_path / "dl" / TRAIN
    began = time.monotonic()
    with pytest.raises(ConnectionError) as excinfo:
        data.download(f"{server.base}/{TRAIN}", target, timeout=0.5)
    assert time.monotonic() - began < 10  # the timeout ended it, not the server
    message = str(excinfo.value)
    assert f"{server.base}/{TRAIN}" in message and "no answer within 0.5 s" in message
    assert server.requests == ["/" + TRAIN]
    assert files_under(target.parent) == []
