"""Start and stop a throw-away Argilla server for the tests (test infrastructure, not course code).

    python tests/argilla_server/launcher.py setup    # the server's own venv (.venv-argilla-server)
    python tests/argilla_server/launcher.py start    # fresh data folder, wait until healthy
    python tests/argilla_server/launcher.py env      # ARGILLA_API_URL=... lines for the tests
    python tests/argilla_server/launcher.py stop     # stop it by PID, delete its data folder
    python tests/argilla_server/launcher.py status
    python tests/argilla_server/launcher.py run -- CMD ...   # start, run CMD with ARGILLA_* set, stop
                                                             # (even when CMD fails); exit with CMD's code

Standard library only: any Python 3.11 can run it. The server itself runs in its own venv
(requirements.txt beside this file), because its pins (httpx, pydantic, fastapi) would
downgrade the notebook environment. See README.md beside this file.

Environment: ARGILLA_SERVER_VENV (default .venv-argilla-server in the repo), ARGILLA_TEST_PORT
(default 6900), ARGILLA_TEST_DIR (default build/argilla-server in the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

# The tests' owner user. Test-only credentials for a server bound to 127.0.0.1.
OWNER_USERNAME = "owner"
OWNER_PASSWORD = "owner-password-for-tests"
OWNER_API_KEY = "hands-on-transformers-test-owner-key"
WORKSPACE = "argilla"

DEFAULT_PORT = 6900
MARKER = ".argilla-test-server"  # only folders holding this file are ever deleted
START_TIMEOUT_S = 120


def venv_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ARGILLA_SERVER_VENV", REPO_ROOT / ".venv-argilla-server"))


def venv_python() -> pathlib.Path:
    return venv_dir() / "bin" / "python"


def run_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("ARGILLA_TEST_DIR", REPO_ROOT / "build" / "argilla-server"))


def port() -> int:
    return int(os.environ.get("ARGILLA_TEST_PORT", DEFAULT_PORT))


def _state_file() -> pathlib.Path:
    return run_dir() / "server.json"


def server_is_installed() -> bool:
    """True when the server's venv exists (so start() can work)."""
    return venv_python().exists()


def setup(python: str = sys.executable) -> None:
    """Create the server's venv and install the pinned server packages into it."""
    subprocess.run([python, "-m", "venv", str(venv_dir())], check=True)
    subprocess.run([str(venv_python()), "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")],
                   check=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_in_use(host: str, number: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, number)) == 0


