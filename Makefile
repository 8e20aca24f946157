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
# `ferry --connect` speaks to ferryd through libferry's code (lib/ferry.c).
FERRY_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(FERRY_SRCS)) $(BUILD)/obj/lib/ferry.o
# The service (service/): its own binary beside ferry, whose jobs run ferry.
FERRYD_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard service/*.c))
# libferry, ferryd's public C client (lib/, include/ferry/ferry.h): a shared
# library exporting only its header's functions. (build/libferry.a is the
# engine's internal archive for tests, never installed.)
SOVER := 0
LIBF_SO := $(BUILD)/lib/libferry.so.$(VERSION)
LIBF_OBJS := $(BUILD)/pic/lib/ferry.o $(BUILD)/pic/common/fdpass.o $(BUILD)/pic/gen/proto/rpc.pb-c.o

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
TOOL_SRCS := $(wildcard tests/tools/*.c tests/workloads/*.c)
TOOL_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TOOL_SRCS))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))

.PHONY: all deps test demo bench fuzz install clean check-build test-bins

all: $(BUILD)/ferry $(BUILD)/ferryd $(LIBF_SO)

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

$(BUILD)/pic/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(BUILD)/pic/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(LIBF_SO): $(LIBF_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libferry.so.$(SOVER) -Wl,--no-undefined -o $@ $^ \
		$(shell pkg-config --libs libprotobuf-c)
	ln -sf libferry.so.$(VERSION) $(BUILD)/lib/libferry.so.$(SOVER)
	ln -sf libferry.so.$(SOVER) $(BUILD)/lib/libferry.so

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

test-bins: $(BUILD)/ferry $(BUILD)/ferryd $(LIBF_SO) $(UNIT_BINS) $(TOOL_BINS) $(BENCH_BINS)

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

install: $(BUILD)/ferry $(BUILD)/ferryd $(LIBF_SO)
	install -D -m 0755 $(BUILD)/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	install -D -m 0644 docs/ferry.1 $(DESTDIR)$(PREFIX)/share/man/man1/ferry.1
	install -D -m 0755 $(BUILD)/ferryd $(DESTDIR)$(PREFIX)/bin/ferryd
	install -D -m 0644 docs/ferryd.8 $(DESTDIR)$(PREFIX)/share/man/man8/ferryd.8
	install -D -m 0644 include/ferry/ferry.h $(DESTDIR)$(PREFIX)/include/ferry/ferry.h
	install -D -m 0755 $(LIBF_SO) $(DESTDIR)$(PREFIX)/lib/libferry.so.$(VERSION)
	ln -sf libferry.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libferry.so.$(SOVER)
	ln -sf libferry.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libferry.so
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@VERSION@|$(VERSION)|' lib/ferry.pc.in \
		>$(DESTDIR)$(PREFIX)/lib/pkgconfig/ferry.pc
	install -D -m 0644 systemd/ferryd.socket $(DESTDIR)$(PREFIX)/lib/systemd/system/ferryd.socket
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed -e 's|@BINDIR@|$(PREFIX)/bin|' systemd/ferryd.service \
		>$(DESTDIR)$(PREFIX)/lib/systemd/system/ferryd.service
	@# A `criu` name for tools that look criu up in PATH (podman, libcriu):
	@# a directory of its own, put first in PATH only where wanted, so a
	@# system CRIU is never replaced.
	install -d $(DESTDIR)$(PREFIX)/lib/ferry/criu-path
	ln -sf $(PREFIX)/bin/ferry $(DESTDIR)$(PREFIX)/lib/ferry/criu-path/criu

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
