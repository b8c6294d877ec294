#!/bin/bash
# Runs inside the test VM (as root, host root filesystem read-only).
# $1: the results folder shared read-write with the host; it holds tests.list,
# one "group<TAB>name<TAB>timeout-seconds<TAB>shell command" a line.  One lane a
# vCPU (VMTEST_LANES overrides) runs side by side with the others; a lane that is
# free takes the next group no lane has taken, in list order, and runs its tests
# one after the other, in list order.  The host lists the longest groups first,
# so the lanes end close together whatever each test really took.  For each test
# this writes NAME.out (stdout+stderr), NAME.rc (exit status; 124 = timed out)
# and NAME.seconds (how long it ran), and prints progress markers the host
# follows on the console.
set -u
out=$1
export VMTEST_RESULTS="$out"  # checkers that leave files for the host (ring_diff --record)
echo "vmtest: guest up $(uname -r)"
[ -d /sys/kernel/debug/tracing ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ulimit -c 0
# kmemleak's own thread would scan all memory every 10 minutes (DEBUG_KMEMLEAK_AUTO_SCAN),
# taking a vCPU from the tests for half a minute each time under TCG; the scans that count
# are the two at the end.
[ -w /sys/kernel/debug/kmemleak ] && echo scan=off >/sys/kernel/debug/kmemleak

run_group() {
	local group=$1 g name tmo cmd start us rc
	while IFS=$'\t' read -r g name tmo cmd; do
		[ -n "$name" ] && [ "$g" = "$group" ] || continue
		echo "vmtest: start $name"
		# Microseconds, without a process: under TCG each fork and exec of
		# date or awk costs a tenth of a second or more.
		start=${EPOCHREALTIME/[.,]/}
		timeout -k 5 "$tmo" bash -c "$cmd" >"$out/$name.out" 2>&1 </dev/null
		rc=$?
		us=$((${EPOCHREALTIME/[.,]/} - start))
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			echo "vmtest: timeout $name after ${tmo}s; dumping blocked tasks"
			echo w >/proc/sysrq-trigger 2>/dev/null
		fi
		printf '%d.%02d\n' $((us / 1000000)) $((us % 1000000 / 10000)) >"$out/$name.seconds"
		echo "$rc" >"$out/$name.rc"
		echo "vmtest: done $name rc=$rc"
	done <"$out/tests.list"
}

# Take a group: create its file with O_EXCL (noclobber), so that exactly one lane
# gets it.  A builtin: an mkdir would cost a fork and an exec for each lane and
# group, up to a second each under the debug kernel.
take() {
	local rc
	set -C
	{ : >"$taken/$1"; } 2>/dev/null
	rc=$?
	set +C
	return "$rc"
}

run_lane() {
	local group
	for group in "${groups[@]}"; do
		take "$group" && run_group "$group"
	done
}

mapfile -t groups < <(cut -f1 "$out/tests.list" | uniq)
taken=$(mktemp -d) || exit 1
for ((lane = 0; lane < ${VMTEST_LANES:-$(nproc)}; lane++)); do
	run_lane &
done
wait
if [ -w /sys/kernel/debug/kmemleak ]; then
	# kmemleak reports an object only on a scan after the one that first saw it
	# unreferenced (the first scan records its checksum; the next one, seeing it
	# unchanged, reports it), and only if it was 5 s old (MSECS_MIN_AGE) when that
	# scan began.  Every object the tests left was there when the first scan began,
	# so the second one begins at least 5.5 s after the first did.
	echo "vmtest: kmemleak scans"
	start=${EPOCHREALTIME/[.,]/}
	echo scan >/sys/kernel/debug/kmemleak
	us=$((start + 5500000 - ${EPOCHREALTIME/[.,]/}))
	printf -v pause '%d.%06d' $((us / 1000000)) $((us % 1000000))
	[ "$us" -gt 0 ] && sleep "$pause"
	echo scan >/sys/kernel/debug/kmemleak
	us=$((${EPOCHREALTIME/[.,]/} - start))
	echo "vmtest: kmemleak scanned twice in $((us / 1000000)).$((us % 1000000 / 100000)) s"
	cat /sys/kernel/debug/kmemleak >"$out/kmemleak.txt"
fi
dmesg >"$out/dmesg.txt"
echo "vmtest: guest done"
