#!/usr/bin/env bash
# The fuzz pass (docs/robustness.md, "Fuzzing"): builds the libFuzzer
# fuzzers of tests/fuzz with clang (-Dfuzz=true: libFuzzer + ASan + UBSan)
# and runs each for a bounded time over a copy of its seed corpus (the
# committed corpus never grows here). Any crash, leak, failed check,
# hang or sanitizer report fails the pass; the reproducer is kept and its
# path printed, with the command that replays it.
#
# Usage: scripts/test-fuzz.sh [FUZZER...]   (default: all three)
# Environment:
#   PLY_FUZZ_SECONDS (default 20): the run time of each fuzzer
#     (-max_total_time; a hard bound of that plus 60 s by timeout);
#   PLY_FUZZ_BUILD_DIR (default build-fuzz): its own build directory,
#     configured with CC=clang when missing;
#   PLY_JOBS=N limits the build to N parallel jobs.
# Reproducers and logs stay in $PLY_FUZZ_BUILD_DIR/fuzz-out/.
set -euo pipefail
exec </dev/null

cd "$(dirname "${BASH_SOURCE[0]}")/.."
builddir=${PLY_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${PLY_FUZZ_SECONDS:-20}
fuzzers=("$@")
((${#fuzzers[@]})) || fuzzers=(fuzz-options fuzz-marker fuzz-import)

# clang, and the compiler-rt archives that hold libFuzzer and the
# sanitizer runtimes
scripts/deps.sh clang libclang-rt-14-dev

start=$SECONDS
if [[ -f $builddir/build.ninja ]]; then
	meson configure "$builddir" -Dfuzz=true -Dtests=disabled
else
	CC=clang meson setup "$builddir" -Dfuzz=true -Dtests=disabled
fi
targets=()
for f in "${fuzzers[@]}"; do
	targets+=("tests/fuzz/$f")
done
ninja -C "$builddir" ${PLY_JOBS:+-j "$PLY_JOBS"} "${targets[@]}"
echo "test-fuzz.sh: build: $((SECONDS - start)) s"

out=$builddir/fuzz-out
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/plyfs-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
for f in "${fuzzers[@]}"; do
	bin=$(cd "$builddir/tests/fuzz" && pwd)/$f
	corpus=$work/corpus-$f
	log=$out/$f.log
	mkdir -p "$corpus" "$work/tmp-$f" "$out/$f"
	cp tests/fuzz/corpus/"$f"/* "$corpus"/
	dict=()
	[[ -f tests/fuzz/$f.dict ]] && dict=(-dict="$PWD/tests/fuzz/$f.dict")
	rc=0
	# -timeout: one input running 10 s is a hang; -rss_limit_mb bounds
	# memory; fuzz-import works under TMPDIR, removed below.
	TMPDIR=$work/tmp-$f \
		ASAN_OPTIONS=detect_leaks=1:print_summary=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		timeout -k 10 $((seconds + 60)) "$bin" \
		-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/$f/" "${dict[@]}" \
		"$corpus" >"$log" 2>&1 || rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1 || true)
	if ((rc == 0)); then
		echo "test-fuzz.sh: $f: ok, ${runs:-?} runs in $seconds s (${cov:-no coverage line})"
		continue
	fi
	failed+=("$f")
	echo "test-fuzz.sh: $f: FAILED (exit $rc$( ((rc == 124 || rc == 137)) && echo ', the hard time bound hit'))"
	grep -E 'ERROR|SUMMARY|check failed|fuzz-import:|#[0-9]+ 0x' "$log" | head -n 30 || true
	for r in "$out/$f"/*; do
		[[ -e $r ]] || continue
		echo "test-fuzz.sh: $f: reproducer $r"
		echo "test-fuzz.sh:   replay: $bin $r"
	done
	echo "test-fuzz.sh: $f: full log $log"
done

if ((${#failed[@]})); then
	echo "test-fuzz.sh: FAIL: ${failed[*]}"
	exit 1
fi
echo "test-fuzz.sh: PASS: ${fuzzers[*]}, $seconds s each"
