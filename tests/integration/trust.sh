#!/bin/sh
# Restore trusts no image beyond its caller (docs/SECURITY.md, "Images and
# restore"): hostile images are crafted from a real dump with the image
# library (tools/badimage) and restored as a user would, by root and by
# nobody. Each case names what it must refuse or must not touch.
. "$(dirname "$0")/lib.sh"
BAD="$TOOLS/tools/badimage"
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT
[ "$(id -u)" = 0 ] || skip "needs root: it restores as root and as nobody"
command -v setpriv >/dev/null || skip "needs setpriv (util-linux) to run as nobody"

# nobody must reach the workload's files and the tools.
chmod 0711 "$T"
mkdir -m 0777 "$T/nb"
echo s3cret >"$T/secret" && chmod 0600 "$T/secret"        # root-only, like /etc/shadow
echo root:x:0:0 >"$T/passwd" && chmod 0644 "$T/passwd"    # root's, like /etc/passwd

# A process of nobody's, dumped by root.
$NOBODY "$TOOLS/workloads/memtest" "$T/nb/w.desc" --mb 2 </dev/null >/dev/null 2>&1 &
W=$!
PIDS="$PIDS $W"
wait_for "$T/nb/w.desc" || fail "memtest did not start as nobody"
expect_rc 0 "dump nobody's process" "$FERRY" dump -t $W -D "$T/d"
reap $W

# Control: root restores it; its files are opened as nobody and are
# nobody's to open. The pidfile is not written through a planted link.
echo untouched >"$T/victim"
ln -s "$T/victim" "$T/pid.tmp"
expect_rc 0 "root restores nobody's process" "$FERRY" restore -D "$T/d" -d --pidfile "$T/pid"
RP=$(cat "$T/pid" 2>/dev/null)
[ -n "$RP" ] && PIDS="$PIDS $RP"
[ -n "$RP" ] && [ "$(stat -c %u "/proc/$RP" 2>/dev/null)" = 65534 ] &&
	ok "it runs as nobody again" || fail "restored process ${RP:-?} is not nobody's"
[ "$(cat "$T/victim")" = untouched ] && [ ! -L "$T/pid" ] &&
	ok "a link planted at the pidfile's temporary name is not followed" ||
	fail "pidfile went through the link: $(cat "$T/victim")"
check_mem "$T/nb/w.desc" "$RP" "its memory after restore"
[ -n "$RP" ] && kill -9 "$RP" 2>/dev/null

# 1. Credentials with no uid entries: a clear error, no crash.
"$BAD" "$T/d" "$T/noids" --no-ids || fail "craft an image without uids"
expect_rc 1 "an image whose credentials hold no uids is refused" "$FERRY" restore -D "$T/noids" -d
expect_in "$T/err" "uids: need 4" "names the missing uids"

# 2. More than the caller holds: nobody restoring uid 0, or root's capabilities.
"$BAD" "$T/d" "$T/uid0" --uid 0 || fail "craft an image of uid 0"
"$BAD" "$T/d" "$T/caps" --caps 1fffffffff || fail "craft an image with root's capabilities"
chown -R 65534:65534 "$T/uid0" "$T/caps"
expect_rc 1 "nobody cannot restore a process of uid 0" $NOBODY "$FERRY" restore -D "$T/uid0" -d
expect_in "$T/err" "asks for real uid 0" "names the uid asked for"
expect_rc 1 "nobody cannot restore a process with capabilities" $NOBODY "$FERRY" restore -D "$T/caps" -d
expect_in "$T/err" "cap_sys_admin" "names the capabilities asked for"

# 3. The caller's own uid with a root-only file: as root the restore used to
# open it and hand it over; now the process's own credentials open it.
"$BAD" "$T/d" "$T/fd" --fd 7:"$T/secret" || fail "craft an fd on a root-only file"
expect_rc 1 "an fd on a root-only file is not opened for nobody" "$FERRY" restore -D "$T/fd" -d
expect_in "$T/err" "Permission denied" "says the open was denied"
"$BAD" "$T/d" "$T/map" --map-shared "$T/passwd" || fail "craft a shared mapping of root's file"
expect_rc 1 "a writable shared mapping of root's file is not made for nobody" \
	"$FERRY" restore -D "$T/map" -d
expect_in "$T/err" "Permission denied" "says the open was denied"
[ "$(cat "$T/passwd")" = root:x:0:0 ] && ok "root's file is untouched" || fail "root's file changed"

