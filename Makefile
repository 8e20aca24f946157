# ferry — build, test, bench, fuzz, install.
#
#   make               build/ferry, build/ferryd
#   make deps          install Debian build and test dependencies (apt-get)
#   make test          deps, then unit + integration tests, normal and ASan+UBSan, and a short fuzz run
#   make demo          deps, then the built-in demo (README's first command)
#   make bench         benchmark table (docs/PERFORMANCE.md)
#   make fuzz          longer libFuzzer runs: image reader, stream reader, restore (clang)
#   make install PREFIX=/usr/local DESTDIR=
#   make clean

VERSION := 0.1.0
BUILD ?= build
CC ?= cc
PREFIX ?= /usr/local
SAN ?= 0

PKGS := libprotobuf-c liburing libnl-3.0 libxxhash libssl libcrypto libzstd
# Recursive (=) so that `make deps` works before the packages exist.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))
CMOCKA_LIBS = $(shell pkg-config --libs cmocka)

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
ALL_CFLAGS = -std=gnu11 $(CFLAGS) $(WARN) $(SANFLAGS) -D_GNU_SOURCE \
	-DFERRY_VERSION='"$(VERSION)"' -I. -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SANFLAGS) -Wl,--as-needed

PROTOS := $(wildcard proto/*.proto)
GEN_C := $(patsubst %.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
GEN_H := $(GEN_C:.c=.h)
# Generated sources are kept, not removed as intermediates.
.SECONDARY: $(GEN_C) $(GEN_H)

# The engine goes into libferry.a so tests can link any module; the command
# line (cli/) only into the ferry binary.
FERRY_SRCS := $(wildcard cli/*.c)
LIB_SRCS := $(wildcard common/*.c images/*.c proc/*.c dump/*.c restore/*.c migrate/*.c criu/*.c)
LIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS)) $(GEN_C:.c=.o)
FERRY_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(FERRY_SRCS))
# The service (service/): its own binary beside ferry, whose jobs run ferry.
FERRYD_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard service/*.c))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TOOL_SRCS := $(wildcard tests/tools/*.c tests/workloads/*.c)
TOOL_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TOOL_SRCS))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

.PHONY: all deps test demo bench fuzz install clean check-build test-bins

all: $(BUILD)/ferry $(BUILD)/ferryd

deps:
	@scripts/deps.sh

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=. --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libferry.a: $(LIB_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/ferry: $(FERRY_OBJS) $(BUILD)/libferry.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/ferryd: $(FERRYD_OBJS) $(BUILD)/libferry.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/test_%: $(BUILD)/obj/tests/unit/test_%.o $(BUILD)/libferry.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(PKG_LIBS)

$(BUILD)/tests/tools/%: $(BUILD)/obj/tests/tools/%.o $(BUILD)/libferry.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread

$(BUILD)/tests/workloads/%: $(BUILD)/obj/tests/workloads/%.o $(BUILD)/libferry.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lpthread

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/libferry.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

test-bins: $(BUILD)/ferry $(BUILD)/ferryd $(UNIT_BINS) $(TOOL_BINS) $(BENCH_BINS)

# The README's test command. Installs what it needs, then runs the suite
# twice: a normal build and an ASan+UBSan build, then a short fuzz run.
test: deps
	@scripts/test.sh

demo: deps
	@$(MAKE) -s --no-print-directory all test-bins
	@scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all test-bins
	@bench/run.sh

fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-300} scripts/fuzz.sh

install: $(BUILD)/ferry $(BUILD)/ferryd
	install -D -m 0755 $(BUILD)/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	install -D -m 0644 docs/ferry.1 $(DESTDIR)$(PREFIX)/share/man/man1/ferry.1
	@# A `criu` name for tools that look criu up in PATH (podman, libcriu):
	@# a directory of its own, put first in PATH only where wanted, so a
	@# system CRIU is never replaced.
	install -d $(DESTDIR)$(PREFIX)/lib/ferry/criu-path
	ln -sf $(PREFIX)/bin/ferry $(DESTDIR)$(PREFIX)/lib/ferry/criu-path/criu

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
