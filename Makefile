# pgha — one build system: this Makefile.
#   make            build build/pgha (release, warnings are errors)
#   make up         install dependencies, build, start a local cluster (pgha up)
#   make check      install dependencies, build with ASan/UBSan, run unit tests, fuzz the
#                   protocol decoder 30 s, run the integration tests
#   make unit       unit tests only (cmocka)
#   make layers     check which folder of src/ includes which (docs/ARCHITECTURE.md, "Layers")
#   make calls      check that no two files of one folder of src/ call each other in a loop
#   make deps       install the Debian packages pgha needs (needs root)
#   make install    install the binary, systemd units, example configs, alert rules and docs
#                   under PREFIX (default /usr/local), staged under DESTDIR if set
#   make uninstall  remove what make install installed

CC      ?= cc
PKGS    := libcurl jansson libpq
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
           -Wmissing-prototypes -Wstrict-prototypes -D_GNU_SOURCE -pthread -Isrc \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpg_query -lssl -lcrypto -pthread

# SANITIZE=1 builds into build/asan with AddressSanitizer + UndefinedBehaviorSanitizer.
ifeq ($(SANITIZE),1)
BUILD   := build/asan
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD   := build
endif

# ICU: the NFKC normalization of SASLprep (src/auth/saslprep.c).
CFLAGS  += $(shell pkg-config --cflags icu-uc 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs icu-uc 2>/dev/null)

SRCS      := $(shell find src -name '*.c' | sort)
OBJS      := $(SRCS:%.c=$(BUILD)/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/src/main.o,$(OBJS))
# tests/unit mirrors src/: tests/unit/<folder>/test_<file>.c tests src/<folder>/.
UNIT_SRCS := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
PYTHON    ?= /usr/bin/python3
PYTEST_ARGS ?=

.PHONY: all deps up check unit integration clean asan fuzz fuzz-run fuzz-corpus layers calls install uninstall

