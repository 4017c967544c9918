#!/usr/bin/env bash
# Runs every test (unit, mount and runtime suites) in a build with warnings
# as errors, then the checked passes of scripts/test-sanitize.sh: the unit
# and mount suites built with AddressSanitizer and UndefinedBehaviorSanitizer,
# and the unit suite plus a few mount tests under valgrind (see
# docs/robustness.md). Installs what is missing first. Needs no terminal and
# no stdin, so CI can run it as is; exits non-zero when a build or any test
# fails, and always ends with one line saying which.
#
# Usage: scripts/test.sh
# Environment: PLY_JOBS=N limits the builds to N parallel jobs;
#              PLY_BUILD_DIR (default build-ci) is the build directory;
#              PLY_SANITIZE=0 skips the sanitizer and valgrind passes (they
#              run by default, as in CI); other knobs: scripts/test-sanitize.sh.
#              PLY_FUZZ=0 skips the fuzz pass (scripts/test-fuzz.sh);
#              PLY_BENCH=0 skips the bench smoke pass (bench/run --smoke).
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
sanitize=${PLY_SANITIZE:-1}
if [[ $sanitize != 0 ]]; then
	scripts/deps.sh valgrind
fi
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
start=$SECONDS
meson test -C "$builddir" --print-errorlogs --num-processes 2 || rc=$?
echo "test.sh: main pass (unit, mount, runtime suites): $((SECONDS - start)) s"

# Runs one checked pass after the main one, timed: a pass named NAME,
# skipped when the variable KNOB is 0, running the rest of the arguments.
# A failure fails the run and is named in the last line.
checked_pass() {
	local name=$1 knob=$2 prs=0 start=$SECONDS
	shift 2
	if [[ ${!knob:-1} == 0 ]]; then
		echo "test.sh: note: $knob=0: skipped the $name"
		return
	fi
	"$@" || prs=$?
	echo "test.sh: $name: $((SECONDS - start)) s"
	if ((prs)); then
		if ((rc)); then
			stage="$stage, and $name"
		else
			stage="testing ($name)"
			rc=$prs
		fi
	fi
}

# The checked passes; the runtime suite ran above and is not repeated.
checked_pass "sanitizer and valgrind passes" PLY_SANITIZE \
	env PLY_BUILD_DIR="$builddir" scripts/test-sanitize.sh asan valgrind

# The fuzz pass: each libFuzzer fuzzer of tests/fuzz for PLY_FUZZ_SECONDS
# (20 s) over a copy of its seeds, in its own clang build (build-fuzz).
checked_pass "fuzz pass" PLY_FUZZ scripts/test-fuzz.sh

# The benchmark's smoke test: every workload of bench/run once, small
# sizes, against the peers too; fails only when a workload fails on plyfs
# (no timing is checked). Its tables are left out of the log.
bench_smoke() {
	bench/run --smoke --no-build --plyfs "$builddir/fs/plyfs" \
		--scratch "${TMPDIR:-/tmp}/plyfs-bench-smoke" >/dev/null
}
checked_pass "bench smoke pass" PLY_BENCH bench_smoke

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
