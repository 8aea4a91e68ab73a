# Vigil. `make demo` runs a demo node; `make test` sets up and runs every test.
GO      ?= go
BIN     := bin/vigil
FUZZTIME ?= 10s

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

# VIGIL_REQUIRE_PREDICTOR: the tests that run the real predictor-py fail,
# rather than skip, when its environment is missing.
unit:
	VIGIL_REQUIRE_PREDICTOR=1 $(GO) test -race -count=1 ./...

# predictor-py's own checks: ruff and pytest.
predictor-test:
	$(MAKE) -C predictor-py test

# Each parser's fuzz target, briefly (go test runs one -fuzz target at a time).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeValidate$$' -fuzztime $(FUZZTIME) ./reading/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME) ./reading/
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeEvent$$' -fuzztime $(FUZZTIME) ./hub/

e2e: build
	cd ui && VIGIL_REQUIRE_PREDICTOR=1 VIGIL_BIN=$(CURDIR)/$(BIN) node --test e2e/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin data predictor-py/model
