// SPDX-License-Identifier: GPL-2.0
/*
 * Prints, as one JSON object, the uapi constants the Python checkers use,
 * evaluated by the compiler from the installed headers of the kernel under
 * test: macros, enum values, ioctl encodings, structure sizes and offsets,
 * and the x86_64 system call numbers.  selftests/Makefile runs it at build
 * time into $(OUT)/uapi.json, which harness/uapi.py loads: the Python side
 * never carries a copy of these numbers, so it follows the headers.
 *
 * Every name printed here is a field of harness.uapi.Uapi, and the reverse
 * (a host unit test checks both directions).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <asm/unistd.h>
#include <linux/fanotify.h>
#include <linux/ioctl.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <linux/watch_queue.h>

static int first = 1;

static void emit(const char *name, int negative, unsigned long long value)
{
	printf("%s\n  \"%s\": %s%llu", first ? "{" : ",", name, negative ? "-" : "",
	       negative ? 0 - value : value);
	first = 0;
}

/* A constant that is never negative, a signed one, a size, an offset. */
#define C(x)		emit(#x, 0, (unsigned long long)(x))
#define S(x)		emit(#x, (x) < 0, (unsigned long long)(long long)(x))
#define SIZE(s)		emit("sizeof_" #s, 0, sizeof(struct s))
#define OFF(s, f)	emit("offsetof_" #s "_" #f, 0, offsetof(struct s, f))
/* The size encoded in an ioctl number: what the kernel copies in or out. */
#define IOC_SIZE(x)	emit(#x "_size", 0, _IOC_SIZE(x))

