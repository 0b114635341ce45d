# Thin wrapper over CMake: the two Quick start commands and a few conveniences.
#   make run   install missing build deps, build, start the PBX on its defaults
#   make test  the same set-up, then the whole suite through ctest (ASan+UBSan build)
BUILD      ?= build
TESTBUILD  ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
RUN_ARGS   ?=

.PHONY: all deps build run test clean format

all: build

deps:
	@packaging/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@$(BUILD)/sipbx serve $(RUN_ARGS)

# The suite runs against a sanitizer build with warnings as errors; the release
# build is compiled too so a warning in either configuration fails.
test: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIPBX_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cmake -S . -B $(TESTBUILD) -DCMAKE_BUILD_TYPE=Debug -DSIPBX_WERROR=ON -DSIPBX_SANITIZE=ON >/dev/null
	@cmake --build $(TESTBUILD) -j $(JOBS)
	@cd $(TESTBUILD) && ctest --output-on-failure -j $(JOBS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(TESTBUILD)
