# SPDX-License-Identifier: GPL-2.0
"""The uapi constants of the kernel under test, as its installed headers define them.

selftests/drivers/uapi_dump.c is compiled against the installed headers at
build time and prints every constant the checkers use (macros, enum values,
ioctl encodings, structure sizes and offsets, system call numbers) as JSON:
$(OUT)/uapi.json, next to the selftest binaries.  Nothing here holds a value:
when the ABI changes, the next build changes what the checkers use.

Where the file is looked for, first match wins:
  $VMTEST_UAPI                      an explicit file (the unit tests use one)
  $VMTEST_SELFTESTS/uapi.json       what the suite sets inside the guest
  <build>/obj-default/selftests/uapi.json   the default profile's build
"""

from __future__ import annotations

import dataclasses
import json
import os
from functools import cache
from pathlib import Path

from harness.errors import HarnessError
from harness.layout import default_layout

ENV_FILE = "VMTEST_UAPI"
FILE_NAME = "uapi.json"


@dataclasses.dataclass(frozen=True)
class Uapi:
    """One field per name uapi_dump.c prints (a leading "__" dropped)."""

    # linux/watch_queue.h
    WATCH_TYPE_META: int
    WATCH_TYPE_KEY_NOTIFY: int
    WATCH_TYPE_MOUNT_NOTIFY: int
    WATCH_TYPE__NR: int
    WATCH_META_REMOVAL_NOTIFICATION: int
    WATCH_META_LOSS_NOTIFICATION: int
    WATCH_META_SKIP_NOTIFICATION: int
    WATCH_INFO_LENGTH: int
    WATCH_INFO_NR_SLOTS: int
    WATCH_INFO_ID: int
    WATCH_INFO_TYPE_INFO: int
    WATCH_QUEUE_RING_MAX_PAGES: int
    O_NOTIFICATION_PIPE: int
    IOC_WATCH_QUEUE_SET_SIZE: int
    IOC_WATCH_QUEUE_SET_FILTER: int
    IOC_WATCH_QUEUE_NR_PAGES: int
    IOC_WATCH_QUEUE_TAKE_LOSS: int
    IOC_WATCH_QUEUE_TAKE_LOSS_size: int
    IOC_WATCH_QUEUE_INJECT: int
    sizeof_watch_notification: int
    sizeof_watch_queue_ring_meta: int
    offsetof_watch_queue_ring_meta_head: int
    offsetof_watch_queue_ring_meta_tail: int
    sizeof_watch_notification_loss: int
    offsetof_watch_notification_loss_nr_lost: int
    sizeof_watch_notification_type_filter: int
    sizeof_watch_notification_filter: int
    sizeof_watch_notification_removal: int
    sizeof_key_notification: int
    sizeof_mount_notification: int
    NOTIFY_KEY_INSTANTIATED: int
    NOTIFY_KEY_UPDATED: int
    NOTIFY_KEY_LINKED: int
    NOTIFY_KEY_UNLINKED: int
    NOTIFY_KEY_CLEARED: int
    NOTIFY_KEY_REVOKED: int
    NOTIFY_KEY_INVALIDATED: int
    NOTIFY_KEY_SETATTR: int
    NOTIFY_MOUNT_NEW_MOUNT: int
    NOTIFY_MOUNT_UNMOUNT: int
    NOTIFY_MOUNT_EXPIRY: int
    NOTIFY_MOUNT_READONLY: int
    NOTIFY_MOUNT_SETATTR: int
    NOTIFY_MOUNT_MOVE_FROM: int
    NOTIFY_MOUNT_MOVE_TO: int
    NOTIFY_MOUNT_IN_SUBTREE: int
    NOTIFY_MOUNT_IS_NOW_RO: int
    NOTIFY_MOUNT_IS_SUBMOUNT: int
    # linux/keyctl.h
    KEY_SPEC_SESSION_KEYRING: int
    KEY_SPEC_USER_KEYRING: int
    KEYCTL_GET_KEYRING_ID: int
    KEYCTL_JOIN_SESSION_KEYRING: int
    KEYCTL_UPDATE: int
    KEYCTL_REVOKE: int
    KEYCTL_SETPERM: int
    KEYCTL_DESCRIBE: int
    KEYCTL_CLEAR: int
    KEYCTL_LINK: int
    KEYCTL_UNLINK: int
    KEYCTL_SET_TIMEOUT: int
    KEYCTL_INVALIDATE: int
    KEYCTL_WATCH_KEY: int
    # linux/mount.h, linux/fcntl.h, linux/sched.h
    AT_FDCWD: int
    AT_EMPTY_PATH: int
    AT_RECURSIVE: int
    OPEN_TREE_CLONE: int
    OPEN_TREE_CLOEXEC: int
    MOVE_MOUNT_F_EMPTY_PATH: int
    CLONE_NEWNS: int
    MS_RDONLY: int
    MS_NOSUID: int
    MS_NODEV: int
    MS_NOEXEC: int
    MS_REMOUNT: int
    MS_NOATIME: int
    MS_BIND: int
    MS_MOVE: int
    MS_REC: int
    MS_UNBINDABLE: int
    MS_PRIVATE: int
    MS_SLAVE: int
    MS_SHARED: int
    MOUNT_ATTR_RDONLY: int
    MOUNT_ATTR_NOSUID: int
    MOUNT_ATTR_NODEV: int
    MOUNT_ATTR_NOEXEC: int
    MOUNT_ATTR__ATIME: int
    MOUNT_ATTR_NOATIME: int
    MOUNT_ATTR_STRICTATIME: int
    MOUNT_ATTR_NODIRATIME: int
    MOUNT_ATTR_IDMAP: int
    MOUNT_ATTR_NOSYMFOLLOW: int
    sizeof_mount_attr: int
    LSMT_ROOT: int
    MNT_ID_REQ_SIZE_VER0: int
    STATMOUNT_MNT_BASIC: int
    STATMOUNT_MNT_POINT: int
    offsetof_mnt_id_req_mnt_id: int
    offsetof_mnt_id_req_param: int
    offsetof_statmount_mnt_id: int
    offsetof_statmount_mnt_parent_id: int
    offsetof_statmount_mnt_id_old: int
    offsetof_statmount_mnt_attr: int
    offsetof_statmount_mnt_point: int
    offsetof_statmount_str: int
    # linux/fanotify.h
    FAN_CLOEXEC: int
    FAN_NONBLOCK: int
    FAN_REPORT_MNT: int
    FAN_MARK_ADD: int
    FAN_MARK_MNTNS: int
    FAN_MNT_ATTACH: int
    FAN_MNT_DETACH: int
    FAN_Q_OVERFLOW: int
    FANOTIFY_METADATA_VERSION: int
    FAN_EVENT_INFO_TYPE_MNT: int
    sizeof_fanotify_event_metadata: int
    offsetof_fanotify_event_metadata_event_len: int
    offsetof_fanotify_event_metadata_vers: int
    offsetof_fanotify_event_metadata_metadata_len: int
    offsetof_fanotify_event_metadata_mask: int
    sizeof_fanotify_event_info_header: int
    offsetof_fanotify_event_info_header_info_type: int
    offsetof_fanotify_event_info_header_len: int
    sizeof_fanotify_event_info_mnt: int
    offsetof_fanotify_event_info_mnt_mnt_id: int
    # asm/unistd_64.h
    NR_add_key: int
    NR_keyctl: int
    NR_open_tree: int
    NR_move_mount: int
    NR_mount_setattr: int
    NR_statmount: int
    NR_listmount: int
    NR_watch_mount: int
    NR_fanotify_init: int
    NR_fanotify_mark: int
    NR_pivot_root: int


