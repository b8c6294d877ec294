#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Compile the EXAMPLES programs of the pages that the man-pages patches in
# this directory add (the blocks between '.\" SRC BEGIN (name.c)' and
# '.\" SRC END', as man-pages marks them), with
#   gcc -Wall -Wextra -Werror -isystem HDR
#
#   check-examples.sh HDR [FILE.patch...]
#
# HDR is an include directory of installed kernel uapi headers with the
# series applied, e.g. from
#   make -C linux O=/tmp/hdr-obj headers_install INSTALL_HDR_PATH=/tmp/hdr
# (then HDR is /tmp/hdr/include).  Exit status: 0 if every program
# compiles, 1 if one does not, 2 on a usage error.

set -u

[ $# -ge 1 ] && [ -d "$1" ] || { echo "usage: $0 HDR [FILE.patch...]" >&2; exit 2; }
hdr=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- "$here"/0[0-9][0-9][0-9]-*.patch
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mp-ex-XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# Pull each SRC block out of the '+' lines of the patches and undo the
# roff escapes that man-pages uses in code.
cat "$@" | sed -n 's/^+//p' | awk -v out="$tmp" '
	/^\.\\" SRC BEGIN \(/ {
		name = $0; sub(/.*\(/, "", name); sub(/\).*/, "", name)
		file = out "/" name; insrc = 1; next
	}
	/^\.\\" SRC END/ { close(file); insrc = 0; next }
	insrc && /^\.(EX|EE)$/ { next }
	insrc {
		line = $0
		if (line == "\\&") line = ""
		sub(/^\\&/, "", line)
		gsub(/\\-/, "-", line)
		gsub(/\\\[aq\]/, "\047", line)
		gsub(/\\\[rs\]/, "\\", line)
		print line > file
	}'

status=0; n=0
for c in "$tmp"/*.c; do
	[ -e "$c" ] || { echo "check-examples.sh: no programs found" >&2; exit 1; }
	n=$((n + 1))
	if gcc -Wall -Wextra -Werror -isystem "$hdr" -o "$tmp/a.out" "$c"; then
		echo "$(basename "$c"): compiles"
	else
		echo "$(basename "$c"): FAILS" >&2; status=1
	fi
done
exit $status
