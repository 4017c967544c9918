#!/usr/bin/env bash
# The container-runtime suite: rootless podman (buildah inside `podman build`,
# runc as the runtime) with plyfs as containers-storage's mount_program, driven
# with real commands by an unprivileged user: a locally imported busybox image,
# podman build with RUN steps that delete, change and rename directories of
# lower layers, run, diff, commit, cp both ways, --userns=keep-id, a named
# volume and a bind mount. Every step checks what it printed.
#
# Usage (as root): PLYFS=/abs/path/to/plyfs tests/runtime/test-runtime.sh
# Exits 0 on success, 1 on a failure, 77 (with one "SKIP: ..." line) when
# something it needs is missing. Needs the Debian packages podman buildah runc
# busybox-static uidmap slirp4netns (scripts/deps.sh installs them when asked:
# `scripts/deps.sh podman buildah runc busybox-static slirp4netns`).
# Environment: PLYFS (default build/fs/plyfs), PLY_RUNTIME_USER (default
# plyfs-rt, created if missing), PLY_RUNTIME_TIMEOUT (seconds per podman
# call, default 120). Everything it makes lives in one /tmp/plyfs-rt.* dir
# and is removed at the end, with `podman system reset --force`.
set -euo pipefail
exec </dev/null

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
plyfs=${PLYFS:-$here/../../build/fs/plyfs}
user=${PLY_RUNTIME_USER:-plyfs-rt}
T=${PLY_RUNTIME_TIMEOUT:-120}
started=$SECONDS

skip() {
	echo "SKIP: runtime suite: $*"
	exit 77
}

# ---- what we need -----------------------------------------------------------
((EUID == 0)) || skip "needs root (it creates the user $user and opens /dev/fuse)"
[[ -x $plyfs ]] || skip "no plyfs binary at $plyfs (build first, or set PLYFS)"
plyfs=$(readlink -f "$plyfs")
missing=()
for pkg in podman buildah runc busybox-static uidmap slirp4netns; do
	if command -v dpkg-query >/dev/null 2>&1; then
		st=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
		[[ $st == "install ok installed" ]] || missing+=("$pkg")
	fi
