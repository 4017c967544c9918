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

# The checked passes; the runtime suite ran above and is not repeated.
if [[ $sanitize != 0 ]]; then
	start=$SECONDS
	srs=0
	PLY_BUILD_DIR=$builddir scripts/test-sanitize.sh asan valgrind || srs=$?
	echo "test.sh: sanitizer and valgrind passes: $((SECONDS - start)) s"
	if ((srs)); then
		stage="testing (sanitizer or valgrind pass)"
		((rc)) && stage="testing (main pass, and sanitizer or valgrind pass)"
		((rc)) || rc=$srs
	fi
else
	echo "test.sh: note: PLY_SANITIZE=0: the sanitizer and valgrind passes are skipped"
fi

# The fuzz pass: each libFuzzer fuzzer of tests/fuzz for PLY_FUZZ_SECONDS
# (20 s) over a copy of its seeds, in its own clang build (build-fuzz).
if [[ ${PLY_FUZZ:-1} != 0 ]]; then
	start=$SECONDS
	frs=0
	scripts/test-fuzz.sh || frs=$?
	echo "test.sh: fuzz pass: $((SECONDS - start)) s"
	if ((frs)); then
		if ((rc)); then
			stage="$stage, and fuzz pass"
		else
			stage="testing (fuzz pass)"
			rc=$frs
		fi
	fi
else
	echo "test.sh: note: PLY_FUZZ=0: the fuzz pass is skipped"
fi

# The benchmark's smoke test: every workload of bench/run once, small
# sizes, against the peers too; fails only when a workload fails on plyfs
# (no timing is checked). PLY_BENCH=0 skips it.
if [[ ${PLY_BENCH:-1} != 0 ]]; then
	start=$SECONDS
	brs=0
	bench/run --smoke --no-build --plyfs "$builddir/fs/plyfs" \
		--scratch "${TMPDIR:-/tmp}/plyfs-bench-smoke" >/dev/null || brs=$?
	echo "test.sh: bench smoke pass: $((SECONDS - start)) s"
	if ((brs)); then
		if ((rc)); then
			stage="$stage, and bench smoke pass"
		else
			stage="testing (bench smoke pass)"
			rc=$brs
		fi
	fi
else
	echo "test.sh: note: PLY_BENCH=0: the bench smoke pass is skipped"
fi

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
