#!/usr/bin/env bash
# Runs every test (unit and mount suites) in a build with warnings as errors.
# Installs what is missing first. Needs no terminal and no stdin, so CI can
# run it as is; exits non-zero when the build or any test fails, and always
# ends with one line saying which.
#
# Usage: scripts/test.sh
# Environment: PLY_JOBS=N limits the build to N parallel jobs;
#              PLY_BUILD_DIR (default build-ci) is the build directory.
# Mount tests need /dev/fuse (as root that is enough); without it they skip.
set -euo pipefail
exec </dev/null

cd "$(dirname "${BASH_SOURCE[0]}")/.."
builddir=${PLY_BUILD_DIR:-build-ci}
stage=setup

# shellcheck disable=SC2317 # called by the EXIT trap
finish() {
	local rc=$?
	if ((rc == 0)); then
		echo "test.sh: PASS: build and tests passed (any skips are listed above)"
	else
		echo "test.sh: FAIL: $stage failed (exit $rc)"
	fi
}
trap finish EXIT

# Mount points of FUSE filesystems, one a line, to spot leaked test mounts.
fuse_mounts() {
	awk '{ for (i = 7; $i != "-"; i++); if ($(i + 1) ~ /^fuse/) print $5 }' \
		/proc/self/mountinfo | LC_ALL=C sort
}

stage="installing dependencies"
scripts/deps.sh
# The container-runtime suite needs these; without them it says it skips.
scripts/deps.sh podman buildah runc busybox-static slirp4netns ||
	echo "test.sh: note: the runtime packages did not install: the runtime suite will skip"

stage="configuring $builddir"
# -Dtests=enabled: a missing test dependency fails here instead of
# silently dropping the tests.
if [[ -f $builddir/build.ninja ]]; then
	meson configure "$builddir" -Dwerror=true -Dtests=enabled
else
	meson setup "$builddir" -Dwerror=true -Dtests=enabled
fi

stage="building $builddir"
ninja -C "$builddir" ${PLY_JOBS:+-j "$PLY_JOBS"}

if [[ ! -w /dev/fuse ]]; then
	echo "test.sh: note: /dev/fuse is missing or not writable: mount tests will skip"
fi

stage="testing"
before=$(fuse_mounts)
rc=0
meson test -C "$builddir" --print-errorlogs --num-processes 2 || rc=$?

# The tests must always unmount; a FUSE mount that appeared during the run
# and is still there is a leak. Report it, then clean it up.
leaked=$(LC_ALL=C comm -13 <(printf '%s\n' "$before") <(fuse_mounts) | sed '/^$/d')
if [[ -n $leaked ]]; then
	echo "test.sh: the tests left these FUSE mounts behind:"
	while read -r m; do
		m=$(printf '%b' "$m") # undo mountinfo's octal escapes
		echo "  $m"
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" || true
	done <<<"$leaked"
	((rc)) || rc=1
	stage="testing (leaked mounts)"
fi
exit "$rc"
