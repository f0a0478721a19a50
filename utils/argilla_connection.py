"""Connecting to an Argilla server (notebook 6 and the classroom set-up): where the address and key
come from, a check of the address, retries, and the errors that say what to do.

`argilla` is imported inside the functions, so `import utils` stays fast in the other notebooks.
"""

from __future__ import annotations

import getpass
import os
import sys
import warnings
from dataclasses import dataclass, field

import pandas as pd

ANNOTATE_IN = ("argilla", "notebook")  # the values of notebook 6's ANNOTATE_IN setting


class AnnotationError(Exception):
    """A problem with the Argilla server or the data to annotate; the message says what to do.

    In Jupyter and Colab it shows as its message alone, without a traceback: IPython calls
    `_render_traceback_` when an exception has it. The cell still fails and "Run all" stops.
    """

    def _render_traceback_(self) -> list[str]:
        lines = str(self).splitlines() or [""]
        return [f"{type(self).__name__}: {lines[0]}", *lines[1:]]


# ---------------------------------------------------------------- connecting

_NO_SERVER = """No Argilla server is configured.
To use one, give the notebook the address and the API key of a server in one of three ways:
  1. On Colab: the key icon in the left bar -> add two secrets, ARGILLA_API_URL and
     ARGILLA_API_KEY, and allow this notebook to read them; then run the settings cell again.
  2. Anywhere: set the environment variables ARGILLA_API_URL and ARGILLA_API_KEY before starting Jupyter.
  3. Run the settings cell again and type them when asked.
No server yet? The section "Connect to a server" explains the two set-ups: a free Hugging Face
Space from the Argilla template, or Argilla on your own machine with Docker."""


@dataclass(frozen=True)
class ArgillaCredentials:
    """Where to reach an Argilla server. The key is never shown (not even in the repr)."""

    api_url: str | None
    api_key: str | None = field(repr=False)
    source: str = "nowhere"

    def __repr__(self) -> str:
        key = "set" if self.api_key else "not set"
        return f"ArgillaCredentials(api_url={self.api_url!r}, api_key={key}, from {self.source})"


def _colab_secret(name: str) -> str | None:
    """A Colab secret, or None outside Colab / when it is missing or not shared with the notebook."""
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import userdata

        return userdata.get(name) or None
    except Exception:  # SecretNotFoundError, NotebookAccessError, TimeoutException: all mean "not available"
        return None


def _ask(prompt: str, secret: bool) -> str | None:
    """Ask the person at the keyboard; None where nobody can answer (a test run, a script)."""
    try:
        answer = getpass.getpass(prompt) if secret else input(prompt)
    except (EOFError, OSError, NotImplementedError):  # IPython's StdinNotImplementedError is a NotImplementedError
        return None
    return answer.strip() or None


def argilla_credentials(ask: bool = True) -> ArgillaCredentials:
    """ARGILLA_API_URL and ARGILLA_API_KEY from the environment, Colab secrets, or a prompt.

    They are looked up in that order, each variable on its own; with `ask`, what is still missing
    is asked for (the key with getpass, so it is not shown). Nothing is written anywhere.
    """
    found, sources = {}, []
    for name in ("ARGILLA_API_URL", "ARGILLA_API_KEY"):
        value, source = os.environ.get(name, "").strip() or None, "environment"
        if value is None:
            value, source = _colab_secret(name), "Colab secrets"
        if value is None and ask:
            what = "Argilla server address (Enter to skip): " if name.endswith("URL") else "Argilla API key: "
            if name.endswith("KEY") and found.get("ARGILLA_API_URL") is None:
                value = None  # no address, no point asking for a key
            else:
                value, source = _ask(what, secret=name.endswith("KEY")), "prompt"
        found[name] = value
        if value is not None:
            sources.append(source)
    return ArgillaCredentials(found["ARGILLA_API_URL"], found["ARGILLA_API_KEY"],
                              " and ".join(dict.fromkeys(sources)) or "nowhere")


