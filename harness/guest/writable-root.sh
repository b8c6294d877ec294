#!/bin/bash
# Runs inside the test VM: run "$@" with a writable / of its own.
#
# The guest's / is the host's root filesystem, read-only (9p).  Upstream's
# selftests expect a normal machine: statmount_test_ns, for one, makes its
# folders in /.  This gives the command a private mount namespace whose root
# is an overlay of the real root with a tmpfs upper layer (what the command
# writes is thrown away with the namespace; the host is never written to), with
# /dev, /proc, /sys, /run and /tmp bound in, entered with pivot_root.
set -eu
if [ "${1:-}" != --inside ]; then
	exec unshare --mount --propagation private "$0" --inside "$@"
fi
shift
top=$(mktemp -d /run/writable-root.XXXXXX)
mount -t tmpfs writable-root "$top"
mkdir "$top/upper" "$top/work" "$top/root"
mount -t overlay writable-root -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
for dir in /dev /proc /sys /run /tmp; do
	mount --rbind "$dir" "$top/root$dir"
done
cwd=$(pwd)
cd "$top/root"
mkdir -p .old-root
pivot_root . .old-root
umount -l /.old-root
rmdir /.old-root
cd "$cwd"
exec "$@"
