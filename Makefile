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

.PHONY: demo build test check unit fuzz e2e bench setup-test clean predictor-test predictor-start predictor-stop

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

e2e: build
	cd ui && VIGIL_REQUIRE_PREDICTOR=1 VIGIL_BIN=$(CURDIR)/$(BIN) node --test e2e/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin data predictor-py/model
