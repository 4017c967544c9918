#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: installs what is missing, builds
# plyfs, makes a small three-layer demo image under ./demo/ and mounts its
# merged view at ./demo/merged, writable: changes land in ./demo/upper
# (scratch space: ./demo/work). Safe to run again: the build is reused, a
# previous demo mount is unmounted and the demo tree, upper and work
# directories included, is made afresh.
#
# Usage: scripts/demo.sh          (as root, or as a user with sudo)
# Environment: PLY_JOBS=N limits the build to N parallel jobs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
demo=demo
mnt=$demo/merged
plyfs=build/fs/plyfs
plyctl=build/tools/plyctl

say() { printf 'demo.sh: %s\n' "$*"; }
die() { printf 'demo.sh: %s\n' "$*" >&2; exit 1; }

# True when $1 (a path) is a mount point, even one whose daemon died
# ("Transport endpoint is not connected" makes stat-based checks fail).
is_mounted() {
	local abs
	abs=$(realpath -m -- "$1")
	# /proc/self/mountinfo escapes blanks and backslashes in octal.
	abs=${abs//\\/\\134}
	abs=${abs// /\\040}
	awk -v m="$abs" '$5 == m { found = 1 } END { exit !found }' \
		/proc/self/mountinfo
}

unmount_demo() {
	is_mounted "$mnt" || return 0
	say "unmounting the previous demo mount at $mnt"
	fusermount3 -u "$mnt" 2>/dev/null ||
		umount "$mnt" 2>/dev/null ||
		fusermount3 -uz "$mnt" 2>/dev/null ||
		umount -l "$mnt" 2>/dev/null || true
	if is_mounted "$mnt"; then
		die "$mnt is still mounted; unmount it (fusermount3 -u $mnt) and run again"
	fi
}

# 1. Packages.
scripts/deps.sh

# 2. Build (an existing build directory is reused).
if [[ ! -f build/build.ninja ]]; then
	meson setup build
fi
ninja -C build ${PLY_JOBS:+-j "$PLY_JOBS"}

# 3. The demo image, made from scratch. Unmount first: rm -rf must never
# walk into a mounted view.
unmount_demo
rm -rf --one-file-system -- "$demo"
mkdir -p "$demo"/layers/{top,middle,base} "$mnt" "$demo"/upper "$demo"/work

put() { # put FILE TEXT: writes TEXT and a newline to FILE, making parents
	mkdir -p -- "$(dirname -- "$1")"
	printf '%s\n' "$2" >"$1"
}
mark() { # mark FILE: makes an empty FILE (a marker), making parents
	mkdir -p -- "$(dirname -- "$1")"
	: >"$1"
}
base=$demo/layers/base middle=$demo/layers/middle top=$demo/layers/top

put "$base/README" "a file only the base layer has"
# Shadowing: every layer has etc/greeting; the top one wins.
put "$base/etc/greeting" "hello from base"
put "$middle/etc/greeting" "hello from middle"
put "$top/etc/greeting" "hello from top"
# etc/ itself is merged: names from all three layers show up.
put "$base/etc/base.conf" "base setting"
put "$top/etc/top.conf" "top setting"
# Whiteout: middle deletes base's notes/old.txt with an OCI-style .wh. file
# (an ordinary empty file, so no privilege is needed to make one).
put "$base/notes/old.txt" "you should not see this: whited out by middle"
put "$base/notes/kept.txt" "still here"
mark "$middle/notes/.wh.old.txt"
# Opaque directory: middle's cache/ hides all of base's cache/.
put "$base/cache/stale-1" "you should not see this: cache/ is opaque in middle"
put "$base/cache/stale-2" "you should not see this: cache/ is opaque in middle"
put "$middle/cache/fresh" "fresh cache entry from middle"
mark "$middle/cache/.wh..wh..opq"

# 4. Mount, writable: the upper and work directories were made empty above.
lower=$top:$middle:$base
upper=$demo/upper
opts="lowerdir=$lower,upperdir=$upper,workdir=$demo/work"
say "mounting: $plyfs -o $opts $mnt"
"$plyfs" -o "$opts" "$mnt" || die "plyfs failed to mount (see the message above)"
is_mounted "$mnt" || die "plyfs exited 0 but $mnt is not mounted"

# 5. A quick look that the merged view is what the layers say it should be.
problems=()
[[ $(cat "$mnt/etc/greeting" 2>&1) == "hello from top" ]] ||
	problems+=("etc/greeting does not read 'hello from top'")
[[ ! -e $mnt/notes/old.txt ]] || problems+=("notes/old.txt is not hidden")
[[ $(ls -A "$mnt/notes" 2>&1) == "kept.txt" ]] ||
	problems+=("notes/ does not list just kept.txt")
[[ $(ls -A "$mnt/cache" 2>&1) == "fresh" ]] ||
	problems+=("cache/ does not list just fresh")
# writable: the mount's own options (field 6 of mountinfo) start with rw
mnt_abs=$(realpath -m -- "$mnt")
awk -v m="$mnt_abs" '$5 == m && $6 ~ /^rw/ { ok = 1 } END { exit !ok }' \
	/proc/self/mountinfo || problems+=("$mnt is not mounted read-write")
if ((${#problems[@]})); then
	printf 'demo.sh: mounted, but the merged view is wrong: %s\n' \
		"${problems[@]}" >&2
	die "left mounted for a look; unmount with: fusermount3 -u $mnt"
fi

cat <<EOT

plyfs is up: $root/$mnt merges three read-only layers
  $top  >  $middle  >  $base
and is writable: every change lands in $upper (scratch space: $demo/work).

Try, from $root:
  ls -la $mnt $mnt/etc
  cat $mnt/etc/greeting          # "hello from top": shadows middle and base
  ls -a $mnt/notes               # no old.txt: whited out by middle/notes/.wh.old.txt
  ls -a $mnt/cache               # just "fresh": middle/cache is opaque (.wh..wh..opq)
  ls -a $base/notes $base/cache  # what the base layer really holds
  $plyctl which -o lowerdir=$lower etc/greeting
  $plyctl which -o lowerdir=$lower notes/old.txt
  $plyctl which -o lowerdir=$lower cache/stale-1

Now change it; the layers stay as they are:
  echo "hello from upper" > $mnt/etc/greeting   # copied up, then written
  rm $mnt/README                 # a base file: leaves a whiteout in the upper
  ls -la $upper $upper/etc       # the whiteout README, the copy of etc/greeting
  cat $base/README               # still there in the base layer
  $plyctl which -o lowerdir=$lower,upperdir=$upper,workdir=$demo/work etc/greeting
  $plyctl which -o lowerdir=$lower,upperdir=$upper,workdir=$demo/work README

Unmount with:
  fusermount3 -u $mnt
EOT