# 4. A FIFO where the image says file: refused at once, never a hang.
mkfifo -m 0666 "$T/nb/fifo"
"$BAD" "$T/d" "$T/fifo" --fd 8:"$T/nb/fifo" || fail "craft an fd on a FIFO"
expect_rc 1 "a FIFO fd is refused within seconds" timeout 20 "$FERRY" restore -D "$T/fifo" -d
expect_in "$T/err" "not the kind of file" "says it is not the file the image claims"

# 5. Dump into a DIR another user prepared.
$NOBODY "$TOOLS/workloads/memtest" "$T/nb/v.desc" --mb 1 </dev/null >/dev/null 2>&1 &
V=$!
PIDS="$PIDS $V"
wait_for "$T/nb/v.desc" || fail "second memtest did not start"
echo untouched >"$T/victim"
mkdir -m 0700 "$T/sd"
ln -s "$T/victim" "$T/sd/pages.img"
ln -s "$T/victim" "$T/sd/process.img"
expect_rc 0 "dump into a DIR with planted links" "$FERRY" dump -t $V -D "$T/sd" -R
[ "$(cat "$T/victim")" = untouched ] && [ ! -L "$T/sd/pages.img" ] &&
	ok "links planted in DIR are not followed" || fail "a planted link was followed"
mkdir -m 0775 "$T/gw" && chown 65534 "$T/gw"
expect_rc 1 "a group-writable DIR of another user is refused" "$FERRY" dump -t $V -D "$T/gw" -R
expect_in "$T/err" "belongs to uid 65534" "names the directory's owner"
mkdir -m 0777 "$T/ww"
expect_rc 1 "a DIR writable by others is refused" "$FERRY" dump -t $V -D "$T/ww" -R
expect_in "$T/err" "writable by others" "says who can write it"
kill -9 $V 2>/dev/null

# 6. A parent path that leaves DIR's parent tree, or goes through a link.
mkdir "$T/c"
"$TOOLS/tools/mkimage" "$T/c/p" --kind pre >/dev/null || fail "mkimage parent"
"$TOOLS/tools/mkimage" "$T/c/d" --parent ../p --gen 2 >/dev/null || fail "mkimage child"
expect_rc 0 "a chain as ferry writes it opens" "$FERRY" show "$T/c/d"
"$BAD" --set-parent "$T/c/d" "../../c/p" || fail "rewrite the parent path"
expect_rc 1 "a parent above DIR's parent is refused" "$FERRY" restore -D "$T/c/d" -d
expect_in "$T/err" "not a path inside" "says where a parent may be"
"$BAD" --set-parent "$T/c/d" "../p" || fail "put the parent path back"
mv "$T/c/p" "$T/p.elsewhere" && ln -s ../p.elsewhere "$T/c/p"
expect_rc 1 "a parent reached through a link is refused" "$FERRY" restore -D "$T/c/d" -d
expect_in "$T/err" "symbolic link is not followed" "says the link is not followed"

# 7. fds.img and fdata.img that lie: a memfd announcing more bytes than
# fdata.img has, and fdata.img cut short. Refused before a process exists.
mkdir -p "$T/fdk"
"$TOOLS/workloads/fdcheck" "$T/fdk" </dev/null >/dev/null 2>&1 &
F=$!
PIDS="$PIDS $F"
wait_for "$T/fdk/ready" || fail "fdcheck did not start"
expect_rc 0 "dump a process with a memfd and a deleted file" "$FERRY" dump -t $F -D "$T/fk"
kill -9 $F 2>/dev/null
reap $F
"$BAD" "$T/fk" "$T/fk-copy" || fail "copy a dump with fdata.img"
expect_rc 0 "the copy, fdata.img and all, restores" "$FERRY" restore -D "$T/fk-copy" -d --pidfile "$T/fk.pid"
[ -s "$T/fk.pid" ] && PIDS="$PIDS $(cat "$T/fk.pid")" && kill -9 "$(cat "$T/fk.pid")" 2>/dev/null
"$BAD" "$T/fk" "$T/fk-big" --fdata-size 0x7fffffffffff || fail "craft a memfd larger than fdata.img"
expect_rc 1 "contents beyond the end of fdata.img are refused" "$FERRY" restore -D "$T/fk-big" -d
expect_in "$T/err" "beyond the end of fdata.img" "names the overrun"
"$BAD" "$T/fk" "$T/fk-cut" --fdata-cut 100 || fail "craft a truncated fdata.img"
expect_rc 1 "a truncated fdata.img is refused" "$FERRY" restore -D "$T/fk-cut" -d
expect_in "$T/err" "fdata.img: size" "names fdata.img's size"
finish
