# fibd - build, test, bench.
#
#   make              build build/fibd, build/fib, build/fibload
#   make test         build and run every test (unit tests + behaviour suite)
#   make test SAN=1   the same under ASan + UBSan (objects in build/san)
#   make test TSAN=1  the same under TSan (objects in build/tsan)
#   make bench        reproduce the talk's tables (see bench/README.md)
#   make scaleout-test  3 fibd behind HAProxy: one killed under load, then
#                       a rolling restart with --drain
#   make install      programs, man pages, docs and the systemd unit under
#                     $(DESTDIR)$(PREFIX) (PREFIX=/usr/local); make uninstall
#   make install-test   make install into a staging directory, checked
#
# Sources are found by wildcard: a new file in src/core, src/models, src/coro,
# src/fibload or tests/unit joins the build without touching this file.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla
CPPFLAGS += -D_GNU_SOURCE -Isrc
ALL_CFLAGS = -std=c11 -pthread $(WARN) $(CFLAGS) $(SANFLAGS)
LDLIBS  := -lgmp -luring -lpthread -lm

# A fresh Debian machine: scripts/deps installs what is missing (as root) or
# says what to install, before anything below probes for it (python3-embed
# with pkg-config must see libpython3-dev if deps just installed it).
ifeq ($(filter clean format deps uninstall,$(MAKECMDGOALS)),)
ifneq ($(shell scripts/deps >&2 && echo ok),ok)
$(error scripts/deps: build dependencies are missing (see above))
endif
endif

# The python engine (src/core/pyengine.c, fibd --engine python) embeds
# CPython: found with pkg-config's python3-embed (Debian: libpython3-dev).
# Without it pyengine.c builds as a stub and --engine python says so.
# Never python3-config: on PATH it may be another Python's (pyenv's shim).
PY_PC_CFLAGS := $(shell pkg-config --cflags python3-embed 2>/dev/null)
PY_LIBS := $(shell pkg-config --libs python3-embed 2>/dev/null)
ifneq ($(PY_LIBS),)
# -isystem: Python's headers are not built with our warnings.
PY_CFLAGS := -DFIBD_HAVE_PYTHON $(patsubst -I%,-isystem %,$(PY_PC_CFLAGS))
# --as-needed: only programs that compute in Python load libpython.
LDLIBS += -Wl,--as-needed $(PY_LIBS) -Wl,--no-as-needed
else
$(info make: no python3-embed (libpython3-dev, pkg-config): building fibd without --engine python; scripts/deps installs them as root, then make again)
endif

B := build
ifeq ($(SAN),1)
B := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	    -fno-sanitize-recover=undefined
endif
ifeq ($(TSAN),1)
B := build/tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
endif

