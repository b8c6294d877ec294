// SPDX-License-Identifier: GPL-2.0
/*
 * watch_mount() against fanotify's mount events, side by side.
 *
 * Every scenario of the kernel's own fanotify mount-notify selftest
 * (tools/testing/selftests/filesystems/mount-notify/mount-notify_test.c: bind,
 * move, propagation to 16 mounts built by doubling binds, fsmount() plus
 * move_mount(), the "reparent" umount, rmdir from another namespace and
 * pivot_root()) is run once, in a chroot at a tmpfs mount of a private mount
 * namespace, with both watchers listening: a fanotify group with a mark on the
 * namespace (FAN_MNT_ATTACH | FAN_MNT_DETACH) and a watch_mount() watch on
 * "/".  After each step the two must report the same mounts, by 64-bit mount
 * ID: FAN_MNT_ATTACH alone is a NEW_MOUNT, FAN_MNT_DETACH alone an UNMOUNT, and
 * both together (a move) one or both of MOVE_FROM and MOVE_TO.  Where they
 * differ, by design: watch_mount() also reports attribute changes (left out
 * of the comparison) and the move of a mount that a new mount was put beneath
 * (mountinfo shows its new parent; fanotify doesn't report it), which must
 * then name a parent attached by the same operation.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/mount.h>
#include <linux/stat.h>
#include <linux/watch_queue.h>

#include "kselftest_harness.h"

#define MAX_EVENTS	64U

/* The mounts one watcher reported attached, detached and moved. */
struct seen {
	uint64_t attached[MAX_EVENTS], detached[MAX_EVENTS], moved[MAX_EVENTS];
	unsigned int na, nd, nm;
	unsigned int tucked;	/* moves only watch_mount() reports */
};

static const char root_templ[] = "/tmp/mount_fanotify_test.XXXXXX";

FIXTURE(twins) {
	int fan_fd;
	int q[2];
	char root[sizeof(root_templ)];
	int orig_root;
	uint64_t root_id;
};

static uint64_t mnt_id(const char *path)
{
	struct statx stx;

	memset(&stx, 0, sizeof(stx));
	if (statx(AT_FDCWD, path, 0, STATX_MNT_ID_UNIQUE, &stx) ||
	    !(stx.stx_mask & STATX_MNT_ID_UNIQUE))
		return 0;
	return stx.stx_mnt_id;
}

static uint64_t parent_of(uint64_t id)
{
	struct mnt_id_req req = {
		.size = MNT_ID_REQ_SIZE_VER0,
		.mnt_id = id,
		.param = STATMOUNT_MNT_BASIC,
	};
	struct statmount sm;

	if (syscall(__NR_statmount, &req, &sm, sizeof(sm), 0))
		return 0;
	return sm.mnt_parent_id;
}