def healthy(url: str, timeout: float = 2.0) -> bool:
    """True when the server at `url` answers its status endpoint."""
    try:
        with urllib.request.urlopen(f"{url}/api/v1/status", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def state() -> dict | None:
    """The running server's url, api_key, pid, ... or None when none of ours is running."""
    path = _state_file()
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    return info if _alive(info["pid"]) else None


def env_lines(info: dict) -> list[str]:
    return [f"ARGILLA_API_URL={info['url']}", f"ARGILLA_API_KEY={info['api_key']}",
            f"ARGILLA_TEST_USERNAME={info['username']}", f"ARGILLA_TEST_PASSWORD={info['password']}"]


def _log_tail(path: pathlib.Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _fresh_run_dir() -> pathlib.Path:
    folder = run_dir()
    if folder.exists():
        if not (folder / MARKER).exists():
            raise RuntimeError(f"{folder} exists and was not made by this launcher: refusing to delete it. "
                               "Remove it yourself or set ARGILLA_TEST_DIR to another folder.")
        shutil.rmtree(folder)
    (folder / "home").mkdir(parents=True)
    (folder / "tmp").mkdir()
    (folder / MARKER).write_text("made by tests/argilla_server/launcher.py; deleted by its stop\n")
    return folder


def start(timeout: float = START_TIMEOUT_S) -> dict:
    """Start a server with an empty database; return its url, api_key, pid, username, password."""
    if not server_is_installed():
        raise RuntimeError(f"No server venv at {venv_dir()}: run `python tests/argilla_server/launcher.py setup`.")
    running = state()
    if running:
        raise RuntimeError(f"A test server is already running (pid {running['pid']}, {running['url']}): "
                           "stop it first (launcher.py stop); only one may run, its index is in its memory.")
    host, number = "127.0.0.1", port()
    if _port_in_use(host, number):
        raise RuntimeError(f"Port {number} on {host} is already in use: set ARGILLA_TEST_PORT to a free port.")
    folder = _fresh_run_dir()
    env = {
        **os.environ,
        "ARGILLA_HOME_PATH": str(folder / "home"),
        "ARGILLA_SEARCH_ENGINE": "memory",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TMPDIR": str(folder / "tmp"),  # the server copies its web UI there at each start
        "TEST_OWNER_USERNAME": OWNER_USERNAME,
        "TEST_OWNER_PASSWORD": OWNER_PASSWORD,
        "TEST_OWNER_API_KEY": OWNER_API_KEY,
        "TEST_WORKSPACE": WORKSPACE,
    }
    for name in ("ARGILLA_API_URL", "ARGILLA_API_KEY", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    log_path = folder / "server.log"
    began = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(venv_python()), str(HERE / "serve.py"), "--host", host, "--port", str(number)],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends it and only it
        )
    info = {"pid": process.pid, "url": f"http://{host}:{number}", "api_key": OWNER_API_KEY,
            "username": OWNER_USERNAME, "password": OWNER_PASSWORD, "workspace": WORKSPACE,
            "log": str(log_path)}
    _state_file().write_text(json.dumps(info, indent=2))
    (folder / "server.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _state_file().unlink(missing_ok=True)
            raise RuntimeError(f"The Argilla test server exited with code {process.returncode} while starting. "
                               f"Last lines of {log_path}:\n{_log_tail(log_path)}")
        if healthy(info["url"]):
            info["start_seconds"] = round(time.perf_counter() - began, 1)
            _state_file().write_text(json.dumps(info, indent=2))
            (folder / "server.env").write_text("\n".join(env_lines(info)) + "\n")
            return info
        time.sleep(0.5)
    stop()
    raise RuntimeError(f"The Argilla test server did not answer within {timeout:.0f} s; it was stopped. "
                       f"Last lines of its log:\n{_log_tail(log_path)}")


def stop(keep_log: bool = True) -> bool:
    """Stop the server by its PID (its process group) and delete its data folder; True if one ran."""
    folder = run_dir()
    path = _state_file()
    was_running = False
    if path.exists():
        pid = json.loads(path.read_text())["pid"]
        if _alive(pid):
            was_running = True
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
                try:
                    os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
                except ChildProcessError:
                    pass
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
    if folder.exists() and (folder / MARKER).exists():
        log = folder / "server.log"
        if keep_log and log.exists():
            shutil.copy(log, folder.parent / "argilla-server.log")
        shutil.rmtree(folder)
    return was_running


SKIP_REASON = ("no Argilla server for the tests: set ARGILLA_API_URL and ARGILLA_API_KEY (make test does: "
               "tests/argilla_server/launcher.py run -- pytest), or create the server venv with `python "
               "tests/argilla_server/launcher.py setup` so that the tests can start one")
_started_here: dict | None = None


def server_for_tests() -> dict | None:
    """The server the tests should use, as a dict with url, api_key, username, password.

    1. ARGILLA_API_URL and ARGILLA_API_KEY when set (ARGILLA_TEST_USERNAME / _PASSWORD optional);
    2. else the test server this launcher started earlier and that still runs;
    3. else a new one, when the server venv exists: started once per test process, stopped at exit;
    4. else None: the caller skips, with SKIP_REASON.
    """
    global _started_here
    if os.environ.get("ARGILLA_API_URL") and os.environ.get("ARGILLA_API_KEY"):
        return {"url": os.environ["ARGILLA_API_URL"].rstrip("/"), "api_key": os.environ["ARGILLA_API_KEY"],
                "username": os.environ.get("ARGILLA_TEST_USERNAME"), "password": os.environ.get("ARGILLA_TEST_PASSWORD")}
    if _started_here is None:
        running = state()
        if running:
            return running
        if not server_is_installed():
            return None
        import atexit

        _started_here = start()
        atexit.register(stop)
    return _started_here


def run_with_server(command: list[str]) -> int:
    """Run `command` with ARGILLA_API_URL / _KEY (and the test user) in its environment; return its exit code.

    When ARGILLA_API_URL and ARGILLA_API_KEY are set already, that server is used and none is
    started. Otherwise a test server is started first and stopped afterwards, also when the command
    fails or is interrupted.
    """
    if not command:
        raise RuntimeError("nothing to run: give the command after `run --`.")
    if os.environ.get("ARGILLA_API_URL") and os.environ.get("ARGILLA_API_KEY"):
        print(f"Using the Argilla server in ARGILLA_API_URL ({os.environ['ARGILLA_API_URL']}).", flush=True)
        return subprocess.run(command).returncode
    info = start()
    print(f"Argilla test server running at {info['url']} (pid {info['pid']}, started in {info['start_seconds']} s)",
          flush=True)
    env = {**os.environ, **dict(line.split("=", 1) for line in env_lines(info))}
    try:
        return subprocess.run(command, env=env).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        stop()
        print("Argilla test server stopped.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["setup", "start", "stop", "status", "env", "run"])
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="for run: the command to run, after --")
    args = parser.parse_args(argv)
    if args.command != "run" and args.rest:
        parser.error(f"unexpected arguments: {args.rest}")
    try:
        if args.command == "run":
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the server
            return run_with_server(args.rest[1:] if args.rest[:1] == ["--"] else args.rest)
        elif args.command == "setup":
            began = time.perf_counter()
            setup()
            print(f"Argilla server venv ready at {venv_dir()} in {time.perf_counter() - began:.0f} s")
        elif args.command == "start":
            info = start()
            print(f"Argilla test server running at {info['url']} (pid {info['pid']}, started in "
                  f"{info['start_seconds']} s); variables for the tests in {run_dir() / 'server.env'}")
        elif args.command == "stop":
            print("Argilla test server stopped." if stop() else "No Argilla test server was running.")
        elif args.command == "status":
            info = state()
            print(f"running: {info['url']} (pid {info['pid']})" if info else "not running")
            return 0 if info else 1
        elif args.command == "env":
            info = state()
            if not info:
                print("No Argilla test server is running: `launcher.py start` first.", file=sys.stderr)
                return 1
            print("\n".join(env_lines(info)))
    except RuntimeError as error:
        print(f"launcher.py {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
