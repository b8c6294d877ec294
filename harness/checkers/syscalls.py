# SPDX-License-Identifier: GPL-2.0
"""System calls the checkers make through ctypes, numbered by the installed
headers (asm/unistd_64.h via harness.uapi).  Each raises OSError."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from dataclasses import dataclass

from harness import uapi

_U = uapi.current()
STATMOUNT_BUF = 4096

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def sys_call(nr: int, *args: object) -> int:
    """syscall(2); raises OSError.  Integers are passed as longs, the rest
    (bytes, None, ctypes buffers and arrays) as pointers."""
    conv = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return _check(int(_libc.syscall(ctypes.c_long(nr), *conv)), f"syscall {nr}")


def _path(p: str | None) -> bytes | None:
    return None if p is None else os.fsencode(p)


def mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    _check(_libc.mount(_path(source), _path(target), _path(fstype), ctypes.c_ulong(flags),
                       None), f"mount {target}")


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(_path(target), ctypes.c_int(flags)), f"umount2 {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def notification_pipe() -> tuple[int, int]:
    fds = (ctypes.c_int * 2)()
    _check(_libc.pipe2(fds, ctypes.c_int(_U.O_NOTIFICATION_PIPE | os.O_NONBLOCK | os.O_CLOEXEC)),
           "pipe2(O_NOTIFICATION_PIPE)")
    return fds[0], fds[1]


def watch_mount(path: str, queue_fd: int, watch_id: int) -> None:
    sys_call(_U.NR_watch_mount, _U.AT_FDCWD, _path(path), 0, queue_fd, watch_id)


def pivot_root(new_root: str, put_old: str) -> None:
    sys_call(_U.NR_pivot_root, _path(new_root), _path(put_old))


def fanotify_init(flags: int, event_f_flags: int = os.O_RDONLY) -> int:
    return sys_call(_U.NR_fanotify_init, flags, event_f_flags)


def fanotify_mark(fd: int, flags: int, mask: int, dirfd: int, path: str | None = None) -> None:
    """x86_64 passes the 64-bit mask in one register."""
    sys_call(_U.NR_fanotify_mark, fd, flags, mask, dirfd, _path(path))


def mount_setattr(path: str, flags: int, attr_set: int, attr_clr: int,
                  propagation: int = 0) -> None:
    # struct mount_attr: attr_set, attr_clr, propagation, userns_fd (all __u64)
    attr = ctypes.create_string_buffer(struct.pack("<QQQQ", attr_set, attr_clr, propagation, 0))
    sys_call(_U.NR_mount_setattr, _U.AT_FDCWD, _path(path), flags, attr, _U.sizeof_mount_attr)


def open_tree(path: str, flags: int) -> int:
    return sys_call(_U.NR_open_tree, _U.AT_FDCWD, _path(path), flags)


def move_mount_fd(fd: int, to_path: str) -> None:
    sys_call(_U.NR_move_mount, fd, b"", _U.AT_FDCWD, _path(to_path),
             _U.MOVE_MOUNT_F_EMPTY_PATH)


@dataclass(frozen=True)
class StatMount:
    mnt_id: int  # 64-bit
    parent_id: int
    id_old: int  # the mountinfo id
    attr: int
    mount_point: str


def mnt_id_req(mnt_id: int, param: int) -> ctypes.Array[ctypes.c_char]:
    """struct mnt_id_req, first version."""
    req = bytearray(_U.MNT_ID_REQ_SIZE_VER0)
    struct.pack_into("<I", req, 0, _U.MNT_ID_REQ_SIZE_VER0)
    struct.pack_into("<Q", req, _U.offsetof_mnt_id_req_mnt_id, mnt_id)
    struct.pack_into("<Q", req, _U.offsetof_mnt_id_req_param, param)
    return ctypes.create_string_buffer(bytes(req), len(req))


def parse_statmount(raw: bytes) -> StatMount:
    """The fields of a struct statmount (MNT_BASIC and MNT_POINT) in raw."""
    def u64(off: int) -> int:
        return int(struct.unpack_from("<Q", raw, off)[0])

    old = int(struct.unpack_from("<I", raw, _U.offsetof_statmount_mnt_id_old)[0])
    point_off = int(struct.unpack_from("<I", raw, _U.offsetof_statmount_mnt_point)[0])
    start = _U.offsetof_statmount_str + point_off
    point = os.fsdecode(raw[start:raw.index(b"\0", start)])
    return StatMount(u64(_U.offsetof_statmount_mnt_id), u64(_U.offsetof_statmount_mnt_parent_id),
                     old, u64(_U.offsetof_statmount_mnt_attr), point)


def statmount(mnt_id: int) -> StatMount:
    req = mnt_id_req(mnt_id, _U.STATMOUNT_MNT_BASIC | _U.STATMOUNT_MNT_POINT)
    buf = ctypes.create_string_buffer(STATMOUNT_BUF)
    sys_call(_U.NR_statmount, req, buf, STATMOUNT_BUF, 0)
    return parse_statmount(buf.raw)


def listmount() -> list[int]:
    """The 64-bit ids of every mount in this namespace, ascending."""
    ids: list[int] = []
    last = 0
    chunk = 256
    arr = (ctypes.c_uint64 * chunk)()
    while True:
        n = sys_call(_U.NR_listmount, mnt_id_req(_U.LSMT_ROOT, last), arr, chunk, 0)
        ids.extend(arr[i] for i in range(n))
        if n < chunk:
            return ids
        last = ids[-1]


def mount_id_of(path: str) -> int:
    """The mountinfo id of the mount that path resolves to (fdinfo mnt_id)."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    finally:
        os.close(fd)
    raise OSError(errno.EINVAL, f"no mnt_id in fdinfo of {path}")