# libFuzzer target for the wire protocol layer (src/pgproto): clang only, and
# only the sources it needs, so the rest of pgha never has to fuzz-build.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_ARGS    ?= -verbosity=0
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -Wall -Wextra -Werror -Wshadow -Wformat=2 \
                -Wno-unused-parameter -Wmissing-prototypes -Wstrict-prototypes \
                -D_GNU_SOURCE -Isrc -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRCS    := $(sort $(wildcard src/pgproto/*.c)) src/common/strbuf.c src/common/err.c
FUZZ_HDRS    := $(wildcard src/pgproto/*.h) src/common/strbuf.h src/common/err.h
FUZZ_CORPUS  := tests/fuzz/corpus/pgproto

all: layers calls

layers:
	@scripts/check-layers.sh

# From the objects' symbols (nm): within a folder of src/, calls go one way (docs/ARCHITECTURE.md).
calls: $(BUILD)/pgha
	@$(PYTHON) scripts/check-calls.py $(BUILD)

$(BUILD)/pgha: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The dashboard's files, embedded (scripts/embed.py): the page needs nothing beside the binary.
UI_FILES := src/api/ui/index.html src/api/ui/app.js src/api/ui/app.css
$(BUILD)/gen/ui_files.h: $(UI_FILES) scripts/embed.py
	@mkdir -p $(dir $@)
	$(PYTHON) scripts/embed.py $@ $(UI_FILES)
$(BUILD)/src/api/ui.o: $(BUILD)/gen/ui_files.h
$(BUILD)/src/api/ui.o: CFLAGS += -I$(BUILD)/gen

# -MMD: a test is rebuilt when a header it includes (src/ or tests/unit/) changes.
$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS) -lcmocka

deps:
	@scripts/install-deps.sh

# deps first, then a fresh make: pkg-config flags are read after the packages exist.
up: deps
	$(MAKE) all
	./build/pgha up $(UP_ARGS)

# Two at a time, the longest (the decision's sweep over every state: minutes under ASan) first;
# each test's output printed whole when it ends; any failure fails the target (xargs: 123).
UNIT_ORDER := $(filter %/test_decide,$(UNIT_BINS)) $(filter-out %/test_decide,$(UNIT_BINS))
unit: $(UNIT_BINS)
	@printf '%s\n' $(UNIT_ORDER) | xargs -P2 -n1 sh -c 'out=$$("$$0" 2>&1); rc=$$?; \
		printf "== %s (exit %d)\n%s\n" "$$0" $$rc "$$out"; exit $$rc'

# A second pytest runs beside the others: the tests whose servers live in network namespaces or
# containers of their own (the machine waits on their downloads and namespaces more than it
# computes), and long files that share nothing with the rest (two backup ones, the two clusters
# of the standby cluster tests and the standby cluster's proxy), to keep the wall time
# down. The 127.0.0.1 ports they use come from PGHA_TEST_PORTS, a range below the kernel's
# ephemeral ports (net.ipv4.ip_local_port_range), which bind(0) never hands out: the two runs
# cannot pick the same port. With PYTEST_ARGS (a selection), one pytest runs everything.
ISOLATED_TESTS := tests/integration/test_container.py tests/integration/test_multihost.py tests/integration/test_regions.py \
                  tests/integration/test_backup_faults.py tests/integration/test_backup_job.py \
                  tests/integration/test_standby_cluster.py tests/integration/test_cluster_switchover.py \
                  tests/integration/test_standby_regions.py tests/integration/test_standby_archive.py \
                  tests/integration/test_standby_proxy.py
ISOLATED_LOG   := $(BUILD)/integration-isolated.log

ifeq ($(strip $(PYTEST_ARGS)),)
integration: all
	@export PGHA_BIN=$(abspath $(BUILD)/pgha); \
	PGHA_TEST_PORTS=20000-29999 $(PYTHON) -m pytest -p no:cacheprovider --durations=15 $(ISOLATED_TESTS) > $(ISOLATED_LOG) 2>&1 & iso=$$!; \
	$(PYTHON) -m pytest -p no:cacheprovider --durations=40 tests/integration $(addprefix --ignore=,$(ISOLATED_TESTS)); main=$$?; \
	wait $$iso; isorc=$$?; \
	echo "== $(ISOLATED_TESTS), run beside the others ($(ISOLATED_LOG)):"; cat $(ISOLATED_LOG); \
	echo "== integration: the others exit $$main, the isolated ones exit $$isorc"; \
	test $$main -eq 0 && test $$isorc -eq 0
else
integration: all
	PGHA_BIN=$(abspath $(BUILD)/pgha) $(PYTHON) -m pytest -p no:cacheprovider tests/integration $(PYTEST_ARGS)
endif

# The test command: everything, built with sanitizers (pytest's summary comes last).
check: deps
	scripts/check-layers.sh --self-test
	$(PYTHON) scripts/check-calls.py --self-test
	$(MAKE) SANITIZE=1 unit
	$(MAKE) fuzz-run FUZZ_SECONDS=30
	$(MAKE) SANITIZE=1 integration

fuzz: build/fuzz/fuzz_pgproto

build/fuzz/fuzz_pgproto: tests/fuzz/fuzz_pgproto.c $(FUZZ_SRCS) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_pgproto.c $(FUZZ_SRCS)

# New inputs go to build/fuzz/corpus (scratch); the seeds and the regression
# inputs of past crashes stay read-only in $(FUZZ_CORPUS). A crash writes
# build/fuzz/crash-* and fails the target.
fuzz-run: fuzz
	@mkdir -p build/fuzz/corpus
	build/fuzz/fuzz_pgproto -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-artifact_prefix=build/fuzz/ -print_final_stats=1 $(FUZZ_ARGS) \
		build/fuzz/corpus $(FUZZ_CORPUS)

# Regenerate the seed inputs from the builders.
fuzz-corpus: tests/fuzz/gen_corpus.c $(FUZZ_SRCS) $(FUZZ_HDRS)
	@mkdir -p build/fuzz $(FUZZ_CORPUS)
	$(FUZZ_CC) -std=gnu11 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Isrc \
		-o build/fuzz/gen_corpus tests/fuzz/gen_corpus.c $(FUZZ_SRCS)
	build/fuzz/gen_corpus $(FUZZ_CORPUS)

# Installing (docs/DEPLOY_SYSTEMD.md). The units are found by systemd under $(PREFIX)/lib/systemd/system
# for PREFIX /usr or /usr/local; they name the binary and the guide by their installed paths.
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      := $(PREFIX)/bin
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR      := $(PREFIX)/share/doc/pgha
SHAREDIR    := $(PREFIX)/share/pgha
UNITS       := pgha-agent@.service pgha-proxy@.service
DOCS        := README.md docs/ARCHITECTURE.md docs/DEPLOY_SYSTEMD.md docs/DEPLOY_3HOSTS.md \
               docs/DEPLOY_CONTAINERS.md docs/ETCD.md docs/METRICS.md docs/READ_YOUR_WRITES.md \
               docs/BENCHMARKS.md docs/TWO_REGIONS.md

# Built first as the user who builds, so `sudo make install` only copies.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(SHAREDIR)/prometheus
	install -m 0755 $(BUILD)/pgha $(DESTDIR)$(BINDIR)/pgha
	for u in $(UNITS); do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' deploy/systemd/$$u \
			> $(DESTDIR)$(UNITDIR)/$$u.tmp && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
			mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 deploy/systemd/pgha.sysusers $(DESTDIR)$(SYSUSERSDIR)/pgha.conf
	install -m 0644 deploy/examples/agent.conf deploy/examples/proxy.conf $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 deploy/prometheus/pgha-alerts.yml $(DESTDIR)$(SHAREDIR)/prometheus/
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pgha $(DESTDIR)$(SYSUSERSDIR)/pgha.conf
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	rm -rf $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SHAREDIR)

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d)