def field_name(c_name: str) -> str:
    """The Uapi field of a name uapi_dump.c prints: "__NR_keyctl" -> "NR_keyctl"."""
    return c_name[2:] if c_name.startswith("__") else c_name


def parse(text: str, origin: str = "uapi.json") -> Uapi:
    """Uapi from uapi_dump's JSON; every field must be there, and nothing else."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise HarnessError(f"{origin}: not JSON ({e})") from None
    if not isinstance(raw, dict):
        raise HarnessError(f"{origin}: not a JSON object")
    values = {field_name(k): v for k, v in raw.items()}
    names = [f.name for f in dataclasses.fields(Uapi)]
    missing = [n for n in names if n not in values]
    unknown = sorted(values.keys() - set(names))
    if missing or unknown:
        raise HarnessError(f"{origin}: uapi_dump.c and harness/uapi.py disagree: "
                           f"missing {missing}, unknown {unknown}")
    bad = [n for n in names if not isinstance(values[n], int) or isinstance(values[n], bool)]
    if bad:
        raise HarnessError(f"{origin}: not integers: {bad}")
    return Uapi(**{n: values[n] for n in names})


def locate() -> Path:
    """The uapi.json to use (see the module docstring)."""
    explicit = os.environ.get(ENV_FILE)
    if explicit:
        return Path(explicit)
    selftests = os.environ.get("VMTEST_SELFTESTS")
    if selftests:
        return Path(selftests) / FILE_NAME
    return default_layout().selftests_out / FILE_NAME


def load(path: Path | None = None) -> Uapi:
    path = path or locate()
    try:
        text = path.read_text()
    except OSError as e:
        raise HarnessError(f"no uapi constants: {path}: {e.strerror}; it is made by "
                           f"`make -C selftests OUT=... HDR=... KSRC=...` (part of "
                           f"`make vmtest`), or name one with ${ENV_FILE}") from None
    return parse(text, str(path))


@cache
def current() -> Uapi:
    """The constants of the kernel under test, loaded once."""
    return load()