FIXTURE_SETUP(twins)
{
	int ns_fd;

	self->fan_fd = -1;
	self->q[0] = -1;
	self->q[1] = -1;
	self->orig_root = -1;
	if (geteuid() != 0)
		SKIP(return, "needs root");

	ASSERT_EQ(unshare(CLONE_NEWNS), 0);
	ns_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(ns_fd, 0);
	ASSERT_EQ(mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	strcpy(self->root, root_templ);
	ASSERT_NE(mkdtemp(self->root), NULL);
	self->orig_root = open("/", O_PATH | O_CLOEXEC);
	ASSERT_GE(self->orig_root, 0);
	ASSERT_EQ(mount("tmpfs", self->root, "tmpfs", 0, NULL), 0);
	ASSERT_EQ(chroot(self->root), 0);
	ASSERT_EQ(chdir("/"), 0);
	ASSERT_EQ(mkdir("a", 0700), 0);
	ASSERT_EQ(mkdir("b", 0700), 0);
	self->root_id = mnt_id("/");
	ASSERT_NE(self->root_id, 0ULL);

	self->fan_fd = fanotify_init(FAN_REPORT_MNT | FAN_NONBLOCK, 0);
	ASSERT_GE(self->fan_fd, 0);
	ASSERT_EQ(fanotify_mark(self->fan_fd, FAN_MARK_ADD | FAN_MARK_MNTNS,
				FAN_MNT_ATTACH | FAN_MNT_DETACH, ns_fd, NULL), 0);
	close(ns_fd);

	ASSERT_EQ(pipe2(self->q, O_NOTIFICATION_PIPE | O_NONBLOCK), 0);
	ASSERT_EQ(ioctl(self->q[0], IOC_WATCH_QUEUE_SET_SIZE, 256), 0);
	ASSERT_EQ(syscall(__NR_watch_mount, AT_FDCWD, "/", 0, self->q[0], 1), 0);
}

FIXTURE_TEARDOWN(twins)
{
	if (self->fan_fd >= 0)
		close(self->fan_fd);
	if (self->q[0] >= 0) {
		close(self->q[0]);
		close(self->q[1]);
	}
	if (self->orig_root < 0)
		return;
	EXPECT_EQ(fchdir(self->orig_root), 0);
	EXPECT_EQ(chroot("."), 0);
	EXPECT_EQ(umount2(self->root, MNT_DETACH), 0);
	EXPECT_EQ(rmdir(self->root), 0);
}

static void add_id(uint64_t *v, unsigned int *n, uint64_t id)
{
	for (unsigned int i = 0; i < *n && i < MAX_EVENTS; i++)
		if (v[i] == id)
			return;
	if (*n < MAX_EVENTS)
		v[*n] = id;
	(*n)++;
}

static bool has_id(const uint64_t *v, unsigned int n, uint64_t id)
{
	for (unsigned int i = 0; i < n && i < MAX_EVENTS; i++)
		if (v[i] == id)
			return true;
	return false;
}

/* Everything fanotify reported since the last call. */
static void fan_events(struct __test_metadata *_metadata, int fd, struct seen *s)
{
	unsigned char buf[4096];
	ssize_t len;

	while ((len = read(fd, buf, sizeof(buf))) > 0) {
		struct fanotify_event_metadata *meta = (void *)buf;

		for (; FAN_EVENT_OK(meta, len); meta = FAN_EVENT_NEXT(meta, len)) {
			struct fanotify_event_info_mnt *mnt = (void *)(meta + 1);
			bool in = meta->mask & FAN_MNT_ATTACH;
			bool out = meta->mask & FAN_MNT_DETACH;

			ASSERT_EQ(meta->event_len, sizeof(*meta) + sizeof(*mnt));
			ASSERT_EQ(mnt->hdr.info_type, FAN_EVENT_INFO_TYPE_MNT);
			if (in && out)
				add_id(s->moved, &s->nm, mnt->mnt_id);
			else if (in)
				add_id(s->attached, &s->na, mnt->mnt_id);
			else
				add_id(s->detached, &s->nd, mnt->mnt_id);
		}
	}
	ASSERT_EQ(errno, EAGAIN);
}

/* Every watch_mount() record since the last call, sorted the same way. */
static void watch_events(struct __test_metadata *_metadata, int fd, struct seen *s)
{
	unsigned char buf[4096];
	ssize_t len;

	while ((len = read(fd, buf, sizeof(buf))) > 0) {
		ssize_t off = 0;

		while (off < len) {
			struct mount_notification *m = (void *)(buf + off);
			unsigned int l = m->watch.info & WATCH_INFO_LENGTH;

			ASSERT_GE(l, sizeof(m->watch));
			off += l;
			if (m->watch.type != WATCH_TYPE_MOUNT_NOTIFY)
				continue;
			ASSERT_EQ(l, sizeof(*m));
			ASSERT_EQ((m->watch.info & WATCH_INFO_ID) >> 8, 1U);
			switch (m->watch.subtype) {
			case NOTIFY_MOUNT_NEW_MOUNT:
				add_id(s->attached, &s->na, m->auxiliary_mount);
				break;
			case NOTIFY_MOUNT_UNMOUNT:
				add_id(s->detached, &s->nd, m->auxiliary_mount);
				break;
			case NOTIFY_MOUNT_MOVE_FROM:
			case NOTIFY_MOUNT_MOVE_TO:
				add_id(s->moved, &s->nm, m->auxiliary_mount);
				break;
			default:	/* EXPIRY, READONLY, SETATTR: not fanotify's */
				break;
			}
		}
	}
	ASSERT_EQ(errno, EAGAIN);
}

static void expect_same_set(struct __test_metadata *_metadata, const char *what,
			    const uint64_t *a, unsigned int na,
			    const uint64_t *b, unsigned int nb)
{
	unsigned int i;

	ASSERT_EQ(na, nb) {
		TH_LOG("%s: fanotify %u mounts, watch_mount %u", what, na, nb);
	}
	ASSERT_LE(na, MAX_EVENTS);
	for (i = 0; i < na; i++) {
		EXPECT_TRUE(has_id(b, nb, a[i])) {
			TH_LOG("%s: mount %llu only in fanotify", what,
			       (unsigned long long)a[i]);
		}
	}
}

/*
 * Both watchers report the same mounts attached and detached, by 64-bit ID,
 * and every move fanotify reports.  watch_mount() also reports a mount that
 * a new one was put beneath ("tucked": it gets the new mount as its parent),
 * which fanotify leaves out; such a move must name a parent that was just
 * attached.  Returns what fanotify saw, with the tucked moves counted.
 */
static struct seen expect_same(struct __test_metadata *_metadata,
			       struct _test_data_twins *self)
{
	struct seen fan = { 0 }, wm = { 0 };
	unsigned int i;

	fan_events(_metadata, self->fan_fd, &fan);
	watch_events(_metadata, self->q[0], &wm);
	expect_same_set(_metadata, "attached", fan.attached, fan.na, wm.attached, wm.na);
	expect_same_set(_metadata, "detached", fan.detached, fan.nd, wm.detached, wm.nd);
	ASSERT_LE(wm.nm, MAX_EVENTS);
	for (i = 0; i < fan.nm; i++) {
		EXPECT_TRUE(has_id(wm.moved, wm.nm, fan.moved[i])) {
			TH_LOG("move of %llu only in fanotify",
			       (unsigned long long)fan.moved[i]);
		}
	}
	for (i = 0; i < wm.nm; i++) {
		if (has_id(fan.moved, fan.nm, wm.moved[i]))
			continue;
		EXPECT_TRUE(has_id(wm.attached, wm.na, parent_of(wm.moved[i]))) {
			TH_LOG("move of %llu only in watch_mount, not a tuck",
			       (unsigned long long)wm.moved[i]);
		}
		fan.tucked++;
	}
	return fan;
}

TEST_F(twins, bind)
{
	struct seen s;

	ASSERT_EQ(mount("/", "/", NULL, MS_BIND, NULL), 0);
	s = expect_same(_metadata, self);
	ASSERT_EQ(s.na, 1U);
	ASSERT_NE(s.attached[0], self->root_id);
	ASSERT_EQ(umount("/"), 0);
	s = expect_same(_metadata, self);
	ASSERT_EQ(s.nd, 1U);
}

TEST_F(twins, move)
{
	struct seen s;
	uint64_t id;

	ASSERT_EQ(mount("/", "/a", NULL, MS_BIND, NULL), 0);
	s = expect_same(_metadata, self);
	ASSERT_EQ(s.na, 1U);
	id = s.attached[0];
	ASSERT_EQ(move_mount(AT_FDCWD, "/a", AT_FDCWD, "/b", 0), 0);
	s = expect_same(_metadata, self);
	ASSERT_EQ(s.nm, 1U);
	ASSERT_EQ(s.moved[0], id);
	ASSERT_EQ(umount("/b"), 0);
	ASSERT_EQ(expect_same(_metadata, self).nd, 1U);
}

TEST_F(twins, propagate_to_16_mounts)
{
	unsigned int i, attached = 0;

	ASSERT_EQ(mount("", "/", NULL, MS_SHARED, NULL), 0);
	for (i = 0; i < 4; i++) {
		struct seen s;

		ASSERT_EQ(mount("/", "/", NULL, MS_BIND, NULL), 0);
		s = expect_same(_metadata, self);
		ASSERT_EQ(s.na, 1U << i);
		attached += s.na;
	}
	ASSERT_EQ(attached, 15U);
	ASSERT_EQ(umount2("/", MNT_DETACH), 0);
	ASSERT_EQ(mount("", "/", NULL, MS_PRIVATE, NULL), 0);
	ASSERT_EQ(expect_same(_metadata, self).nd, 15U);
}

TEST_F(twins, fsmount_and_move_mount)
{
	int fs, mnt;

	fs = fsopen("tmpfs", 0);
	ASSERT_GE(fs, 0);
	ASSERT_EQ(fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0), 0);
	mnt = fsmount(fs, 0, 0);
	ASSERT_GE(mnt, 0);
	close(fs);
	/* Detached: in an anonymous namespace, nobody is told yet. */
	ASSERT_EQ(expect_same(_metadata, self).na, 0U);
	ASSERT_EQ(move_mount(mnt, "", AT_FDCWD, "/a", MOVE_MOUNT_F_EMPTY_PATH), 0);
	close(mnt);
	ASSERT_EQ(expect_same(_metadata, self).na, 1U);
	ASSERT_EQ(umount("/a"), 0);
	ASSERT_EQ(expect_same(_metadata, self).nd, 1U);
}

