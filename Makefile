# Thin wrapper: the real work is in scripts/ and CMake.
.PHONY: run test bench build clean format

run:
	@scripts/run.sh

test:
	@scripts/test.sh

bench:
	@bench/run.sh

build:
	@scripts/deps.sh build
	@cmake -S . -B build -DBUILD_TESTING=ON >/dev/null && cmake --build build -j$$(nproc)

format:
	@scripts/check-format.sh --write

clean:
	@rm -rf build
