#!/usr/bin/env bash
# The checked passes of the test suite (docs/robustness.md, "Sanitizers and
# valgrind"): called by scripts/test.sh after its main pass, or run alone.
#
#   asan      a build with AddressSanitizer + UndefinedBehaviorSanitizer
#             (-Db_sanitize=address,undefined, warnings as errors), running
#             the unit and mount suites: plyfs, plyctl and the tests are all
#             instrumented; the mount harness collects what the daemon and
#             plyctl report (leaks at exit included) and fails the test.
#   valgrind  the unit suite under valgrind (meson test --setup valgrind),
#             then a few mount tests with the daemon run under valgrind
#             (PLYFS_WRAPPER): any error or definite/indirect leak at
#             unmount fails the test.
#
# The runtime suite is not run here (scripts/test.sh runs it once).
#
# Usage: scripts/test-sanitize.sh [asan] [valgrind]   (default: both)
# Environment:
#   PLY_BUILD_DIR (default build-ci): the plain build, for the valgrind pass
#     (configured and built here when missing);
#   PLY_ASAN_BUILD_DIR (default build-asan);
#   PLY_VALGRIND_MOUNT_TESTS (default "mount-read mount-copyup
#     mount-splice"): the mount tests run with the daemon under valgrind
#     (meson test names; "" for none);
#   PLY_JOBS=N limits the builds to N parallel jobs.
# Exits non-zero when a build or a test fails; prints each part's time.
set -euo pipefail
exec </dev/null

cd "$(dirname "${BASH_SOURCE[0]}")/.."
builddir=${PLY_BUILD_DIR:-build-ci}
asandir=${PLY_ASAN_BUILD_DIR:-build-asan}
vg_mount_tests=${PLY_VALGRIND_MOUNT_TESTS-mount-read mount-copyup mount-splice}

parts=("$@")
((${#parts[@]})) || parts=(asan valgrind)

failed=()
times=()

# Runs "$@" as part $1 of the report: its time is noted, a failure too.
part() {
	local name=$1 start rc=0
	shift
	start=$SECONDS
	echo "test-sanitize.sh: == $name"
	"$@" || rc=$?
	if ((rc)); then
		times+=("$name: $((SECONDS - start)) s (FAILED, exit $rc)")
		failed+=("$name")
	else
		times+=("$name: $((SECONDS - start)) s")
	fi
	return 0
}

# Sanitizer settings for everything the asan pass runs (the tests, plyfs,
# plyctl): stop at the first error with a stack, and check for leaks at
# exit. The mount harness adds log_path (per test) for what it spawns.
asan_env=(
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:print_summary=1
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
)

asan_setup() {
	# -Db_lundef=false: the sanitizer runtimes are linked into the
	# executables only. -Wno-error=format-overflow: with
	# -fsanitize=undefined GCC 12 reports a NULL "%.*s" argument that
	# the instrumentation itself introduces (test-mount-rootless.c,
	# assert_user_whiteout); it stays a warning, every other warning is
	# still an error.
	local opts=("-Db_sanitize=address,undefined" -Db_lundef=false
		-Dwerror=true -Dtests=enabled -Dc_args=-Wno-error=format-overflow)
	if [[ -f $asandir/build.ninja ]]; then
		meson configure "$asandir" "${opts[@]}"
	else
		meson setup "$asandir" "${opts[@]}"
	fi
	ninja -C "$asandir" ${PLY_JOBS:+-j "$PLY_JOBS"}
}

asan_unit() {
	env "${asan_env[@]}" meson test -C "$asandir" --no-rebuild \
		--print-errorlogs --num-processes 2 --suite unit
}

asan_mount() {
	# ASan makes the daemon about twice as slow: twice the timeouts, and
	# a quarter of the crash test's kills (all of them run in the main
	# pass; a SIGKILL is not what the sanitizers look at).
	env "${asan_env[@]}" PLY_CRASH_SHARE=25 meson test -C "$asandir" \
		--no-rebuild \
		--print-errorlogs --timeout-multiplier 2 --suite mount
}

plain_build() {
	if [[ ! -f $builddir/build.ninja ]]; then
		meson setup "$builddir" -Dwerror=true -Dtests=enabled
	fi
	ninja -C "$builddir" ${PLY_JOBS:+-j "$PLY_JOBS"}
}

valgrind_unit() {
	# The setup is meson.build's: --leak-check=full, definite leaks
	# are errors, --error-exitcode=99.
	meson test -C "$builddir" --no-rebuild --setup valgrind \
		--print-errorlogs --num-processes 2 --suite unit
}

valgrind_mount() {
	local tests
	read -r -a tests <<<"$vg_mount_tests"
	((${#tests[@]})) || return 0
	# The harness runs every plyfs it starts through this (and adds
	# --log-file in the test's log directory): errors, and definite or
	# indirect leaks when the daemon exits at unmount, fail the test.
	PLYFS_WRAPPER="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
		meson test -C "$builddir" --no-rebuild --print-errorlogs \
		--timeout-multiplier 3 "${tests[@]}"
}

for p in "${parts[@]}"; do
	case $p in
	asan)
		part "asan build" asan_setup
		if [[ " ${failed[*]} " != *" asan build "* ]]; then
			part "asan unit suite" asan_unit
			part "asan mount suite" asan_mount
		fi
		;;
	valgrind)
		if ! command -v valgrind >/dev/null; then
			echo "test-sanitize.sh: valgrind is not installed" >&2
			failed+=("valgrind (missing)")
			continue
		fi
		part "plain build" plain_build
		part "valgrind unit suite" valgrind_unit
		part "valgrind mount tests ($vg_mount_tests)" valgrind_mount
		;;
	*)
		echo "usage: scripts/test-sanitize.sh [asan] [valgrind]" >&2
		exit 2
		;;
	esac
done

echo "test-sanitize.sh: times:"
printf '  %s\n' "${times[@]}"
if ((${#failed[@]})); then
	list=$(printf '%s, ' "${failed[@]}")
	echo "test-sanitize.sh: FAIL: ${list%, }"
	exit 1
fi
echo "test-sanitize.sh: PASS"
