# Vigil. `make demo` runs a demo node; `make test` sets up and runs every test.
GO      ?= go
BIN     := bin/vigil
# Fuzz budgets are execution counts (about 10 s each on the 2-core CI
# machine), not durations: with a duration, go1.26's fuzz coordinator can
# report a spurious "context deadline exceeded" at the boundary
# (golang/go#75804, fixed in go1.27).
FUZZ_DECODE ?= 600000x
FUZZ_BATCH  ?= 400000x
FUZZ_EVENT  ?= 150000x
FUZZ_FRAME  ?= 100000x
FUZZ_SCAN   ?= 100000x
FUZZ_WSPARSE ?= 100000x
FUZZ_TREND  ?= 150000x

.PHONY: demo build test check unit fuzz e2e screenshots bench bench-ui bench-go bench-full setup-test clean predictor-test predictor-start predictor-stop

build:
	$(GO) build -o $(BIN) .

# The demo starts predictor-py beside Vigil (setting up its virtual
# environment the first time); without Python it runs degraded and says so.
demo: build
	bash scripts/demo.sh

predictor-start:
	bash scripts/predictor.sh start

predictor-stop:
	bash scripts/predictor.sh stop

# Everything CI runs: static checks, the race-enabled suite, brief fuzzing and
# the real-browser board test.
test: setup-test check unit predictor-test fuzz e2e

setup-test:
	bash scripts/setup-test.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# VIGIL_REQUIRE_PREDICTOR, VIGIL_REQUIRE_SERVICES: the tests that run the
# real predictor-py, Redis and PostgreSQL fail, rather than skip, when these
# are missing. The tests start their own Redis and PostgreSQL on free loopback
# ports, or use VIGIL_TEST_REDIS_URL and VIGIL_TEST_POSTGRES_URL.
unit:
	VIGIL_REQUIRE_PREDICTOR=1 VIGIL_REQUIRE_SERVICES=1 $(GO) test -race -count=1 ./...

# predictor-py's own checks: ruff and pytest.
predictor-test:
	$(MAKE) -C predictor-py test

# Each parser's fuzz target, briefly (go test runs one -fuzz target at a time).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeValidate$$' -fuzztime $(FUZZ_DECODE) ./reading/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZ_BATCH) ./reading/
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeEvent$$' -fuzztime $(FUZZ_EVENT) ./hub/
	$(GO) test -run '^$$' -fuzz '^FuzzFrameScanner$$' -fuzztime $(FUZZ_FRAME) ./hub/
	$(GO) test -run '^$$' -fuzz '^FuzzScanEvent$$' -fuzztime $(FUZZ_SCAN) ./bench/
	$(GO) test -run '^$$' -fuzz '^FuzzParser$$' -fuzztime $(FUZZ_WSPARSE) ./bench/
	$(GO) test -run '^$$' -fuzz '^FuzzTrendDecode$$' -fuzztime $(FUZZ_TREND) ./store/

e2e: build
	cd ui && VIGIL_REQUIRE_PREDICTOR=1 VIGIL_BIN=$(CURDIR)/$(BIN) node --test e2e/

# The README's screenshots are the browser tests' own: run them, then copy.
screenshots: e2e
	cp ui/e2e/out/site-board.png ui/e2e/out/alert-queue.png ui/e2e/out/patient-charts.png ui/e2e/out/patient-view.png \
	   ui/e2e/out/trial-overview.png ui/e2e/out/alert-queue-phone-zh.png docs/screenshots/

# The board in Chromium with 500 patients and 20 readings a second: frame
# times, long tasks, first paint (docs/BENCHMARKS.md, "Board").
bench-ui: build
	cd ui && VIGIL_BIN=$(CURDIR)/$(BIN) node bench/board.mjs $(BENCH_UI_FLAGS)

# The whole-path benchmark (docs/BENCHMARKS.md): starts Vigil with its
# defaults (embedded SQLite, in-process bus, no predictor) and its own load
# generator on this machine, prints the tables and appends them to
# docs/BENCHMARKS.md. About a minute on 2 cores; BENCH_FLAGS adds
# flags (e.g. BENCH_FLAGS="--out ''" to append nothing).
bench: build
	$(BIN) bench $(BENCH_FLAGS)

# The same against PostgreSQL and the Redis bus, started for the run on free
# loopback ports (needs redis-server and PostgreSQL's binaries installed).
bench-full: build
	bash scripts/bench-services.sh $(BIN) bench $(BENCH_FLAGS)

# The Go micro-benchmarks of every package.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin data predictor-py/model
