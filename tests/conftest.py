"""Shared test fixtures, and the rules for skipped tests.

Under CI (CI=true) a skipped test is a failure: a skip there hides a missing server, browser or
package that the course needs. Only three kinds of skip are allowed, and they are reported:
  - tests marked `@pytest.mark.gpu`, on a machine without a CUDA GPU: they are not run, and the
    terminal summary lists them as "not run: no CUDA GPU";
  - tests marked `@pytest.mark.optional(reason="...")`: they may skip for that reason (keep these few);
  - exercise stubs in notebooks run under nbval (cells tagged `exercise` and `nbval-skip`).
The markers are registered in pytest.ini.

Two tiers (see CONTRIBUTING.md): `make test` runs every test not marked `full` (units, browser
tests, every notebook once in ci mode); `make test-all` runs them all. Both spread the tests over
pytest-xdist workers with `--dist loadgroup` and the scheduler below (worker_group): each test file is
one group (its tests ran one after the other when they were written, and some share a module-scoped
fixture or server-side names), and each chained notebook setting is one group (in it, notebook 6
reads the file notebook 5 wrote). What
workers would otherwise share is made theirs: the results log (COURSE_RESULTS_DIR, below), the
notebook-run folders (one per setting, and one per notebook for the independent ci runs), and the
hub fixture, built under a lock (tests/hub_fixture.py).
"""

import importlib.util
import os
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NO_GPU = "not run: no CUDA GPU"
EXERCISE_STUB = "exercise stub: the student writes this code"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... under xdist; "" otherwise
if WORKER and os.environ.get("COURSE_RESULTS_DIR"):
    # One results log per worker: a test that reads "the log" must see only the rows its own process wrote.
    # (Set here, before any test module imports utils.)
    os.environ["COURSE_RESULTS_DIR"] = str(pathlib.Path(os.environ["COURSE_RESULTS_DIR"]) / WORKER)
if WORKER:
    # Workers share the cores: a torch in each that starts a thread per core would have them fight over every
    # core. Each worker (and the kernels and commands it starts, which inherit this) gets its share instead.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(_share))
_no_cuda: bool | None = None  # set at collection, when a gpu test is collected
_allowed: dict[str, str] = {}  # node id -> why its skip is allowed, for the terminal summary


def under_ci() -> bool:
    """True when the tests run under CI (CI=true, as .ci/run's environment sets; also 1 or yes)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def worker_group(nodeid: str) -> str:
    """The group of tests that must run on one worker, one after the other, from a test's node id.

    - A chained notebook setting of tests/test_notebook_runs.py (`gpu`, `cpu`, `ci-protectionism`, ...):
      its notebooks share one results folder, and notebook 6 reads what notebook 5 saved.
    - An independent ci run of a notebook (`ci-3_tune_bert`), or a kill-and-resume test of one
      (tests/test_notebook_resume.py, each in folders of its own): a group of its own.
    - Any other test: its file (its tests were written to run in order, and some share a module-scoped
      fixture or names on the Argilla server).
    The setting is the run id up to the notebook's name, which starts with its number: "gpu-fp32-3_tune_bert".
    """
    path = nodeid.split("::", 1)[0]
    if path.endswith("test_notebook_resume.py"):
        return nodeid
    run = re.fullmatch(r".*test_notebook_runs\.py::test_notebook_run\[(.+?)-\d_.*\]", nodeid)
    if run is None:
        return path
    return nodeid if run.group(1) == "ci" else f"notebook-runs-{run.group(1)}"


@pytest.hookimpl(tryfirst=True)  # before xdist's own choice of scheduler
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Hand out whole groups (worker_group) to the workers, in collection order.

    pytest-xdist's own `--dist loadgroup` groups by `xdist_group` marks by rewriting each test's node id,
    which pytest 9 no longer lets it do (the id lives in `Node._id`): it silently spreads a group over
    the workers. This scheduler groups by the node id as it is, which needs no rewriting.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    # In collection order (the longest first, see pytest_collection_modifyitems): by default xdist hands out
    # the groups with the most tests first, which left the single-test notebook runs, the longest, to the end.
    config.option.loadscopereorder = False

    class CourseGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return CourseGroups(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest tests first; mark gpu tests as not run when there is no CUDA GPU (torch is
    imported only if one is collected)."""
    # Groups are handed out in collection order: the notebook runs (the longest items) go first, so that
    # no worker is left with a long notebook at the end while the others wait.
    items.sort(key=lambda item: item.path.name not in ("test_notebook_resume.py", "test_notebook_runs.py"))
    global _no_cuda
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    _no_cuda = not torch.cuda.is_available()
    if _no_cuda:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=NO_GPU))


def pytest_sessionstart(session: pytest.Session) -> None:
    """A fresh notebook-run timings table, once per session: by the process that starts the workers (or
    the only one), never by a worker, which would wipe the rows the others wrote."""
    if not WORKER:
        runs_dir = pathlib.Path(os.environ.get("NOTEBOOK_RUNS_DIR", ROOT / "build" / "notebook-runs"))  # as in
        (runs_dir.resolve() / "timings.csv").unlink(missing_ok=True)                    # test_notebook_runs.py


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


@pytest.fixture(scope="module")  # shared by test_train_classifier.py and test_resume.py
def tiny_encoder(tmp_path_factory) -> str:
    """A BERT with one layer of width 16, randomly initialised once, and the ci stand-in's tokenizer.

    What these tests check (which run may resume, seeding) does not depend on the model's size;
    with this one a training step takes milliseconds instead of seconds.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from utils import modes

    folder = tmp_path_factory.mktemp("tiny-encoder")
    tokenizer = AutoTokenizer.from_pretrained(modes.encoder_stand_in())
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
