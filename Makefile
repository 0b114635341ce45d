# Thin wrapper over CMake: the two Quick start commands and a few conveniences.
#   make run   install missing build deps, build, start the PBX on its defaults
#   make test  the same set-up, then the whole suite through ctest (ASan+UBSan build), and
#              the SIP and API tests again against a ThreadSanitizer build
BUILD      ?= build
TESTBUILD  ?= build-asan
TSANBUILD  ?= build-tsan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
RUN_ARGS   ?=
MAKEFLAGS  += --no-print-directory
VERSION    := $(shell awk '/^project.sipbx VERSION/ {print $$3}' CMakeLists.txt)

.PHONY: all deps build run test package clean format

all: build

deps:
	@packaging/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	@$(BUILD)/sipbx serve $(RUN_ARGS)

# The suite runs against a sanitizer build with warnings as errors; the release
# build is compiled too so a warning in either configuration fails, and the Debian
# package is built first so tests/package can check it. Then the tests that drive the
# daemon's threads hardest (labels sip and api) run once more against a ThreadSanitizer
# build, where any race report fails the test (docs/testing.md).
test: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIPBX_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && cpack -G DEB >/dev/null
	@cmake -S . -B $(TESTBUILD) -DCMAKE_BUILD_TYPE=Debug -DSIPBX_WERROR=ON -DSIPBX_SANITIZE=ON \
		-DSIPBX_DEB=$(CURDIR)/$(BUILD)/sipbx_$(VERSION)_amd64.deb >/dev/null
	@cmake --build $(TESTBUILD) -j $(JOBS)
	@cd $(TESTBUILD) && ctest --output-on-failure -j $(JOBS)
	@cmake -S . -B $(TSANBUILD) -DCMAKE_BUILD_TYPE=Debug -DSIPBX_WERROR=ON \
		-DSIPBX_SANITIZE=thread >/dev/null
	@cmake --build $(TSANBUILD) -j $(JOBS)
	@cd $(TSANBUILD) && ctest --output-on-failure -j $(JOBS) -L '^(sip|api)$$'

# The Debian package, from the same optimised build `make run` uses:
# build/sipbx_<version>_amd64.deb (binaries stripped).
package: build
	@cd $(BUILD) && cpack -G DEB >/dev/null && ls -1 $(CURDIR)/$(BUILD)/sipbx_$(VERSION)_amd64.deb

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(TESTBUILD) $(TSANBUILD)
