#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Lint the manual pages of the man-pages patch set in this directory.
#
#   lint.sh              lint the pages that the *.patch files next to this
#                        script add (a page that a patch only modifies, such
#                        as man2/ioctl_pipe.2, needs the man-pages tree: set
#                        MAN_PAGES_TREE to a checkout and the patches are
#                        applied to a copy of it, and every page they touch
#                        is linted)
#   lint.sh DIR          lint every man/man*/* (or man*/*) page under DIR
#   lint.sh FILE.patch...  lint the pages that these patches add
#
# Each page is prepared as the man-pages build prepares it (the "(date)"
# placeholder of .TH replaced by a date), then checked with
#   mandoc -Tlint          (every message counts, except "STYLE: lower case
#                           character in document title", which man-pages'
#                           own lint also ignores: its titles are lowercase
#                           by convention), and
#   groff -man -ww -z      (every warning counts; skipped, with a notice,
#                           if groff is not installed).
# Exit status: 0 if every page is clean, 1 if any message was printed or
# no page was found, 2 on a usage or tool error.

set -u

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mp-lint-XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/pages"

command -v mandoc >/dev/null 2>&1 || { echo "lint.sh: mandoc is not installed" >&2; exit 2; }
have_groff=yes
tools="mandoc -Tlint, groff -man -ww -z"
command -v groff >/dev/null 2>&1 || { have_groff=no; tools="mandoc -Tlint"; }

# Write the files that a patch creates (--- /dev/null) under $tmp/pages.
extract() {
	awk -v out="$tmp/pages" '
	function flush() { if (file != "") close(file); file = "" }
	/^diff --git / { flush(); new = 0; inhunk = 0; next }
	/^--- \/dev\/null$/ { new = 1; next }
	/^\+\+\+ b\// {
		if (new) {
			path = substr($0, 7)
			file = out "/" path
			dir = file; sub(/\/[^\/]*$/, "", dir)
			system("mkdir -p \"" dir "\"")
			printf "" > file
		}
		next
	}
	/^@@ / { inhunk = (file != ""); next }
	inhunk && /^\+/ { print substr($0, 2) > file; next }
	inhunk && /^\\/ { next }
	{ inhunk = 0 }
	END { flush() }
	' "$1"
}

if [ $# -eq 0 ]; then
	set -- "$here"/0[0-9][0-9][0-9]-*.patch
	[ -e "$1" ] || { echo "lint.sh: no patches in $here" >&2; exit 1; }
	if [ -n "${MAN_PAGES_TREE:-}" ]; then
		mkdir "$tmp/tree" && cp -R "$MAN_PAGES_TREE/." "$tmp/tree/" || exit 2
		for p in "$@"; do
			case $p in */0000-cover-letter.patch) continue ;; esac
			git -C "$tmp/tree" apply "$p" || { echo "lint.sh: $p does not apply to $MAN_PAGES_TREE" >&2; exit 2; }
			sed -n 's|^+++ b/||p' "$p" | while read -r f; do
				mkdir -p "$tmp/pages/$(dirname "$f")"
				cp "$tmp/tree/$f" "$tmp/pages/$f"
			done
		done
	else
		for p in "$@"; do extract "$p"; done
	fi
elif [ $# -eq 1 ] && [ -d "$1" ]; then
	cp -R "$1/." "$tmp/pages" || exit 2
else
	for p in "$@"; do
		[ -f "$p" ] || { echo "lint.sh: $p: no such file" >&2; exit 2; }
		extract "$p"
	done
fi

pages=$(find "$tmp/pages" -type f -path '*/man*/*' | sort)
[ -n "$pages" ] || { echo "lint.sh: no pages found" >&2; exit 1; }

date=$(date -u +%Y-%m-%d)
status=0
n=0
for page in $pages; do
	n=$((n + 1))
	name=${page#"$tmp/pages/"}
	# Keep the page's own file name: mandoc checks its suffix against .TH.
	mkdir -p "$tmp/prep" || exit 2
	prep="$tmp/prep/$(basename "$page")"
	sed -e "1,/^\.TH /s/^\(\.TH [^ ]* [^ ]* \)(date)/\1$date/" "$page" > "$prep"

	out=$(mandoc -Tlint "$prep" 2>&1 |
	      grep -v 'STYLE: lower case character in document title' |
	      sed "s|$prep|$name|")
	if [ -n "$out" ]; then
		printf '%s\n' "$out"
		status=1
	fi

	if [ "$have_groff" = yes ]; then
		out=$(groff -man -ww -z "$prep" 2>&1 | sed "s|$prep|$name|")
		if [ -n "$out" ]; then
			printf '%s: groff:\n%s\n' "$name" "$out"
			status=1
		fi
	fi
done

[ "$have_groff" = yes ] || echo "lint.sh: groff is not installed; checked with mandoc only" >&2
if [ $status -eq 0 ]; then
	echo "lint.sh: $n page(s) clean ($tools)"
else
	echo "lint.sh: problems found" >&2
fi
exit $status