def check_api_url(api_url: str) -> str:
    """The server address without a trailing slash; AnnotationError for an address that cannot work."""
    url = api_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise AnnotationError(f"ARGILLA_API_URL={url!r} is not a web address: it must start with http:// or "
                              "https://, e.g. https://your-name-your-space.hf.space or http://localhost:6900.")
    if "huggingface.co/spaces/" in url:
        owner_space = url.split("huggingface.co/spaces/", 1)[1].strip("/").split("/")
        direct = "-".join(owner_space[:2]).lower().replace("_", "-").replace(".", "-")
        raise AnnotationError(
            f"{url} is the Space's page on the Hub, not the server itself. Use the Space's direct address, "
            f"probably https://{direct}.hf.space (on the Space page: the three dots -> 'Embed this Space')."
        )
    if url.endswith("/api") or "/api/" in url:
        raise AnnotationError(f"ARGILLA_API_URL={url!r} ends in an API path: give the server's address without "
                              "it, e.g. http://localhost:6900.")
    return url


def connect(credentials: ArgillaCredentials, timeout: int = 30, retries: int = 1):
    """An `argilla.Argilla` client for the server, after checking that it answers and knows the key.

    Every failure becomes an AnnotationError that says what to fix: nothing configured, an address
    that is not a server, a server that does not answer (asleep, stopped, wrong port), a wrong key.
    """
    if not credentials.api_url:
        raise AnnotationError(_NO_SERVER)
    url = check_api_url(credentials.api_url)
    if not credentials.api_key:
        raise AnnotationError(f"The server address is set ({url}) but the API key is not. Set ARGILLA_API_KEY "
                              "(environment or Colab secret): in Argilla's web page, your avatar -> My settings "
                              "-> API key.")
    import argilla as rg
    import httpx
    from argilla._exceptions import ArgillaCredentialsError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client = rg.Argilla(api_url=url, api_key=credentials.api_key, timeout=timeout, retries=retries)
            client.me  # a first request with the key: a wrong key fails here
    except ArgillaCredentialsError:
        raise AnnotationError(f"The server at {url} answered but refused the API key. Copy the key again from "
                              "Argilla's web page (your avatar -> My settings -> API key) into ARGILLA_API_KEY; "
                              "check that it belongs to this server.") from None
    except (httpx.ConnectError, httpx.TimeoutException) as error:
        raise AnnotationError(
            f"No Argilla server answers at {url} ({type(error).__name__}: {error}).\n"
            "Check the address and that the server runs: a Hugging Face Space must show 'Running' on its page "
            "(a free Space sleeps when unused; opening its page wakes it, which takes a minute or two); "
            "a Docker server must be started (docker ps) and reachable from where this notebook runs - "
            "Colab cannot reach http://localhost on your laptop."
        ) from None
    except (httpx.HTTPError, ValueError) as error:
        raise AnnotationError(f"{url} answered, but not like an Argilla server ({type(error).__name__}). Check "
                              "ARGILLA_API_URL: it is the address you open in the browser to see Argilla.") from None
    return client


def connect_or_fall_back(credentials: ArgillaCredentials, annotate_in: str = "argilla", timeout: int = 30,
                         retries: int = 1):
    """An Argilla client (see `connect`), or None: annotate in the notebook instead. Says which, and why.

    `annotate_in` is "argilla" (connect; if that fails, print why and fall back to the notebook) or
    "notebook" (no server at all). Anything else is an AnnotationError.
    """
    if annotate_in not in ANNOTATE_IN:
        raise AnnotationError(f"ANNOTATE_IN must be 'argilla' (Argilla's web page, falling back to the notebook when "
                              f"no server answers) or 'notebook' (a form in this notebook), not {annotate_in!r}.")
    if annotate_in == "notebook":
        print("ANNOTATE_IN = 'notebook': no server; you annotate in a form in this notebook (section 5).")
        return None
    try:
        return connect(credentials, timeout=timeout, retries=retries)
    except AnnotationError as error:
        print("You annotate in a form in this notebook instead (section 5); everything after it works the same.\n"
              f"Why not on the server: {error}\n"
              "To use the server, fix that and run again from the settings cell. To annotate in the notebook without "
              "this message, set ANNOTATE_IN = 'notebook'.")
        return None


def connection_table(client) -> pd.DataFrame:
    """Who you are on the server: address, user, role, workspaces, server version (never the key).

    With no server (`client` None), where the annotation happens instead.
    """
    if client is None:
        return pd.DataFrame({"": {"server": "none", "annotate in": "this notebook: a form in section 5"}})
    me = client.me
    info = {
        "server": client.api_url,
        "user": me.username,
        "role": str(getattr(me.role, "value", me.role)),
        "workspaces": ", ".join(w.name for w in client.workspaces) or "(none)",
    }
    try:
        info["Argilla server version"] = client.api.http_client.get("/api/v1/version").json()["version"]
    except Exception:
        pass
    return pd.DataFrame({"": info})
