# The two commands of the README. Both set up everything (Debian packages,
# configure, incremental build with ccache) and then run.
BUILD_DIR ?= build
JOBS ?= 2
export BUILD_DIR JOBS

.PHONY: demo test build fuzz-build setup format check-format clean

## make demo: set up, build, run the main demonstration
demo: build
	$(BUILD_DIR)/apps/engram-demo

## make test: set up, build, run the whole suite with ctest (including a
## short smoke run of every libFuzzer target, built with clang)
test: build fuzz-build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 600
	ctest --test-dir $(BUILD_DIR)-fuzz --output-on-failure -R '[.]fuzz_' --timeout 600

fuzz-build:
	scripts/build-fuzzers.sh

build:
	scripts/setup.sh

setup:
	scripts/setup.sh --deps

format:
	git ls-files '*.hpp' '*.cpp' | xargs clang-format -i

check-format:
	scripts/check-format.sh

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR)-fuzz
