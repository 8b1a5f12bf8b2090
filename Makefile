# One command each: `make test` (the suite) and `make bench` (the main job: profile_forces.py on the
# bundled Cu-shaped potential, side by side with PyACE; BENCH_ARGS passes options through).
# Both create .venv on first use and install acepy with what it needs.
PYTHON ?= python3
VENV ?= .venv
VENV_FLAGS ?=
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.acepy-installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.acepy-bench-installed

.PHONY: test bench bench-hessian install clean wheel

$(VPY):
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)

# torch==2.13.0 first, and only when the environment has no torch yet: otherwise pip would
# resolve `torch` to the newest CUDA build (several GB) on a CPU machine. A user with a GPU build
# of torch keeps it (create .venv with it, or use VENV_FLAGS=--system-site-packages).
$(STAMP): $(VPY) pyproject.toml
	$(VPY) -m pip install -q --upgrade pip "setuptools>=77" wheel
	@$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VPY) -m pytest -q $(PYTEST_ARGS)

# the suite as a plain clone runs it: python-ace's stand-ins even where ../shared/reference is there
.PHONY: test-generated
test-generated: $(STAMP)
	ACEPY_TEST_DATA=generated $(VPY) -m pytest -q $(PYTEST_ARGS)

$(BENCH_STAMP): $(STAMP)
	$(VPY) -m pip install -q -e ".[bench]"
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(VPY) profiling/profile_forces.py $(BENCH_ARGS)

# Hessians and Hessian-vector products against force calls and finite differences (profile_hessian.py)
bench-hessian: $(BENCH_STAMP)
	$(VPY) profiling/profile_hessian.py $(BENCH_ARGS)

# Basis rows (the design matrix: E, F, V, Hessian rows) against one force call (profile_rows.py)
.PHONY: bench-rows
bench-rows: $(BENCH_STAMP)
	$(VPY) profiling/profile_rows.py $(BENCH_ARGS)

# Coulomb (DSF, Ewald, PME): energy + forces and Hessians of rattled rock salt (profile_coulomb.py)
.PHONY: bench-coulomb
bench-coulomb: $(STAMP)
	$(VPY) profiling/profile_coulomb.py $(BENCH_ARGS)

# The extrapolation grade gamma through ASE against a force call and python-ace (profile_gamma.py, ~5 min)
.PHONY: bench-gamma
bench-gamma: $(BENCH_STAMP)
	$(VPY) profiling/profile_gamma.py $(BENCH_ARGS)

# The bundled Cu-EMT-fit: EMT labels + the linear fit (~2 min), then its checks against EMT (~7 min)
.PHONY: fit-cu
fit-cu: $(STAMP)
	$(VPY) -m acepy.fit.cu_emt
	$(VPY) profiling/fitted_cu_checks.py

# The GPU check (issue 21, profiling/gpu_check.py): every gpu-marked test on compiled Triton, the CUDA
# benchmarks, one folder of results ($OUT, else profiling/results/gpu_check_<commit>/). Without
# CUDA: GPU_CHECK_ARGS=--dry-run (every step on the CPU, tiny). The device machine has no network:
# there run the script with its own python3 (its docstring has the device tool's command), or
# `make gpu-check VPY=python3 GPU_CHECK_STAMP=` to skip the venv.
.PHONY: gpu-check
GPU_CHECK_ARGS ?=
GPU_CHECK_STAMP ?= $(BENCH_STAMP)
gpu-check: $(GPU_CHECK_STAMP)
	$(VPY) profiling/gpu_check.py $(GPU_CHECK_ARGS)

wheel: $(STAMP)
	$(VPY) -m pip wheel --no-deps --no-build-isolation -w dist .

clean:
	rm -rf $(VENV) build dist *.egg-info