done
((${#missing[@]} == 0)) ||
	skip "packages missing: ${missing[*]} (scripts/deps.sh ${missing[*]})"
for cmd in podman runc newuidmap newgidmap setpriv timeout fusermount3; do
	command -v "$cmd" >/dev/null 2>&1 || skip "no $cmd"
done
[[ -c /dev/fuse ]] || skip "no /dev/fuse"
busybox=/bin/busybox
if [[ ! -x $busybox ]] || ldd "$busybox" >/dev/null 2>&1; then
	skip "$busybox is missing or not static (apt-get install busybox-static)"
fi

# ---- the user and its configuration -------------------------------------------
if ! getent passwd "$user" >/dev/null; then
	useradd -m -s /bin/sh "$user"
fi
for f in /etc/subuid /etc/subgid; do
	if ! grep -q "^$user:" "$f"; then
		opt=--add-subuids
		[[ $f == /etc/subgid ]] && opt=--add-subgids
		usermod "$opt" 600000000-600065535 "$user"
	fi
done
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)

# Processes of the user (only this suite runs as it), and those that are
# plyfs daemons.
user_procs() {
	local n=0 p
	for p in /proc/[0-9]*; do
		[[ $(stat -c %u "$p" 2>/dev/null) == "$uid" ]] || continue
		[[ $(awk '{ print $3 }' "$p/stat" 2>/dev/null) == Z ]] && continue
		n=$((n + 1))
	done
	echo "$n"
}
daemons() {
	local n=0 p
	for p in /proc/[0-9]*; do
		[[ $(stat -c %u "$p" 2>/dev/null) == "$uid" ]] || continue
		[[ $(readlink "$p/exe" 2>/dev/null) == "$plyfs" ]] && n=$((n + 1))
	done
	echo "$n"
}

fuse_mode=$(stat -c %a /dev/fuse)
base=
cleanup() {
	local rc=$?
	set +e
	if [[ -n $base ]]; then
		as_user podman rm -a -f -t 0 >/dev/null 2>&1
		as_user podman system reset --force >/dev/null 2>&1
		# podman's pause process keeps its namespaces (and any mount in
		# them) alive: end it, by its recorded pid
		local pause=$base/run/libpod/tmp/pause.pid
		if [[ -s $pause ]]; then
			kill "$(cat "$pause")" 2>/dev/null
		fi
		# late podman helpers (conmon's cleanup) would make $base/run
		# again after we remove it: let them finish first (bounded)
		for _ in $(seq 50); do
			[[ $(user_procs) == 0 ]] && break
			sleep 0.2
		done
		while read -r m; do
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m"
		done < <(awk -v b="$base/" 'index($5, b) == 1 { print $5 }' \
			/proc/self/mountinfo | sort -r)
		rm -rf "$base"
	fi
	chmod "$fuse_mode" /dev/fuse
	if ((rc == 0)); then
		echo "runtime suite: PASS ($((SECONDS - started)) s)"
	elif ((rc != 77)); then
		echo "runtime suite: FAIL ($((SECONDS - started)) s)"
	fi
	exit "$rc"
}
trap cleanup EXIT
chmod 0666 /dev/fuse

base=$(mktemp -d /tmp/plyfs-rt.XXXXXX)
chmod 0755 "$base"
mkdir -p "$base/run" "$base/storage" "$base/tmp" "$base/ctx" "$base/bind" \
	"$base/out"
chown "$uid:$gid" "$base/run" "$base/storage" "$base/tmp" "$base/bind" \
	"$base/out"
chmod 0700 "$base/run"

as_user() {
	(cd "$base" && timeout -k 10 "$T" setpriv --reuid="$uid" --regid="$gid" \
		--init-groups -- env -i HOME="$home" USER="$user" \
		LOGNAME="$user" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
		XDG_RUNTIME_DIR="$base/run" TMPDIR="$base/tmp" LC_ALL=C "$@")
}

# The user can reach the binary? (a build under a closed home cannot be)
as_user test -x "$plyfs" || skip "$user cannot run $plyfs"

install -d -o "$uid" -g "$gid" "$home/.config" "$home/.config/containers"
cat >"$home/.config/containers/storage.conf" <<EOF
# written by plyfs's tests/runtime/test-runtime.sh
[storage]
driver = "overlay"
runroot = "$base/run/containers"
graphroot = "$base/storage"

[storage.options.overlay]
mount_program = "$plyfs"
EOF
cat >"$home/.config/containers/containers.conf" <<EOF
# written by plyfs's tests/runtime/test-runtime.sh
[containers]
netns = "none"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
chown "$uid:$gid" "$home/.config/containers/storage.conf" \
	"$home/.config/containers/containers.conf"

# ---- helpers --------------------------------------------------------------------
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# podman as the user; its stdout is ours. On failure, says what and why.
pod() {
	local rc=0
	as_user podman "$@" 2>"$base/podman.err" || rc=$?
	if ((rc)); then
		echo "FAIL: podman $*: exit $rc" >&2
		((rc == 124 || rc == 137)) && echo "  (no answer within ${T}s)" >&2
		sed 's/^/  | /' "$base/podman.err" >&2
		return 1
	fi
}

step() {
	echo "== $* ($((SECONDS - started)) s)"
}

# expect WHAT GOT WANT: exact equality of (multi-line) text. A mismatch is
# reported (- wanted, + got) and counted; the suite goes on and fails at
# the end, so one run shows every wrong outcome.
failures=0
expect() {
	if [[ $2 != "$3" ]]; then
		echo "FAIL: $1" >&2
		diff -u <(printf '%s\n' "$3") <(printf '%s\n' "$2") |
			sed '1,2d; s/^/  /' >&2 || true
		failures=$((failures + 1))
	fi
}

# expect_set WHAT GOT WANT: the same lines, in any order
expect_set() {
	expect "$1" "$(sort <<<"$2")" "$(sort <<<"$3")"
}

# ---- the suite --------------------------------------------------------------------
step "podman uses plyfs as mount_program"
expect "graph driver" "$(pod info --format '{{.Store.GraphDriverName}}')" overlay
pod info | grep -q "Executable: $plyfs" ||
	fail "podman info does not name $plyfs as the mount program"

step "a local image from busybox-static (podman import)"
rootfs=$base/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/root" \
	"$rootfs/usr/bin" "$rootfs/data"
cp "$busybox" "$rootfs/bin/busybox"
for a in $("$busybox" --list); do
	[[ $a == busybox ]] || ln -s busybox "$rootfs/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
tar -C "$rootfs" -cf "$base/tmp/rootfs.tar" .
chown "$uid:$gid" "$base/tmp/rootfs.tar"
pod import --change 'CMD ["/bin/sh"]' "$base/tmp/rootfs.tar" \
	localhost/plyfs-bb:latest >/dev/null
expect "podman run echo" "$(pod run --rm localhost/plyfs-bb echo hello)" hello
# shellcheck disable=SC2016 # awk's $2, not the shell's
expect "the container's root filesystem" \
	"$(pod run --rm localhost/plyfs-bb awk '$2 == "/" { print $3 }' /proc/mounts)" \
	fuse.plyfs

step "podman build: RUN steps that delete, change and rename lower directories"
# one image per step, so that podman diff shows each layer against its parent
cat >"$base/ctx/Containerfile.1" <<'EOF'
FROM localhost/plyfs-bb
RUN mkdir -p /data/keep /data/gone /data/mv/sub && echo f >/data/keep/f && \
    echo g >/data/gone/g && echo m >/data/mv/m && echo s >/data/mv/sub/s && \
    echo base >/data/chg && echo same >/data/unchanged
EOF
# the ls between rm and the checks is where fuse-overlayfs leaked hidden
# names (issue 5)
cat >"$base/ctx/Containerfile.2" <<'EOF'
FROM localhost/plyfs-s1
RUN rm -rf /data/gone && echo changed >/data/chg && mv /data/mv /data/moved && \
    rm /bin/vi && rm -rf /data/keep && mkdir /data/keep && ls /data >/dev/null && \
    ls /data/keep >/dev/null && test ! -e /data/keep/f && \
    echo new >/data/keep/n && test "$(ls /data/keep)" = n
EOF
cat >"$base/ctx/Containerfile.3" <<'EOF'
FROM localhost/plyfs-s2
RUN mv /data/moved/sub /data/sub2 && chmod 600 /data/unchanged && \
    test "$(cat /data/sub2/s)" = s
EOF
chown -R "$uid:$gid" "$base/ctx"
for i in 1 2 3; do
	pod build --network=none --layers=false -f "$base/ctx/Containerfile.$i" \
		-t "localhost/plyfs-s$i" "$base/ctx" >"$base/build.log" ||
		{ sed 's/^/  | /' "$base/build.log" >&2; fail "podman build step $i"; }
done
expect_set "podman diff of the layer that deletes, changes and renames" \
	"$(pod diff localhost/plyfs-s2)" "C /bin
D /bin/vi
C /data
C /data/chg
C /data/keep
A /data/keep/n
D /data/keep/f
A /data/moved
A /data/moved/m
A /data/moved/sub
A /data/moved/sub/s
D /data/gone
D /data/mv"
expect_set "podman diff of the layer that moves a renamed directory's child" \
	"$(pod diff localhost/plyfs-s3)" "C /data
C /data/moved
D /data/moved/sub
A /data/sub2
A /data/sub2/s
C /data/unchanged"
# find's names joined on one line, then the contents
got=$(pod run --rm localhost/plyfs-s3 sh -c 'cd /data && find . | sort | tr "\n" " ";
	echo; cat chg sub2/s moved/m keep/n; stat -c %a unchanged;
	test -e /bin/vi || echo no-vi')
expect "the built image" "$got" ". ./chg ./keep ./keep/n ./moved ./moved/m ./sub2 ./sub2/s ./unchanged 
changed
s
m
new
600
no-vi"

step "podman run that changes things, podman diff, podman commit"
pod run --name plyfs-c1 localhost/plyfs-s3 sh -c 'echo hi >/data/new &&
	rm /data/chg && rm -rf /data/moved && mkdir /data/moved &&
	echo x >/data/moved/x && mv /data/sub2 /data/sub3 &&
	chmod 700 /data/keep' >/dev/null
want_diff="C /data
A /data/new
D /data/chg
C /data/moved
D /data/moved/m
A /data/moved/x
D /data/sub2
A /data/sub3
A /data/sub3/s
C /data/keep"
# runc touches /etc (hosts, resolv.conf mount points): ignore /etc
expect_set "podman diff of the container" \
	"$(pod diff plyfs-c1 | grep -v ' /etc')" "$want_diff"
pod commit -q plyfs-c1 localhost/plyfs-committed >/dev/null
expect_set "podman diff of the committed image" \
	"$(pod diff localhost/plyfs-committed | grep -v ' /etc')" "$want_diff"
got=$(pod run --rm localhost/plyfs-committed sh -c 'cd /data && find . | sort | tr "\n" " ";
	echo; cat new moved/x sub3/s; stat -c %a keep')
expect "the committed image" "$got" ". ./keep ./keep/n ./moved ./moved/x ./new ./sub3 ./sub3/s ./unchanged 
hi
x
s
700"

step "podman cp, both ways, running and stopped containers"
echo from-host >"$base/out/in"
mkdir -p "$base/out/indir/sub" && echo deep >"$base/out/indir/sub/f"
chown -R "$uid:$gid" "$base/out"
pod cp "$base/out/in" plyfs-c1:/data/in
pod cp "$base/out/indir" plyfs-c1:/data/indir
pod cp plyfs-c1:/data/new "$base/out/new"
pod cp plyfs-c1:/data/sub3 "$base/out/sub3"
expect "cp out of a stopped container" "$(cat "$base/out/new")" hi
expect "cp of a directory out" "$(cat "$base/out/sub3/s")" s
pod commit -q plyfs-c1 localhost/plyfs-cp >/dev/null
expect "cp into a stopped container" \
	"$(pod run --rm localhost/plyfs-cp cat /data/in /data/indir/sub/f)" \
	"from-host
deep"
pod run -d --name plyfs-c2 localhost/plyfs-s3 sleep 600 >/dev/null
pod cp "$base/out/in" plyfs-c2:/tmp/in
expect "cp into a running container" "$(pod exec plyfs-c2 cat /tmp/in)" from-host
pod exec plyfs-c2 sh -c 'echo running >/data/run; rm -rf /data/moved'
pod cp plyfs-c2:/data/run "$base/out/run"
expect "cp out of a running container" "$(cat "$base/out/run")" running
pod rm -f -t 0 plyfs-c2 >/dev/null

step "--userns=keep-id"
got=$(pod run --rm --userns=keep-id localhost/plyfs-s3 sh -c 'id -u; id -g;
	stat -c %u:%g /bin/busybox /data/chg; touch /tmp/k; stat -c %u /tmp/k;
	cat /data/chg')
expect "a keep-id container: our ids, image files still root's" "$got" "$uid
$gid
0:0
0:0
$uid
changed"

step "a named volume"
pod volume create plyfs-vol >/dev/null
pod run --rm -v plyfs-vol:/vol localhost/plyfs-s3 sh -c 'echo v >/vol/f' >/dev/null
expect "a named volume outlives its container" \
	"$(pod run --rm -v plyfs-vol:/vol localhost/plyfs-s3 cat /vol/f)" v
# a new volume over a non-empty image directory starts with its content
expect "a new volume is filled from the image" \
	"$(pod run --rm -v plyfs-vol2:/data localhost/plyfs-s3 sh -c 'cat /data/chg /data/sub2/s')" \
	"changed
s"

step "a bind mount"
echo in >"$base/bind/in"
chown "$uid:$gid" "$base/bind/in"
expect "a bind mount, read and written" \
	"$(pod run --rm -v "$base/bind:/b" localhost/plyfs-s3 sh -c 'cat /b/in; echo out >/b/out')" in
expect "what the container wrote to the bind mount" "$(cat "$base/bind/out")" out
expect "its owner on the host (container root is the user)" \
	"$(stat -c %u "$base/bind/out")" "$uid"

step "no container left: every plyfs daemon has exited"
pod rm -a -f -t 0 >/dev/null
for _ in $(seq 50); do
	[[ $(daemons) == 0 ]] && break
	sleep 0.2
done
expect "plyfs daemons still running after the containers are gone" "$(daemons)" 0
((failures == 0)) || fail "$failures checks failed (see above)"