CORE_SRC    := $(wildcard src/core/*.c)
CORO_SRC    := $(wildcard src/coro/*.c) $(wildcard src/coro/*.S)
MODEL_SRC   := $(wildcard src/models/*.c)
LOAD_SRC    := $(filter-out src/fibload/main.c,$(wildcard src/fibload/*.c))
TESTLIB_SRC := $(wildcard tests/lib/*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
BENCH_SRC   := $(wildcard bench/*.c)

obj = $(patsubst %,$(B)/obj/%.o,$(basename $(1)))

CORE_LIB    := $(B)/libfibdcore.a
CORO_LIB    := $(B)/libcoro.a
LOAD_LIB    := $(B)/libfibload.a
TEST_LIB    := $(B)/libfibdtest.a
LIBS        := $(LOAD_LIB) $(CORO_LIB) $(CORE_LIB)

PROGS := $(B)/fibd $(B)/fib $(if $(wildcard src/fibload/main.c),$(B)/fibload)
TESTS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
BENCHES := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))

.PHONY: all test bench clean deps format fuzz scaleout-test install uninstall \
	install-test FORCE
all: $(PROGS) $(BENCHES)

# Installs missing build dependencies on a fresh Debian machine (or says how).
deps:
	@scripts/deps

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# pyengine.o is rebuilt when the python flags change (libpython came or went).
$(B)/obj/src/core/pyengine.o: CPPFLAGS += $(PY_CFLAGS)
$(B)/obj/src/core/pyengine.o: $(B)/pyengine.flags
$(B)/pyengine.flags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(PY_CFLAGS)' | cmp -s - $@ || echo '$(PY_CFLAGS)' > $@

$(B)/obj/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(CORE_LIB): $(call obj,$(CORE_SRC))
$(CORO_LIB): $(call obj,$(CORO_SRC))
$(LOAD_LIB): $(call obj,$(LOAD_SRC))
$(TEST_LIB): $(call obj,$(TESTLIB_SRC))
$(B)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/fibd: $(call obj,src/fibd.c $(MODEL_SRC)) $(LIBS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/fib: $(call obj,src/fib.c) $(CORE_LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/fibload: $(call obj,src/fibload/main.c) $(LOAD_LIB) $(CORE_LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(TEST_LIB) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

# Benchmark programs (bench/*.c): one binary each, linked like the tests
# (the soak starts its servers with the tests' tsrv helpers).
$(B)/bench/%: $(B)/obj/bench/%.o $(TEST_LIB) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

test: all $(TESTS) $(B)/tests/test_bench
	@tests/run.sh $(B)

# bench's unit tests (Python, standard library): a job of tests/run.sh
$(B)/tests/test_bench: bench/tests/run.py
	@mkdir -p $(dir $@)
	printf '#!/bin/sh\nexec python3 %s/bench/tests/run.py "$$@"\n' '$(CURDIR)' >$@
	chmod +x $@

# Three fibd behind HAProxy on loopback: one killed under load, then each
# stopped with --drain and restarted in turn with no request lost; and the
# Kubernetes manifest checked offline (tests/scaleout.sh, about 30 s).
scaleout-test: all
	@FIBD_DEPS_EXTRA="haproxy python3 python3-yaml" scripts/deps
	@tests/scaleout.sh $(B)

# The driver is Python 3 (stdlib only); bench/deps installs it and gnuplot.
# make bench ARGS='--quick' | '--reps 5 --models thread,async' | '--help'
bench: all
	@bench/deps
	@bench/run $(ARGS)

# libFuzzer on the request path (clang + libfuzzer-14-dev). FUZZ_SECONDS sets
# the run, FUZZ_JOBS how many fuzzing processes at once (libFuzzer's -fork);
# new inputs land in build/fuzz/corpus, crashes in build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
FUZZ_CC ?= clang
FUZZ_SRC := fuzz/fuzz_proto.c tests/lib/proto_check.c src/core/proto.c \
	    src/core/fib.c src/core/pyengine.c
build/fuzz/fuzz_proto: $(FUZZ_SRC) $(wildcard src/core/*.h)
	@FIBD_DEPS_EXTRA="clang libfuzzer-14-dev" scripts/deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -std=c11 -g -O1 $(WARN) \
		-fsanitize=fuzzer,address,undefined -o $@ $(FUZZ_SRC) -lgmp

fuzz: build/fuzz/fuzz_proto
	@mkdir -p build/fuzz/corpus
	build/fuzz/fuzz_proto -max_total_time=$(FUZZ_SECONDS) \
		$(if $(filter-out 1,$(FUZZ_JOBS)),-fork=$(FUZZ_JOBS)) \
		-print_final_stats=1 -artifact_prefix=build/fuzz/ \
		build/fuzz/corpus fuzz/corpus

# make install [PREFIX=/usr/local] [DESTDIR=/staging]: the three programs,
# their man pages, the docs, and the systemd unit with ExecStart (and its
# Documentation=) pointing under PREFIX. tests/install.sh checks it.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/fibd
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install
INST_PROGS := fibd fib fibload
INST_MANS  := $(wildcard man/*.1)
INST_DOCS  := README.md $(wildcard docs/*.md)

install: $(addprefix $(B)/,$(INST_PROGS))
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 $^ $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 644 $(INST_MANS) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 644 $(INST_DOCS) $(DESTDIR)$(DOCDIR)
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' \
	    -e 's|/usr/local/share/doc/fibd/|$(DOCDIR)/|g' \
		contrib/fibd.service > $(DESTDIR)$(UNITDIR)/fibd.service.tmp
	chmod 644 $(DESTDIR)$(UNITDIR)/fibd.service.tmp
	mv $(DESTDIR)$(UNITDIR)/fibd.service.tmp $(DESTDIR)$(UNITDIR)/fibd.service

# A staged install checked: files, man page lint, systemd-analyze verify
# (tests/install.sh, a few seconds). Not in make test: it runs make install
# itself and needs tools only this check uses.
install-test: $(addprefix $(B)/,$(INST_PROGS))
	@FIBD_DEPS_EXTRA="man-db mandoc systemd" scripts/deps
	@tests/install.sh

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(INST_PROGS)) \
		$(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(INST_MANS))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(INST_DOCS))) \
		$(DESTDIR)$(UNITDIR)/fibd.service
	-rmdir $(DESTDIR)$(DOCDIR)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
