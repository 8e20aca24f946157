#!/bin/sh
# Build the fuzzers (clang, libFuzzer, ASan+UBSan) for the image reader,
# the page server's stream reader, ferryd's requests and the restore path, seed them with valid
# inputs (image directories made by tests/tools/mkimage, client streams from
# tests/fuzz/stream_seed.py, real dumps from tests/fuzz/restore_seeds.sh,
# trees and fdata.img among them, for the image reader too),
# and run each for FUZZ_SECONDS (default 20).
# Exit status is libFuzzer's: non-zero on a crash. The restore fuzzer needs
# root: without it, or a kernel feature, it is skipped with the reason
# (added to $RESULTS as a skip when scripts/test.sh runs this).
set -eu
B=${BUILD:-build}
FB=$B/fuzz
SECS=${FUZZ_SECONDS:-20}
make -s --no-print-directory BUILD="$B" "$B/tests/tools/mkimage" "$B/ferry" \
	"$B/tests/workloads/treecheck" "$B/tests/workloads/fdcheck"
mkdir -p "$FB/seeds" "$FB/corpus"
clang -std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -D_GNU_SOURCE -I. -I"$B/gen" \
	$(pkg-config --cflags libprotobuf-c libxxhash) \
	common/err.c common/par.c common/util.c images/*.c "$B"/gen/proto/*.pb-c.c tests/fuzz/unpack.c tests/fuzz/fuzz_images.c \
	-o "$FB/fuzz_images" $(pkg-config --libs libprotobuf-c libxxhash)

# Seeds: a full dump, a pre-dump, and a dump with a parent at DIR/p.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
M="$B/tests/tools/mkimage"
"$M" "$T/full" --pages 8 >/dev/null
"$M" "$T/pre" --kind pre --pages 8 >/dev/null
mkdir -p "$T/chain"
"$M" "$T/chain/p" --kind pre --pages 8 >/dev/null
"$M" "$T/chain" --parent p --gen 2 --pages 8 >/dev/null
for s in full pre chain; do
	python3 tests/fuzz/pack.py "$T/$s" "$FB/seeds/$s"
done
# Real dumps (a tree with tree.img and pid-PID/ directories, fdata.img) seed
# the image reader and the restore alike; making them needs root.
mkdir -p "$FB/restore-seeds" "$FB/restore-work"
REAL=
if [ "$(id -u)" = 0 ]; then
	tests/fuzz/restore_seeds.sh "$B" "$FB/restore-seeds" "$FB/restore-work"
	REAL="$FB/restore-seeds"
fi
echo "fuzz: image reader for ${SECS}s ($FB/fuzz_images)"
"$FB/fuzz_images" -max_total_time="$SECS" -print_final_stats=0 -rss_limit_mb=2048 \
	"$FB/corpus" "$FB/seeds" $REAL 2>"$FB/log" || { tail -50 "$FB/log"; exit 1; }
tail -3 "$FB/log"

# The page server's stream reader, seeded with a valid client stream.
clang -std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -D_GNU_SOURCE -I. -I"$B/gen" \
	$(pkg-config --cflags libprotobuf-c libxxhash) \
	common/err.c common/log.c common/cancel.c common/par.c migrate/net.c common/util.c \
	migrate/receive.c images/*.c proc/tree.c proc/target.c proc/cgfreeze.c \
	"$B"/gen/proto/migrate.pb-c.c "$B"/gen/proto/images.pb-c.c tests/fuzz/fuzz_stream.c \
	-o "$FB/fuzz_stream" $(pkg-config --libs libprotobuf-c libssl libcrypto libzstd libxxhash)
mkdir -p "$FB/stream-seeds" "$FB/stream-corpus"
python3 tests/fuzz/stream_seed.py "$FB/stream-seeds"
echo "fuzz: stream reader for ${SECS}s ($FB/fuzz_stream)"
"$FB/fuzz_stream" -max_total_time="$SECS" -max_len=61440 -print_final_stats=0 \
	-rss_limit_mb=2048 "$FB/stream-corpus" "$FB/stream-seeds" 2>"$FB/stream.log" ||
	{ tail -50 "$FB/stream.log"; exit 1; }
tail -3 "$FB/stream.log"

# ferryd's request checks (and START's typed commands turned into words),
# seeded with a RUN, a LIST, a CANCEL, a typed dump and a STATUS; and the
# typed events' parser, seeded with an event line.
clang -std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -D_GNU_SOURCE -I. -I"$B/gen" $(pkg-config --cflags libprotobuf-c) \
	service/request.c service/typed.c service/event.c "$B"/gen/proto/rpc.pb-c.c \
	tests/fuzz/fuzz_rpc.c \
	-o "$FB/fuzz_rpc" $(pkg-config --libs libprotobuf-c)
mkdir -p "$FB/rpc-seeds" "$FB/rpc-corpus"
printf '\004\010\001\022\005check' >"$FB/rpc-seeds/run"
printf '\000\010\002' >"$FB/rpc-seeds/list"
printf '\000\010\003\030\007' >"$FB/rpc-seeds/cancel"
printf '\004\010\005\052\011\022\007\010\007\022\001x\040\001' >"$FB/rpc-seeds/start-dump"
printf '\000\010\006\030\007' >"$FB/rpc-seeds/status"
printf '\377{"event":"round","round":2,"pages":10,"predicted_ms":1.5,"done":true,"message":"a\\"b\\u0041"}' \
	>"$FB/rpc-seeds/event"
echo "fuzz: ferryd requests for ${SECS}s ($FB/fuzz_rpc)"
"$FB/fuzz_rpc" -max_total_time="$SECS" -max_len=65537 -print_final_stats=0 -rss_limit_mb=2048 \
	"$FB/rpc-corpus" "$FB/rpc-seeds" 2>"$FB/rpc.log" || { tail -50 "$FB/rpc.log"; exit 1; }
tail -3 "$FB/rpc.log"

# The restore path: real dumps restored (stopped, then killed) in a sandbox
# the fuzzer builds itself (tests/fuzz/fuzz_restore.c).
skip_restore() {
	echo "fuzz: restore: SKIP: $1"
	if [ -n "${RESULTS:-}" ]; then echo "skip fuzz/restore: $1" >>"$RESULTS"; fi
}
if [ "$(id -u)" != 0 ]; then
	skip_restore "restoring needs root"
	exit 0
fi
clang -std=gnu11 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -D_GNU_SOURCE -I. -I"$B/gen" \
	$(pkg-config --cflags libprotobuf-c libxxhash liburing) \
	common/*.c images/*.c proc/*.c restore/*.c "$B"/gen/proto/*.pb-c.c tests/fuzz/unpack.c \
	tests/fuzz/fuzz_restore.c \
	-o "$FB/fuzz_restore" $(pkg-config --libs libprotobuf-c libxxhash liburing) -lpthread
mkdir -p "$FB/restore-corpus"
echo "fuzz: restore for ${SECS}s ($FB/fuzz_restore)"
rc=0
# Its own skip is exit 77, libFuzzer's default for a crash: crashes exit 1.
FERRY_FUZZ_DIR="$FB/restore-work" "$FB/fuzz_restore" -max_total_time="$SECS" -timeout=10 \
	-error_exitcode=1 \
	-print_final_stats=0 -rss_limit_mb=2048 -artifact_prefix="$FB/restore-" \
	"$FB/restore-corpus" "$FB/restore-seeds" 2>"$FB/restore.log" || rc=$?
case $rc in
0) tail -3 "$FB/restore.log" ;;
77) skip_restore "$(sed -n 's/^fuzz_restore: SKIP: //p' "$FB/restore.log")" ;;
*) tail -50 "$FB/restore.log"; exit 1 ;;
esac
