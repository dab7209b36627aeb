# Thin wrapper: every target sets itself up (packages, configure, build) on a fresh Debian 12.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps configure build run test test-portable test-asan fuzz bench clean
all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/attnlab $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The engine and CLI suite built for any x86-64 (no -march=native): no test may depend on one
# CPU's rounding.
test-portable:
	$(MAKE) test BUILD=build-portable CMAKE_FLAGS="-DATTNLAB_NATIVE=OFF -DATTNLAB_GUI=OFF"

# The engine and CLI suite under AddressSanitizer, UBSan and LeakSanitizer.
test-asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DATTNLAB_SANITIZE=ON -DATTNLAB_GUI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo"

# The sanitized, portable build (clang, AddressSanitizer + UBSan, no -march=native, Eigen's own
# GEMM, one thread): the engine and CLI suite runs in it, then every libFuzzer target for
# FUZZ_SECONDS each. CI runs this after make test.
FUZZ_TARGETS = fuzz_safetensors fuzz_session fuzz_tokenizer
fuzz: deps
	$(MAKE) configure BUILD=build-fuzz CMAKE_FLAGS="-DATTNLAB_FUZZ=ON -DATTNLAB_GUI=OFF -DATTNLAB_NATIVE=OFF \
	  -DATTNLAB_OPENMP=OFF -DATTNLAB_OPENBLAS=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release"
	cmake --build build-fuzz -j $(JOBS)
	cd build-fuzz && ctest --output-on-failure -j $(JOBS)
	scripts/run-fuzz.sh build-fuzz $(FUZZ_SECONDS)

bench: deps configure
	cmake --build $(BUILD) -j $(JOBS) --target attnlab-bench attnlab
	$(BUILD)/attnlab-bench
	/usr/bin/python3 bench/torch_gpt2.py  # the same GPT-2 job in plain torch (skipped without python3-torch)
	/usr/bin/python3 bench/torch_attention.py  # the field's 4096 and 32k one-head jobs in plain torch
	/usr/bin/python3 tests/gui/test_gui.py model_latency $(BUILD)/attnlab  # a keystroke through GPT-2 small in the window

clean:
	rm -rf $(BUILD) build-portable build-asan build-fuzz