/* a propagates to b; a mount only on b falls onto b's lower mount. */
TEST_F(twins, reparent)
{
	struct seen s;

	ASSERT_EQ(mount("/", "/a", NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(mount("", "/a", NULL, MS_SHARED, NULL), 0);
	ASSERT_EQ(mount("/a", "/b", NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(mount("", "/b", NULL, MS_SLAVE, NULL), 0);
	ASSERT_EQ(expect_same(_metadata, self).na, 2U);
	/* Mount on a[3], propagated to b[4]. */
	ASSERT_EQ(mount("/", "/a", NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(expect_same(_metadata, self).na, 2U);
	/* Mount on b[5], not propagated. */
	ASSERT_EQ(mount("/", "/b", NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(expect_same(_metadata, self).na, 1U);
	/* Umount a[3]: b[4] goes with it and b[5] falls onto b[2]. */
	ASSERT_EQ(umount("/a"), 0);
	s = expect_same(_metadata, self);
	ASSERT_EQ(s.nd, 2U);
	ASSERT_EQ(s.nm, 1U);

	/* Cleanup: nothing is left unreported. */
	ASSERT_EQ(umount("/b"), 0);
	ASSERT_EQ(umount("/a"), 0);
	ASSERT_EQ(umount("/b"), 0);
	s = expect_same(_metadata, self);
	ASSERT_EQ(s.nd, 3U);
	ASSERT_EQ(s.na + s.nm, 0U);
}

/* An rmdir in another namespace detaches the mounts here. */
TEST_F(twins, rmdir_from_another_namespace)
{
	int status;
	pid_t pid;

	ASSERT_EQ(mount("/", "/a", NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(mount("/", "/a/b", NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(expect_same(_metadata, self).na, 2U);
	ASSERT_EQ(chdir("/a"), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (chdir("/") || unshare(CLONE_NEWNS) ||
		    mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    umount2("/a", MNT_DETACH) || rmdir("/a"))
			_exit(1);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_EQ(WEXITSTATUS(status), 0);
	ASSERT_EQ(expect_same(_metadata, self).nd, 2U);
	ASSERT_EQ(chdir("/"), 0);
}

TEST_F(twins, pivot_root)
{
	struct seen s;

	ASSERT_EQ(mount("tmpfs", "/a", "tmpfs", 0, NULL), 0);
	ASSERT_EQ(expect_same(_metadata, self).na, 1U);
	ASSERT_EQ(mkdir("/a/new", 0700), 0);
	ASSERT_EQ(mkdir("/a/old", 0700), 0);
	ASSERT_EQ(mount("/a", "/a/new", NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(expect_same(_metadata, self).na, 1U);

	/* Both the new root and the old one (the watched mount) move. */
	ASSERT_EQ(syscall(SYS_pivot_root, "/a/new", "/a/new/old"), 0);
	s = expect_same(_metadata, self);
	ASSERT_EQ(s.nm, 2U);
	ASSERT_EQ(s.na + s.nd, 0U);

	ASSERT_EQ(syscall(SYS_pivot_root, "/old", "/old/a/new"), 0);
	s = expect_same(_metadata, self);
	ASSERT_EQ(s.nm, 2U);
	ASSERT_EQ(umount("/a/new"), 0);
	ASSERT_EQ(umount("/a"), 0);
	ASSERT_EQ(expect_same(_metadata, self).nd, 2U);
}

TEST_HARNESS_MAIN