int main(void)
{
	/* linux/watch_queue.h: record types and the ring */
	C(WATCH_TYPE_META);
	C(WATCH_TYPE_KEY_NOTIFY);
	C(WATCH_TYPE_MOUNT_NOTIFY);
	C(WATCH_TYPE__NR);
	C(WATCH_META_REMOVAL_NOTIFICATION);
	C(WATCH_META_LOSS_NOTIFICATION);
	C(WATCH_META_SKIP_NOTIFICATION);
	C(WATCH_INFO_LENGTH);
	C(WATCH_INFO_NR_SLOTS);
	C(WATCH_INFO_ID);
	C(WATCH_INFO_TYPE_INFO);
	C(WATCH_QUEUE_RING_MAX_PAGES);
	C(O_NOTIFICATION_PIPE);
	C(IOC_WATCH_QUEUE_SET_SIZE);
	C(IOC_WATCH_QUEUE_SET_FILTER);
	C(IOC_WATCH_QUEUE_NR_PAGES);
	C(IOC_WATCH_QUEUE_TAKE_LOSS);
	IOC_SIZE(IOC_WATCH_QUEUE_TAKE_LOSS);
	C(IOC_WATCH_QUEUE_INJECT);
	SIZE(watch_notification);
	SIZE(watch_queue_ring_meta);
	OFF(watch_queue_ring_meta, head);
	OFF(watch_queue_ring_meta, tail);
	SIZE(watch_notification_loss);
	OFF(watch_notification_loss, nr_lost);
	SIZE(watch_notification_type_filter);
	SIZE(watch_notification_filter);
	SIZE(watch_notification_removal);
	SIZE(key_notification);
	SIZE(mount_notification);
	C(NOTIFY_KEY_INSTANTIATED);
	C(NOTIFY_KEY_UPDATED);
	C(NOTIFY_KEY_LINKED);
	C(NOTIFY_KEY_UNLINKED);
	C(NOTIFY_KEY_CLEARED);
	C(NOTIFY_KEY_REVOKED);
	C(NOTIFY_KEY_INVALIDATED);
	C(NOTIFY_KEY_SETATTR);
	C(NOTIFY_MOUNT_NEW_MOUNT);
	C(NOTIFY_MOUNT_UNMOUNT);
	C(NOTIFY_MOUNT_EXPIRY);
	C(NOTIFY_MOUNT_READONLY);
	C(NOTIFY_MOUNT_SETATTR);
	C(NOTIFY_MOUNT_MOVE_FROM);
	C(NOTIFY_MOUNT_MOVE_TO);
	C(NOTIFY_MOUNT_IN_SUBTREE);
	C(NOTIFY_MOUNT_IS_NOW_RO);
	C(NOTIFY_MOUNT_IS_SUBMOUNT);

	/* linux/keyctl.h */
	S(KEY_SPEC_SESSION_KEYRING);
	S(KEY_SPEC_USER_KEYRING);
	C(KEYCTL_GET_KEYRING_ID);
	C(KEYCTL_JOIN_SESSION_KEYRING);
	C(KEYCTL_UPDATE);
	C(KEYCTL_REVOKE);
	C(KEYCTL_SETPERM);
	C(KEYCTL_DESCRIBE);
	C(KEYCTL_CLEAR);
	C(KEYCTL_LINK);
	C(KEYCTL_UNLINK);
	C(KEYCTL_SET_TIMEOUT);
	C(KEYCTL_INVALIDATE);
	C(KEYCTL_WATCH_KEY);

	/* linux/mount.h, linux/fcntl.h, linux/sched.h */
	S(AT_FDCWD);
	C(AT_EMPTY_PATH);
	C(AT_RECURSIVE);
	C(OPEN_TREE_CLONE);
	C(OPEN_TREE_CLOEXEC);
	C(MOVE_MOUNT_F_EMPTY_PATH);
	C(CLONE_NEWNS);
	C(MS_RDONLY);
	C(MS_NOSUID);
	C(MS_NODEV);
	C(MS_NOEXEC);
	C(MS_REMOUNT);
	C(MS_NOATIME);
	C(MS_BIND);
	C(MS_MOVE);
	C(MS_REC);
	C(MS_UNBINDABLE);
	C(MS_PRIVATE);
	C(MS_SLAVE);
	C(MS_SHARED);
	C(MOUNT_ATTR_RDONLY);
	C(MOUNT_ATTR_NOSUID);
	C(MOUNT_ATTR_NODEV);
	C(MOUNT_ATTR_NOEXEC);
	C(MOUNT_ATTR__ATIME);
	C(MOUNT_ATTR_NOATIME);
	C(MOUNT_ATTR_STRICTATIME);
	C(MOUNT_ATTR_NODIRATIME);
	C(MOUNT_ATTR_IDMAP);
	C(MOUNT_ATTR_NOSYMFOLLOW);
	SIZE(mount_attr);
	C(LSMT_ROOT);
	C(MNT_ID_REQ_SIZE_VER0);
	C(STATMOUNT_MNT_BASIC);
	C(STATMOUNT_MNT_POINT);
	OFF(mnt_id_req, mnt_id);
	OFF(mnt_id_req, param);
	OFF(statmount, mnt_id);
	OFF(statmount, mnt_parent_id);
	OFF(statmount, mnt_id_old);
	OFF(statmount, mnt_attr);
	OFF(statmount, mnt_point);
	OFF(statmount, str);

	/* linux/fanotify.h: mount events, the mount oracle's second reference */
	C(FAN_CLOEXEC);
	C(FAN_NONBLOCK);
	C(FAN_REPORT_MNT);
	C(FAN_MARK_ADD);
	C(FAN_MARK_MNTNS);
	C(FAN_MNT_ATTACH);
	C(FAN_MNT_DETACH);
	C(FAN_Q_OVERFLOW);
	C(FANOTIFY_METADATA_VERSION);
	C(FAN_EVENT_INFO_TYPE_MNT);
	SIZE(fanotify_event_metadata);
	OFF(fanotify_event_metadata, event_len);
	OFF(fanotify_event_metadata, vers);
	OFF(fanotify_event_metadata, metadata_len);
	OFF(fanotify_event_metadata, mask);
	SIZE(fanotify_event_info_header);
	OFF(fanotify_event_info_header, info_type);
	OFF(fanotify_event_info_header, len);
	SIZE(fanotify_event_info_mnt);
	OFF(fanotify_event_info_mnt, mnt_id);

	/* asm/unistd.h (asm/unistd_64.h on x86_64) */
	C(__NR_add_key);
	C(__NR_keyctl);
	C(__NR_open_tree);
	C(__NR_move_mount);
	C(__NR_mount_setattr);
	C(__NR_statmount);
	C(__NR_listmount);
	C(__NR_watch_mount);
	C(__NR_fanotify_init);
	C(__NR_fanotify_mark);
	C(__NR_pivot_root);
	printf("\n}\n");
	return ferror(stdout) ? 1 : 0;
}
