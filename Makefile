# Two commands for a fresh machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; other machines may use any torch>=2.1 (see pyproject.toml).
TORCH_PIN ?= torch==2.13.0

# Two stamps in the one .venv: the core (what the demo runs) and every extra (what the tests
# need); `make test` after `make demo` adds the extras to the same .venv.
CORE := $(VENV)/.installed-core
EXTRAS := $(VENV)/.installed-extras

.PHONY: demo test bench bench-quick validation train clean

# One pip call for torch and the core: one resolve, and the demo waits for nothing else.
$(CORE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_PIN)" -e .
	touch $@

# pytest-qt goes with the napari extra, not in the test extra: without a Qt binding it would
# stop every pytest run.
$(EXTRAS): $(CORE)
	$(BIN)/pip install --quiet -e ".[test,cluster,napari,microscopy,raw,heif,metadata,mesh,watch]" \
		"pytest-qt>=4.4"
	touch $@

demo: $(CORE)
	$(BIN)/stackmff fuse examples/pcb -o out/pcb_fused.png --focus-map out/pcb_focus_map.png
	@echo "wrote out/pcb_fused.png and out/pcb_focus_map.png"

# The napari plugin's tests drive a real viewer: a virtual X server with OpenGL
# (scripts/setup_gui.sh); the ray-traced renderer's tests run POV-Ray and draw the Debian
# photos (scripts/setup_training.sh).
test: $(EXTRAS)
	scripts/setup_gui.sh
	scripts/setup_training.sh
	xvfb-run -a -s "-screen 0 1600x1200x24" $(BIN)/python -m pytest --durations=15

# Benchmarks: installs the peers (Debian enfuse, GNU time, opencv-doc's Aloe scene) first.
bench: $(CORE)
	scripts/setup_bench.sh
	$(BIN)/pip install --quiet -e ".[test,bench]"
	$(BIN)/stackmff bench

bench-quick: $(CORE)
	scripts/setup_bench.sh
	$(BIN)/pip install --quiet -e ".[test,bench]"
	$(BIN)/stackmff bench --quick --out out/benchmarks-quick.md

# The held-out validation suites (every N, order, interference) that judge a trained model.
validation: $(CORE)
	scripts/setup_bench.sh
	scripts/setup_training.sh
	$(BIN)/pip install --quiet -e ".[test,bench]"
	$(BIN)/stackmff bench --suite validation validation-order validation-interference \
		--no-plots --out docs/validation.md

# Train (or continue training) the default model into runs/default/.
train: $(CORE)
	scripts/setup_training.sh
	$(BIN)/stackmff train --config configs/default.toml --resume

clean:
	rm -rf $(VENV) out
