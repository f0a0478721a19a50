"""Shared test fixtures, and the rules for skipped tests.

Under CI (CI=true) a skipped test is a failure: a skip there hides a missing server, browser or
package that the course needs. Only three kinds of skip are allowed, and they are reported:
  - tests marked `@pytest.mark.gpu`, on a machine without a CUDA GPU: they are not run, and the
    terminal summary lists them as "not run: no CUDA GPU";
  - tests marked `@pytest.mark.optional(reason="...")`: they may skip for that reason (keep these few);
  - exercise stubs in notebooks run under nbval (cells tagged `exercise` and `nbval-skip`).
The markers are registered in pytest.ini.
"""

import importlib.util
import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NO_GPU = "not run: no CUDA GPU"
EXERCISE_STUB = "exercise stub: the student writes this code"
_no_cuda: bool | None = None  # set at collection, when a gpu test is collected
_allowed: dict[str, str] = {}  # node id -> why its skip is allowed, for the terminal summary


def under_ci() -> bool:
    """True when the tests run under CI (CI=true, as .ci/run's environment sets; also 1 or yes)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark gpu tests as not run when there is no CUDA GPU (torch is imported only if one is collected)."""
    global _no_cuda
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    _no_cuda = not torch.cuda.is_available()
    if _no_cuda:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=NO_GPU))


def allowed_skip(item: pytest.Item) -> str | None:
    """Why `item` may be skipped under CI, or None when a skip of it would hide a failure."""
    if item.get_closest_marker("gpu") and _no_cuda:
        return NO_GPU
    optional = item.get_closest_marker("optional")
    if optional:
        reason = optional.kwargs.get("reason") or (optional.args[0] if optional.args else "")
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.optional needs a reason=\"...\" saying why it may skip.")
        return reason
    tags = set(getattr(item, "cell", {}).get("metadata", {}).get("tags", []))  # an nbval notebook cell
    if {"exercise", "nbval-skip"} <= tags:
        return EXERCISE_STUB
    return None


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason").
    text = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return text.removeprefix("Skipped: ")


def _ci_failure(reason: str) -> str:
    return (f"skipped under CI=true, where every required test must run: {reason}\n"
            "Fix the cause (install what is missing, start what is not running), or, only if the test is truly "
            "optional, mark it @pytest.mark.optional(reason=\"...\") (see tests/conftest.py).")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI, turn the skip of a required test into a failure that says why it skipped."""
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    allowed = allowed_skip(item)
    if allowed is not None:
        _allowed[item.nodeid] = allowed
    elif under_ci():
        report.outcome = "failed"
        report.longrepr = _ci_failure(_skip_reason(report))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """Under CI, a whole module skipped at import (a module-level skip or importorskip) fails too."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and under_ci():
        report.outcome = "failed"
        report.longrepr = _ci_failure(_skip_reason(report))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """List the tests not run for want of a GPU, and the optional tests that skipped, each with its reason."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if not hasattr(r, "wasxfail")]
    no_gpu = [r for r in skipped if _skip_reason(r) == NO_GPU]
    others = [r for r in skipped if _skip_reason(r) != NO_GPU]
    if no_gpu:
        terminalreporter.section("gpu tests", sep="-")
        for report in no_gpu:
            terminalreporter.line(f"{NO_GPU}: {report.nodeid}")
    if others:
        terminalreporter.section("skipped tests", sep="-")
        for report in others:
            reason, allowed = _skip_reason(report), _allowed.get(report.nodeid)
            terminalreporter.line(f"skipped: {report.nodeid}: {reason}"
                                  + (f" (allowed: {allowed})" if allowed and allowed != reason else ""))


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


@pytest.fixture(scope="session")
def argilla(argilla_launcher) -> dict:
    """(url, api_key, ...) of the Argilla server to test against: ARGILLA_API_URL/KEY when set
    (make test starts the throw-away one), else one started here when its venv exists."""
    info = argilla_launcher.server_for_tests()
    if info is None:
        pytest.skip(argilla_launcher.SKIP_REASON)
    return info


@pytest.fixture(scope="session")
def owner(argilla):
    """An Argilla client with the server owner's key."""
    import utils

    return utils.connect(utils.ArgillaCredentials(argilla["url"], argilla["api_key"], "test"))
