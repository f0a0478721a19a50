"""Shared test fixtures."""

import importlib.util
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def argilla_launcher():
    """tests/argilla_server/launcher.py as a module: test infrastructure, loaded once per session so
    every test file shares the server it starts."""
    name = "argilla_test_launcher"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "argilla_server" / "launcher.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
