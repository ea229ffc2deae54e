# rkt — make demo | make test | make lint | make bench | make install
# Every target that needs the environment runs `setup` first, so a fresh Debian 12 machine (as root)
# needs nothing else. CI (.ci/run) calls `make test`.

VENV    := .venv
PY      := $(VENV)/bin/python
RKT     := $(VENV)/bin/rkt
PYTEST  ?= $(VENV)/bin/pytest
STAMP   := $(VENV)/.rkt-setup-stamp
# The stage1's native resident programs (docs/architecture.md "Native resident processes")
NATIVE     := src/rkt/stage1/native
NATIVE_BIN := $(patsubst $(NATIVE)/%.c,$(NATIVE)/bin/%,$(wildcard $(NATIVE)/*.c))

.PHONY: all setup demo test test-unit test-integration lint format bench bench-setup install clean

all: test

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

$(NATIVE)/bin/%: $(NATIVE)/%.c $(wildcard $(NATIVE)/*.h) | $(STAMP)
	mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra -Werror -static -o $@.tmp $< $(NATIVE_LIBS) && mv $@.tmp $@

$(NATIVE)/bin/app-exec: NATIVE_LIBS := -lseccomp

# The programs every pod start execs are built with musl: glibc's start-up probes the CPU's
# caches with ~80 cpuid instructions, each a VM exit here (~8 us), ~0.7 ms a process
# (docs/architecture.md). musl-gcc sees the kernel's headers through build/kernel-headers only.
MUSL_CC        := musl-gcc
MULTIARCH      := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
KERNEL_HEADERS := build/kernel-headers
MUSL_FLAGS      = -O2 -Wall -Wextra -Werror -static -I$(KERNEL_HEADERS)

$(KERNEL_HEADERS): | $(STAMP)
	mkdir -p $@.tmp
	ln -sfn /usr/include/linux $@.tmp/linux
	ln -sfn /usr/include/asm-generic $@.tmp/asm-generic
	ln -sfn /usr/include/$(MULTIARCH)/asm $@.tmp/asm
	rm -rf $@ && mv $@.tmp $@

$(NATIVE)/bin/run-waiter $(NATIVE)/bin/pod-supervisor: $(NATIVE)/bin/%: $(NATIVE)/%.c $(wildcard $(NATIVE)/*.h) | $(STAMP) $(KERNEL_HEADERS)
	mkdir -p $(@D)
	$(MUSL_CC) $(MUSL_FLAGS) -o $@.tmp $< && mv $@.tmp $@

# pod-init carries app-exec's code (its main renamed; no libseccomp: RKT_APP_EXEC_BPF_ONLY) and
# runs it in each app's fork instead of exec'ing the app-exec beside it, unless the app's
# filter must be compiled (src/rkt/stage1/native/apps.h, RKT_BUILTIN_APP_EXEC)
$(NATIVE)/bin/pod-init: $(NATIVE)/pod-init.c $(NATIVE)/app-exec.c $(wildcard $(NATIVE)/*.h) | $(STAMP) $(KERNEL_HEADERS)
	mkdir -p $(@D)
	$(MUSL_CC) $(MUSL_FLAGS) -DRKT_APP_EXEC_BPF_ONLY -Dmain=app_exec_main -c -o $@.app-exec.o $(NATIVE)/app-exec.c
	$(MUSL_CC) $(MUSL_FLAGS) -DRKT_BUILTIN_APP_EXEC -DRKT_APP_EXEC_BPF_ONLY -o $@.tmp $< $@.app-exec.o \
	  && rm -f $@.app-exec.o && mv $@.tmp $@

# the default seccomp filter, compiled once by app-exec (src/rkt/stage1/ns/prebuilt.py)
$(NATIVE)/bin/seccomp-default: $(NATIVE)/bin/app-exec src/rkt/stage1/ns/prebuilt.py src/rkt/stage1/ns/launch.py src/rkt/stage1/common/seccomp.py | $(STAMP)
	PYTHONPATH=src $(VENV)/bin/python -m rkt.stage1.ns.prebuilt $(NATIVE)/bin

# rkt's compiled modules in one file, which the launcher and the stage1 scripts load from
# (src/rkt/bundle.py; a module edited since is imported from its source)
BUNDLE := $(VENV)/.rkt-bundle-stamp
$(BUNDLE): $(shell find src/rkt -name '*.py') | $(STAMP)
	PYTHONPATH=src $(VENV)/bin/python -m rkt.bundle
	touch $@

setup: $(STAMP) $(NATIVE_BIN) $(NATIVE)/bin/seccomp-default $(BUNDLE)

demo: setup
	bash scripts/demo.sh

test: setup
	$(PYTEST) -q tests $(PYTEST_ARGS)

test-unit: setup
	$(PYTEST) -q tests/unit $(PYTEST_ARGS)

test-integration: setup
	$(PYTEST) -q tests/integration $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench-setup: setup
	bash bench/setup.sh

bench: bench-setup
	env -u PYTHONDONTWRITEBYTECODE $(PY) bench/run.py $(BENCH_ARGS)

install: setup
	ln -sf $(CURDIR)/$(RKT) /usr/local/bin/rkt

clean:
	rm -rf $(VENV) $(NATIVE)/bin build dist demo-out src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
