#!/bin/bash
# Runs inside the test VM (as root, host root filesystem read-only).
# $1: the results folder shared read-write with the host; it holds tests.list,
# one "lane<TAB>name<TAB>timeout-seconds<TAB>shell command" a line.  The tests
# of one lane run one after the other, in list order; the lanes run side by
# side (one per vCPU).  For each test this writes NAME.out (stdout+stderr),
# NAME.rc (exit status; 124 = timed out) and NAME.seconds (how long it ran),
# and prints progress markers the host follows on the console.
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

run_lane() {
	local lane=$1 l name tmo cmd start us rc
	while IFS=$'\t' read -r l name tmo cmd; do
		[ -n "$name" ] && [ "$l" = "$lane" ] || continue
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

for lane in $(cut -f1 "$out/tests.list" | sort -un); do
	run_lane "$lane" &
done
wait
if [ -w /sys/kernel/debug/kmemleak ]; then
	# kmemleak reports an object only on a scan after the one that first saw it
	# unreferenced (the first scan records its checksum; the next one, seeing it
	# unchanged, reports it), and only once it is 5 s old (MSECS_MIN_AGE).  So:
	# let the last test's objects age, then scan twice.
	echo "vmtest: kmemleak scans"
	sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >"$out/kmemleak.txt"
fi
dmesg >"$out/dmesg.txt"
echo "vmtest: guest done"
