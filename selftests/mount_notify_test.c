// SPDX-License-Identifier: GPL-2.0
/*
 * Tests for mount topology change notifications: watch_mount(2) feeding
 * struct mount_notification records into a watch queue.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <linux/stat.h>

#include "wq_util.h"
#include "kselftest_harness.h"

#define BASE		"/tmp/mnt_notify"
/* per_user_watch_limit's user: one no other program uses */
#define LIMIT_UID	64001
#define REC_LEN		((unsigned int)sizeof(struct mount_notification))

static int sys_mount(const char *src, const char *tgt, const char *fstype,
		     unsigned long flags, const void *data)
{
	return syscall(__NR_mount, src, tgt, fstype, flags, data);
}

static int sys_umount2(const char *tgt, int flags)
{
	return syscall(__NR_umount2, tgt, flags);
}

static int sys_mount_setattr(const char *path, unsigned long long set,
			     unsigned long long clr)
{
	struct mount_attr attr = { .attr_set = set, .attr_clr = clr };

	return syscall(__NR_mount_setattr, AT_FDCWD, path, 0, &attr, sizeof(attr));
}

static int tmpfs_at(const char *path, unsigned long flags)
{
	return sys_mount("mnt_notify", path, "tmpfs", flags, NULL);
}

/*
 * Bind BASE/b onto @path: for the loops that mount and unmount thousands of
 * times.  It posts what a new tmpfs would, and costs half as much (no
 * superblock to set up and tear down: 9-10 ms against 18-20 ms a cycle
 * under the debug config and TCG).
 */
static int bind_at(const char *path)
{
	return sys_mount(BASE "/b", path, NULL, MS_BIND, NULL);
}

/* The 64-bit unique mount ID of the mount at @path, 0 on failure. */
static uint64_t mnt_id(const char *path)
{
	struct statx stx;

	memset(&stx, 0, sizeof(stx));
	if (syscall(__NR_statx, AT_FDCWD, path, 0, STATX_MNT_ID_UNIQUE, &stx))
		return 0;
	if (!(stx.stx_mask & STATX_MNT_ID_UNIQUE))
		return 0;
	return stx.stx_mnt_id;
}

/* statmount() the mount @id; returns 0 or -errno. */
static int do_statmount(uint64_t id, uint64_t mask, struct statmount *sm,
			size_t size)
{
	struct mnt_id_req req = {
		.size = MNT_ID_REQ_SIZE_VER0,
		.mnt_id = id,
		.param = mask,
	};

	if (syscall(__NR_statmount, &req, sm, size, 0))
		return -errno;
	return 0;
}

static uint64_t statmount_attr(uint64_t id)
{
	struct statmount sm;

	if (do_statmount(id, STATMOUNT_MNT_BASIC, &sm, sizeof(sm)))
		return ~0ULL;
	return sm.mnt_attr;
}

/* Make a notification pipe; fds[0] (read) is non-blocking. */
static int make_queue(int fds[2])
{
	if (pipe2(fds, O_NOTIFICATION_PIPE | O_NONBLOCK))
		return -1;
	if (ioctl(fds[0], IOC_WATCH_QUEUE_SET_SIZE, 256))
		return -1;
	return 0;
}

#define MAX_RECS 64

struct rec {
	unsigned char b[128];
	unsigned int len;
};

static struct mount_notification *mn(struct rec *r)
{
	return (struct mount_notification *)r->b;
}

/* Drain everything currently queued (non-blocking). */
static int read_recs(int fd, struct rec *recs, int max)
{
	unsigned char buf[4096];
	int n = 0;

	for (;;) {
		ssize_t len = read(fd, buf, sizeof(buf));
		ssize_t off = 0;

		if (len < 0) {
			if (errno == EAGAIN)
				return n;
			return -1;
		}
		while (off < len) {
			struct watch_notification *w = (void *)(buf + off);
			unsigned int l = w->info & WATCH_INFO_LENGTH;

			if (l < sizeof(*w) || off + l > len || n >= max)
				return -1;
			memset(&recs[n], 0, sizeof(recs[n]));
			memcpy(recs[n].b, buf + off, l);
			recs[n].len = l;
			n++;
			off += l;
		}
	}
}

/*
 * Check that @r is exactly the mount record described by the arguments: the
 * type, subtype, length, watch id, flags (and no other info bits), all ids and
 * the attributes (which must match what statmount() says when aux still
 * exists, else @attr_if_gone).
 */
#define ASSERT_MOUNT_REC(r, st, wid, flags, trig, aux, watched)			\
	do {									\
		struct rec *__r = (r);						\
		struct mount_notification *__m = mn(__r);			\
		ASSERT_EQ(__r->len, REC_LEN);					\
		ASSERT_EQ((unsigned int)__m->watch.type,			\
			  (unsigned int)WATCH_TYPE_MOUNT_NOTIFY);		\
		ASSERT_EQ((unsigned int)__m->watch.subtype, (unsigned int)(st));	\
		ASSERT_EQ(__m->watch.info & WATCH_INFO_LENGTH, REC_LEN);	\
		ASSERT_EQ((__m->watch.info & WATCH_INFO_ID) >> 8, (unsigned int)(wid));	\
		ASSERT_EQ(__m->watch.info & WATCH_INFO_TYPE_INFO,		\
			  (unsigned int)(flags));				\
		ASSERT_EQ(__m->watch.info & 0x80, 0U);				\
		ASSERT_EQ(__m->triggered_on, (__u64)(trig));			\
		ASSERT_EQ(__m->auxiliary_mount, (__u64)(aux));			\
		ASSERT_EQ(__m->watched_mount, (__u64)(watched));		\
		ASSERT_NE(__m->triggered_on, (__u64)0);				\
		ASSERT_NE(__m->auxiliary_mount, (__u64)0);			\
	} while (0)

static void check_id_is_mount(struct __test_metadata *_metadata, uint64_t id,
			      const char *mnt_point)
{
	struct {
		struct statmount sm;
		char str[4096];
	} s;

	memset(&s, 0, sizeof(s));
	ASSERT_EQ(do_statmount(id, STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT,
			       &s.sm, sizeof(s)), 0);
	ASSERT_EQ(s.sm.mnt_id, id);
	if (mnt_point)
		ASSERT_STREQ(s.str + s.sm.mnt_point, mnt_point);
}

FIXTURE(mount_notify) {
	int q[2];
	uint64_t base_id;
};

FIXTURE_SETUP(mount_notify)
{
	int ret;

	self->q[0] = -1;
	self->q[1] = -1;
	if (geteuid() != 0)
		SKIP(return, "needs root");

	/* A closed watch_fd gives EBADF from watch_mount() and nothing else. */
	ret = watch_mount(AT_FDCWD, "/", 0, -1, 0);
	if (syscall_missing(ret))
		SKIP(return, "watch_mount() not supported (CONFIG_MOUNT_NOTIFICATIONS=n)");
	if (ret != -1 || errno != EBADF)
		SKIP(return, "syscall %d is not watch_mount() on this kernel",
		     __NR_watch_mount);
	if (pipe2(self->q, O_NOTIFICATION_PIPE) < 0)
		SKIP(return, "no notification pipes (CONFIG_WATCH_QUEUE=n)");
	close(self->q[0]);
	close(self->q[1]);
	self->q[0] = -1;
	self->q[1] = -1;

	ASSERT_EQ(unshare(CLONE_NEWNS), 0);
	ASSERT_EQ(sys_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	ASSERT_EQ(tmpfs_at("/tmp", 0), 0);
	ASSERT_EQ(mkdir(BASE, 0755), 0);
	ASSERT_EQ(tmpfs_at(BASE, 0), 0);
	ASSERT_EQ(mkdir(BASE "/a", 0755), 0);
	ASSERT_EQ(mkdir(BASE "/b", 0755), 0);
	self->base_id = mnt_id(BASE);
	ASSERT_NE(self->base_id, 0ULL);
	ASSERT_NE(self->base_id, mnt_id("/tmp"));
	ASSERT_EQ(make_queue(self->q), 0);
}

FIXTURE_TEARDOWN(mount_notify)
{
	if (self->q[0] >= 0)
		close(self->q[0]);
	if (self->q[1] >= 0)
		close(self->q[1]);
}

/* Watching, by itself, produces no records. */
TEST_F(mount_notify, watch_alone_posts_nothing)
{
	struct rec r[MAX_RECS];

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 1), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 0);
}

TEST_F(mount_notify, new_mount_is_reported_on_parent)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 0x12), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_NE(a, 0ULL);

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 0x12, 0,
			 self->base_id, a, self->base_id);
	ASSERT_EQ(mn(&r[0])->mnt_attr, statmount_attr(a));
	check_id_is_mount(_metadata, mn(&r[0])->auxiliary_mount, BASE "/a");
	check_id_is_mount(_metadata, mn(&r[0])->triggered_on, BASE);
}

TEST_F(mount_notify, new_readonly_mount_has_is_now_ro)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 3), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a", MS_RDONLY | MS_NOSUID), 0);
	a = mnt_id(BASE "/a");

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 3,
			 NOTIFY_MOUNT_IS_NOW_RO, self->base_id, a, self->base_id);
	ASSERT_TRUE((mn(&r[0])->mnt_attr & MOUNT_ATTR_RDONLY) != 0);
	ASSERT_TRUE((mn(&r[0])->mnt_attr & MOUNT_ATTR_NOSUID) != 0);
	ASSERT_EQ(mn(&r[0])->mnt_attr, statmount_attr(a));
}

/* A tree attached by move_mount() from open_tree(OPEN_TREE_CLONE) is new. */
TEST_F(mount_notify, attached_detached_tree_is_new_mount)
{
	struct rec r[MAX_RECS];
	int fd;
	uint64_t b;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	fd = syscall(__NR_open_tree, AT_FDCWD, BASE "/a",
		     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 4), 0);
	ASSERT_EQ(syscall(__NR_move_mount, fd, "", AT_FDCWD, BASE "/b",
			  MOVE_MOUNT_F_EMPTY_PATH), 0);
	close(fd);
	b = mnt_id(BASE "/b");

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 4, 0,
			 self->base_id, b, self->base_id);
}

TEST_F(mount_notify, unmount_is_reported_on_parent)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 5), 0);
	ASSERT_EQ(sys_umount2(BASE "/a", 0), 0);

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_UNMOUNT, 5, 0,
			 self->base_id, a, self->base_id);
	ASSERT_EQ(do_statmount(a, STATMOUNT_MNT_BASIC, (void *)r, sizeof(r)),
		  -ENOENT);
}

TEST_F(mount_notify, expiry_then_unmount)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 6), 0);
	ASSERT_EQ(sys_umount2(BASE "/a", MNT_EXPIRE), -1);
	ASSERT_EQ(errno, EAGAIN);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 0);
	ASSERT_EQ(sys_umount2(BASE "/a", MNT_EXPIRE), 0);

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 2);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_EXPIRY, 6, 0,
			 self->base_id, a, self->base_id);
	ASSERT_MOUNT_REC(&r[1], NOTIFY_MOUNT_UNMOUNT, 6, 0,
			 self->base_id, a, self->base_id);
}

TEST_F(mount_notify, mount_setattr_readonly_toggles)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 7), 0);

	ASSERT_EQ(sys_mount_setattr(BASE "/a", MOUNT_ATTR_RDONLY, 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_READONLY, 7,
			 NOTIFY_MOUNT_IS_NOW_RO, a, a, a);
	ASSERT_EQ(mn(&r[0])->mnt_attr, statmount_attr(a));

	/* Setting it again changes nothing and posts nothing. */
	ASSERT_EQ(sys_mount_setattr(BASE "/a", MOUNT_ATTR_RDONLY, 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 0);

	ASSERT_EQ(sys_mount_setattr(BASE "/a", 0, MOUNT_ATTR_RDONLY), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_READONLY, 7, 0, a, a, a);
	ASSERT_EQ(mn(&r[0])->mnt_attr & MOUNT_ATTR_RDONLY, (__u64)0);
}

TEST_F(mount_notify, bind_remount_readonly)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 8), 0);
	ASSERT_EQ(sys_mount(NULL, BASE "/a", NULL,
			    MS_REMOUNT | MS_BIND | MS_RDONLY, NULL), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_READONLY, 8,
			 NOTIFY_MOUNT_IS_NOW_RO, a, a, a);
}

TEST_F(mount_notify, mount_setattr_flags_is_setattr)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 9), 0);
	ASSERT_EQ(sys_mount_setattr(BASE "/a",
				    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_SETATTR, 9, 0, a, a, a);
	ASSERT_EQ(mn(&r[0])->mnt_attr & (MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV),
		  (__u64)(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
	ASSERT_EQ(mn(&r[0])->mnt_attr, statmount_attr(a));
}

TEST_F(mount_notify, readonly_and_other_flag_post_both)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 10), 0);
	ASSERT_EQ(sys_mount_setattr(BASE "/a",
				    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC, 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 2);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_READONLY, 10,
			 NOTIFY_MOUNT_IS_NOW_RO, a, a, a);
	ASSERT_MOUNT_REC(&r[1], NOTIFY_MOUNT_SETATTR, 10,
			 NOTIFY_MOUNT_IS_NOW_RO, a, a, a);
	ASSERT_EQ(mn(&r[1])->mnt_attr, statmount_attr(a));
}

TEST_F(mount_notify, bind_remount_noexec_is_setattr)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 11), 0);
	ASSERT_EQ(sys_mount(NULL, BASE "/a", NULL,
			    MS_REMOUNT | MS_BIND | MS_NOEXEC, NULL), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_SETATTR, 11, 0, a, a, a);
	ASSERT_TRUE((mn(&r[0])->mnt_attr & MOUNT_ATTR_NOEXEC) != 0);
}

TEST_F(mount_notify, move_from_and_move_to)
{
	struct rec r[MAX_RECS];
	int q2[2], q3[2];
	uint64_t p1, p2, c;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	ASSERT_EQ(tmpfs_at(BASE "/b", 0), 0);
	ASSERT_EQ(mkdir(BASE "/a/x", 0755), 0);
	ASSERT_EQ(mkdir(BASE "/b/y", 0755), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a/x", 0), 0);
	p1 = mnt_id(BASE "/a");
	p2 = mnt_id(BASE "/b");
	c = mnt_id(BASE "/a/x");
	ASSERT_EQ(make_queue(q2), 0);
	ASSERT_EQ(make_queue(q3), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 1), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/b", 0, q2[1], 2), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, q3[1], 3), 0);

	ASSERT_EQ(sys_mount(BASE "/a/x", BASE "/b/y", NULL, MS_MOVE, NULL), 0);
	ASSERT_EQ(mnt_id(BASE "/b/y"), c);

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_MOVE_FROM, 1, 0, p1, c, p1);
	ASSERT_EQ(read_recs(q2[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_MOVE_TO, 2, 0, p2, c, p2);
	ASSERT_EQ(read_recs(q3[0], r, MAX_RECS), 2);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_MOVE_FROM, 3,
			 NOTIFY_MOUNT_IN_SUBTREE, p1, c, self->base_id);
	ASSERT_MOUNT_REC(&r[1], NOTIFY_MOUNT_MOVE_TO, 3,
			 NOTIFY_MOUNT_IN_SUBTREE, p2, c, self->base_id);
	check_id_is_mount(_metadata, c, BASE "/b/y");
}

/* An event is posted on the mount where it happened, then on each ancestor. */
TEST_F(mount_notify, subtree_propagation_sets_in_subtree)
{
	struct rec r[MAX_RECS];
	int q2[2];
	uint64_t a, x;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	ASSERT_EQ(mkdir(BASE "/a/x", 0755), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 1), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 2), 0);
	/* A watch on "/tmp" (above BASE) on another queue sees it too. */
	ASSERT_EQ(make_queue(q2), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, "/tmp", 0, q2[1], 3), 0);

	ASSERT_EQ(tmpfs_at(BASE "/a/x", 0), 0);
	x = mnt_id(BASE "/a/x");

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 2);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 2, 0, a, x, a);
	ASSERT_MOUNT_REC(&r[1], NOTIFY_MOUNT_NEW_MOUNT, 1,
			 NOTIFY_MOUNT_IN_SUBTREE, a, x, self->base_id);
	ASSERT_EQ(read_recs(q2[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 3,
			 NOTIFY_MOUNT_IN_SUBTREE, a, x, mnt_id("/tmp"));

	/* Attribute changes propagate the same way. */
	ASSERT_EQ(sys_mount_setattr(BASE "/a/x", MOUNT_ATTR_NODEV, 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 2);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_SETATTR, 2,
			 NOTIFY_MOUNT_IN_SUBTREE, x, x, a);
	ASSERT_MOUNT_REC(&r[1], NOTIFY_MOUNT_SETATTR, 1,
			 NOTIFY_MOUNT_IN_SUBTREE, x, x, self->base_id);
}

/* Sibling and unrelated mounts' events do not reach a watch. */
TEST_F(mount_notify, events_outside_subtree_not_seen)
{
	struct rec r[MAX_RECS];

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	ASSERT_EQ(tmpfs_at(BASE "/b", 0), 0);
	ASSERT_EQ(mkdir(BASE "/b/y", 0755), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 1), 0);
	ASSERT_EQ(tmpfs_at(BASE "/b/y", 0), 0);
	ASSERT_EQ(sys_mount_setattr(BASE "/b", MOUNT_ATTR_RDONLY, 0), 0);
	ASSERT_EQ(sys_umount2(BASE "/b", MNT_DETACH), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 0);
}

/* The filter's info_mask can select only events on the watched mount. */
TEST_F(mount_notify, filter_on_in_subtree)
{
	struct {
		struct watch_notification_filter f;
		struct watch_notification_type_filter t[1];
	} filter = {
		.f.nr_filters = 1,
		.t[0] = {
			.type = WATCH_TYPE_MOUNT_NOTIFY,
			.info_filter = 0,
			.info_mask = NOTIFY_MOUNT_IN_SUBTREE,
			.subtype_filter[0] = ~0U,
		},
	};
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(ioctl(self->q[0], IOC_WATCH_QUEUE_SET_FILTER, &filter), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 1), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(mkdir(BASE "/a/x", 0755), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a/x", 0), 0);	/* in subtree: filtered */
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 1, 0,
			 self->base_id, a, self->base_id);
}

static void assert_removal(struct __test_metadata *_metadata, struct rec *r,
			   unsigned int wid, uint64_t id)
{
	struct watch_notification_removal *rm = (void *)r->b;

	ASSERT_EQ(r->len, sizeof(*rm));
	ASSERT_EQ((unsigned int)rm->watch.type, (unsigned int)WATCH_TYPE_META);
	ASSERT_EQ((unsigned int)rm->watch.subtype, (unsigned int)WATCH_META_REMOVAL_NOTIFICATION);
	ASSERT_EQ(rm->watch.info & WATCH_INFO_LENGTH, sizeof(*rm));
	ASSERT_EQ((rm->watch.info & WATCH_INFO_ID) >> 8, wid);
	ASSERT_EQ(rm->id, id);
}

/* umount is not blocked by a watch, and the watcher gets a removal record. */
TEST_F(mount_notify, umount_of_watched_mount_posts_removal)
{
	struct rec r[MAX_RECS];
	uint64_t a;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 0x21), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 0x22), 0);
	ASSERT_EQ(sys_umount2(BASE "/a", 0), 0);

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 2);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_UNMOUNT, 0x22, 0,
			 self->base_id, a, self->base_id);
	assert_removal(_metadata, &r[1], 0x21, a);

	/* The watch is gone: a new mount there is a new, unwatched mount. */
	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_EQ((unsigned int)mn(&r[0])->watch.subtype, (unsigned int)NOTIFY_MOUNT_NEW_MOUNT);
	ASSERT_EQ((mn(&r[0])->watch.info & WATCH_INFO_ID) >> 8, 0x22U);
}

TEST_F(mount_notify, lazy_umount_of_busy_watched_tree_posts_removals)
{
	struct rec r[MAX_RECS];
	uint64_t a, x;
	int fd;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	ASSERT_EQ(mkdir(BASE "/a/x", 0755), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a/x", 0), 0);
	a = mnt_id(BASE "/a");
	x = mnt_id(BASE "/a/x");
	fd = open(BASE "/a/x", O_RDONLY | O_DIRECTORY);	/* keeps it busy */
	ASSERT_GE(fd, 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 1), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a/x", 0, self->q[1], 2), 0);
	ASSERT_EQ(sys_umount2(BASE "/a", MNT_DETACH), 0);

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 3);
	/* x leaves a (posted to a's watch), then both watches end. */
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_UNMOUNT, 1, 0, a, x, a);
	assert_removal(_metadata, &r[1], 1, a);
	assert_removal(_metadata, &r[2], 2, x);
	/* A detached mount cannot be watched. */
	ASSERT_EQ(watch_mount(fd, "", AT_EMPTY_PATH, self->q[1], 3), -1);
	ASSERT_EQ(errno, EINVAL);
	close(fd);
}

TEST_F(mount_notify, remove_watch_then_ebadslt)
{
	struct rec r[MAX_RECS];

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 0x33), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], -1), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	assert_removal(_metadata, &r[0], 0x33, self->base_id);

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 0);

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], -1), -1);
	ASSERT_EQ(errno, EBADSLT);
}

TEST_F(mount_notify, remove_nonexistent_watch_is_ebadslt)
{
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], -1), -1);
	ASSERT_EQ(errno, EBADSLT);
	/* A watch by another queue does not count. */
	do {
		int q2[2];

		ASSERT_EQ(make_queue(q2), 0);
		ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, q2[1], 1), 0);
		ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], -1), -1);
		ASSERT_EQ(errno, EBADSLT);
	} while (0);
}

TEST_F(mount_notify, second_watch_same_queue_is_ebusy)
{
	int q2[2];

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 1), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 2), -1);
	ASSERT_EQ(errno, EBUSY);
	/* Through another path into the same mount, too. */
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 1), -1);
	ASSERT_EQ(errno, EBUSY);
	/* Another queue may watch it. */
	ASSERT_EQ(make_queue(q2), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, q2[1], 1), 0);
}

TEST_F(mount_notify, bad_watch_fd)
{
	int p[2], fd;

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, -1, 0), -1);
	ASSERT_EQ(errno, EBADF);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, 1000, 0), -1);
	ASSERT_EQ(errno, EBADF);

	/* Open fds that are not watch queues: EINVAL. */
	ASSERT_EQ(pipe(p), 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, p[1], 0), -1);
	ASSERT_EQ(errno, EINVAL);
	fd = open("/dev/null", O_RDONLY);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, fd, 0), -1);
	ASSERT_EQ(errno, EINVAL);
}

TEST_F(mount_notify, bad_at_flags)
{
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, AT_REMOVEDIR, self->q[1], 0), -1);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, AT_RECURSIVE, self->q[1], 0), -1);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0x80000000U, self->q[1], 0), -1);
	ASSERT_EQ(errno, EINVAL);
	/* The three allowed flags are accepted together. */
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE,
			      AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW,
			      self->q[1], 0), 0);
}

TEST_F(mount_notify, bad_watch_id)
{
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 256), -1);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], -2), -1);
	ASSERT_EQ(errno, EINVAL);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 255), 0);
}

TEST_F(mount_notify, missing_path_is_enoent)
{
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/nonexistent", 0, self->q[1], 0), -1);
	ASSERT_EQ(errno, ENOENT);
	ASSERT_EQ(watch_mount(AT_FDCWD, "", 0, self->q[1], 0), -1);
	ASSERT_EQ(errno, ENOENT);
}

TEST_F(mount_notify, empty_path_watches_fd_mount)
{
	struct rec r[MAX_RECS];
	uint64_t a;
	int fd;

	fd = open(BASE, O_PATH);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(watch_mount(fd, "", AT_EMPTY_PATH, self->q[1], 0x44), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 0x44, 0,
			 self->base_id, a, self->base_id);
	close(fd);
}

TEST_F(mount_notify, no_search_permission_is_eacces)
{
	pid_t pid;
	int status;

	ASSERT_EQ(mkdir(BASE "/a/locked", 0755), 0);
	ASSERT_EQ(chmod(BASE "/a", 0700), 0);	/* root-owned, no search for others */

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		int ret;

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(2);
		ret = watch_mount(AT_FDCWD, BASE "/a/locked", 0, self->q[1], 0);
		_exit(ret == -1 && errno == EACCES ? 0 : 1);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
}

/* A mount in another (anonymous) mount namespace is refused with EINVAL. */
TEST_F(mount_notify, mount_outside_namespace_is_einval)
{
	int fd;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	fd = syscall(__NR_open_tree, AT_FDCWD, BASE "/a",
		     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(watch_mount(fd, "", AT_EMPTY_PATH, self->q[1], 0), -1);
	ASSERT_EQ(errno, EINVAL);
	close(fd);
}

/* Closing the queue drops its watches; later events are harmless. */
TEST_F(mount_notify, close_queue_then_events)
{
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 1), 0);
	close(self->q[0]);
	close(self->q[1]);
	self->q[0] = -1;
	self->q[1] = -1;
	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	ASSERT_EQ(sys_umount2(BASE "/a", 0), 0);
	ASSERT_EQ(sys_umount2(BASE, 0), 0);
}

/*
 * Run as LIMIT_UID with RLIMIT_NOFILE at 10: through the queue *@arg, watch
 * BASE/m0.. until refused: exactly 10 watches, then EAGAIN.  Watches still
 * waiting for their RCU grace period count until they are freed, so wait for
 * them, but never let an 11th in.  Returns 0, or 1 after saying what went
 * wrong.
 */
static int watch_to_the_limit(void *arg)
{
	int fd = *(int *)arg;
	char path[64];
	int i, ok = 0, err = 0;

	for (i = 0; i < 20 && !err; i++) {
		int tries = 0;

		snprintf(path, sizeof(path), BASE "/m%d", i);
		while (watch_mount(AT_FDCWD, path, 0, fd, 1) != 0) {
			int e = errno;

			if (e != EAGAIN || ok == 10 || ++tries == 250) {
				err = e;
				break;
			}
			usleep(20000);
		}
		if (!err)
			ok++;
	}
	if (err != EAGAIN || ok != 10) {
		fprintf(stderr, "uid %u: %d watches, then %s (want 10, then EAGAIN)\n",
			LIMIT_UID, ok, strerror(err));
		return 1;
	}
	return 0;
}

/*
 * Watches count against the user's limit (RLIMIT_NOFILE) and are given back
 * when their queue goes.  The watches are made by a user of their own, so
 * that what other programs hold as root at the same time does not count.
 */
TEST_F(mount_notify, per_user_watch_limit)
{
	char path[64];
	int i;

	for (i = 0; i < 20; i++) {
		snprintf(path, sizeof(path), BASE "/m%d", i);
		ASSERT_EQ(mkdir(path, 0755), 0);
		ASSERT_EQ(tmpfs_at(path, 0), 0);
	}
	ASSERT_EQ(run_as_user(LIMIT_UID, 10, watch_to_the_limit, &self->q[1]), 0);

	/* Closing the queue gives the watches back (freed after RCU). */
	close(self->q[0]);
	close(self->q[1]);
	ASSERT_EQ(make_queue(self->q), 0);
	ASSERT_EQ(run_as_user(LIMIT_UID, 10, watch_to_the_limit, &self->q[1]), 0);
}

/* Queues being closed while another thread generates events (teardown race). */
struct churn {
	int stop;		/* __atomic_*() only */
	int errors;
};

static void *mount_churn(void *arg)
{
	struct churn *c = arg;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		if (bind_at(BASE "/a") || sys_umount2(BASE "/a", 0))
			c->errors++;
	}
	return NULL;
}

TEST_F_TIMEOUT(mount_notify, close_queues_while_posting, 300)
{
	struct churn c = { 0 };
	pthread_t th;
	int i, q[2];

	ASSERT_EQ(pthread_create(&th, NULL, mount_churn, &c), 0);
	for (i = 0; i < (int)CYCLES / 5; i++) {	/* 2,000 queues */
		ASSERT_EQ(make_queue(q), 0);
		ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, q[1], i & 0xff), 0);
		if (i & 1)
			ASSERT_EQ(watch_mount(AT_FDCWD, "/tmp", 0, q[1], 1), 0);
		close(q[0]);
		close(q[1]);
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(c.errors, 0);
}

/*
 * Check every record in @buf: a mount record is 40 bytes and a removal 16,
 * and both carry @wid.  Returns the number of bad records.
 */
static int bad_records(const unsigned char *buf, ssize_t len, unsigned int wid)
{
	ssize_t off = 0;
	int bad = 0;

	while (off < len) {
		const struct watch_notification *w = (const void *)(buf + off);
		unsigned int l = w->info & WATCH_INFO_LENGTH;

		if (l < sizeof(*w) || off + l > len)
			return bad + 1;
		if (w->type == WATCH_TYPE_MOUNT_NOTIFY)
			bad += l != REC_LEN || (w->info & WATCH_INFO_ID) >> 8 != wid;
		else if (w->type == WATCH_TYPE_META &&
			 w->subtype == WATCH_META_REMOVAL_NOTIFICATION)
			bad += l != sizeof(struct watch_notification_removal) ||
			       (w->info & WATCH_INFO_ID) >> 8 != wid;
		off += l;
	}
	return bad;
}

struct dying_watches {
	int *stop;		/* __atomic_*() only */
	unsigned int first_id;
	unsigned long target;	/* cycles to make */
	unsigned long cycles, records;
	int errors, bad;
	int done;		/* __atomic_*() only */
};

/* Set a watch, let records come, remove it, drain; over and over. */
static void *dying_watches(void *arg)
{
	struct dying_watches *d = arg;
	unsigned char buf[4096];
	unsigned int wid = d->first_id;

	while (!__atomic_load_n(d->stop, __ATOMIC_RELAXED) &&
	       d->cycles < d->target) {
		ssize_t len;
		int q[2];

		if (make_queue(q)) {
			d->errors++;
			break;
		}
		if (watch_mount(AT_FDCWD, BASE, 0, q[1], wid))
			d->errors++;
		sched_yield();
		if (watch_mount(AT_FDCWD, BASE, 0, q[1], -1))
			d->errors++;
		while ((len = read(q[0], buf, sizeof(buf))) > 0) {
			d->bad += bad_records(buf, len, wid);
			d->records += len / REC_LEN;
		}
		close(q[0]);
		close(q[1]);
		d->cycles++;
		wid = wid % 200 + 1;	/* never 0: the ID of a dying watch's rcu_head */
	}
	__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Posters walk a watch list under RCU while watches are removed from it.  A
 * watch's info_id used to share its storage with the rcu_head, so a poster
 * that reached a watch after call_rcu() put a pointer's low bits in the
 * record's ID and length (an out-of-bounds copy from the stack under KASAN).
 * Every record must have its exact length and the ID of its watch.  The two
 * removers make CYCLES watches between them, or as many as they can in 20 s.
 */
TEST_F_TIMEOUT(mount_notify, records_keep_length_and_id_while_watches_die, 300)
{
	struct dying_watches d[2];
	struct churn c = { 0 };
	pthread_t churn, th[2];
	unsigned long cycles = 0;
	int i, q[2][40];
	time_t end;

	/* Long lists: posters spend longer among the watches being removed. */
	for (i = 0; i < 40; i++) {
		int p[2];

		ASSERT_EQ(make_queue(p), 0);
		q[0][i] = p[0];
		q[1][i] = p[1];
		ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, p[1], 201 + i % 50), 0);
	}
	for (i = 0; i < 2; i++) {
		d[i] = (struct dying_watches){ .stop = &c.stop,
					       .first_id = 1 + i * 100,
					       .target = CYCLES / 2 };
		ASSERT_EQ(pthread_create(&th[i], NULL, dying_watches, &d[i]), 0);
	}
	ASSERT_EQ(pthread_create(&churn, NULL, mount_churn, &c), 0);
	end = time(NULL) + 20;
	while (time(NULL) < end &&
	       !(__atomic_load_n(&d[0].done, __ATOMIC_ACQUIRE) &&
		 __atomic_load_n(&d[1].done, __ATOMIC_ACQUIRE))) {
		unsigned char buf[4096];
		ssize_t len;

		for (i = 0; i < 40; i++)
			while ((len = read(q[0][i], buf, sizeof(buf))) > 0)
				EXPECT_EQ(bad_records(buf, len, 201 + i % 50), 0);
		usleep(10000);
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
	ASSERT_EQ(pthread_join(churn, NULL), 0);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(pthread_join(th[i], NULL), 0);
		EXPECT_EQ(d[i].errors, 0);
		EXPECT_EQ(d[i].bad, 0);
		cycles += d[i].cycles;
	}
	EXPECT_EQ(c.errors, 0);
	/* The race needs both sides to have run a lot. */
	EXPECT_GT(cycles, 1000UL);
	TH_LOG("%lu watches set and removed, %lu + %lu records checked",
	       cycles, d[0].records, d[1].records);
	for (i = 0; i < 40; i++) {
		close(q[0][i]);
		close(q[1][i]);
	}
}

#ifndef MOVE_MOUNT_BENEATH
#define MOVE_MOUNT_BENEATH 0x00000200
#endif

/*
 * move_mount(MOVE_MOUNT_BENEATH) attaches a new mount where the top one was and
 * puts the top one on the new one: the new mount must be announced before the
 * move that names it as the top one's new parent.
 */
TEST_F(mount_notify, beneath_announces_the_new_parent_before_the_move)
{
	struct rec r[MAX_RECS];
	uint64_t top, fresh;
	int fd;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	top = mnt_id(BASE "/a");
	fd = syscall(__NR_open_tree, AT_FDCWD, BASE "/b",
		     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 9), 0);

	ASSERT_EQ(syscall(__NR_move_mount, fd, "", AT_FDCWD, BASE "/a",
			  MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_BENEATH), 0);
	close(fd);
	/* The old top is still what /a shows; the new mount is below it. */
	ASSERT_EQ(mnt_id(BASE "/a"), top);
	ASSERT_EQ(sys_umount2(BASE "/a", 0), 0);
	fresh = mnt_id(BASE "/a");
	ASSERT_NE(fresh, self->base_id);
	ASSERT_NE(fresh, top);

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 4);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 9, 0,
			 self->base_id, fresh, self->base_id);
	ASSERT_MOUNT_REC(&r[1], NOTIFY_MOUNT_MOVE_FROM, 9, 0,
			 self->base_id, top, self->base_id);
	ASSERT_MOUNT_REC(&r[2], NOTIFY_MOUNT_MOVE_TO, 9, NOTIFY_MOUNT_IN_SUBTREE,
			 fresh, top, self->base_id);
	/* umount of the top: it leaves the new mount. */
	ASSERT_MOUNT_REC(&r[3], NOTIFY_MOUNT_UNMOUNT, 9, NOTIFY_MOUNT_IN_SUBTREE,
			 fresh, top, self->base_id);
}

/* Removing a watch needs the path and the queue, not the namespace. */
TEST_F(mount_notify, remove_watch_from_another_namespace)
{
	struct rec r[MAX_RECS];
	int base, old_ns;

	base = open(BASE, O_RDONLY | O_DIRECTORY);
	ASSERT_GE(base, 0);
	/* Keeps the old namespace, and so the watched mount, alive. */
	old_ns = open("/proc/self/ns/mnt", O_RDONLY);
	ASSERT_GE(old_ns, 0);
	ASSERT_EQ(watch_mount(base, "", AT_EMPTY_PATH, self->q[1], 4), 0);
	ASSERT_EQ(unshare(CLONE_NEWNS), 0);
	/* Still the old namespace's mount, through the fd from before. */
	ASSERT_EQ(watch_mount(base, "", AT_EMPTY_PATH, self->q[1], -1), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	assert_removal(_metadata, &r[0], 4, self->base_id);
	/* Setting one there needs CAP_SYS_ADMIN over its owner: we have it. */
	ASSERT_EQ(watch_mount(base, "", AT_EMPTY_PATH, self->q[1], 5), 0);
	close(base);
	close(old_ns);
}

/* A watched mount that is moved tells its own watch where it went. */
TEST_F(mount_notify, move_of_watched_mount_reaches_its_own_watch)
{
	struct rec r[MAX_RECS];
	uint64_t a, b, c;

	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	ASSERT_EQ(tmpfs_at(BASE "/b", 0), 0);
	ASSERT_EQ(mkdir(BASE "/a/x", 0755), 0);
	ASSERT_EQ(mkdir(BASE "/b/y", 0755), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a/x", 0), 0);
	a = mnt_id(BASE "/a");
	b = mnt_id(BASE "/b");
	c = mnt_id(BASE "/a/x");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a/x", 0, self->q[1], 5), 0);

	ASSERT_EQ(sys_mount(BASE "/a/x", BASE "/b/y", NULL, MS_MOVE, NULL), 0);

	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 2);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_MOVE_FROM, 5, 0, a, c, c);
	ASSERT_MOUNT_REC(&r[1], NOTIFY_MOUNT_MOVE_TO, 5, 0, b, c, c);

	/* Still watched where it is now: a mount below it is reported. */
	ASSERT_EQ(mkdir(BASE "/b/y/z", 0755), 0);
	ASSERT_EQ(tmpfs_at(BASE "/b/y/z", 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 5, 0, c,
			 mnt_id(BASE "/b/y/z"), c);
}

/*
 * A watcher chrooted into a plain directory of a mount sets its watch on that
 * whole mount ("/" resolves to it) but hears only of what its own mountinfo
 * shows: mounts below its root.  Not of mounts beside the jail, nor of the
 * attributes of the mount that holds the jail.  The watch keeps the root it
 * was set from after the watcher has gone.
 */
TEST_F(mount_notify, chroot_watcher_hears_only_of_mounts_below_its_root)
{
	struct rec r[MAX_RECS];
	int status, outside;
	uint64_t in;
	pid_t pid;

	ASSERT_EQ(mkdir(BASE "/jail", 0755), 0);
	ASSERT_EQ(mkdir(BASE "/jail/in", 0755), 0);
	outside = open(BASE "/b", O_RDONLY | O_DIRECTORY);
	ASSERT_GE(outside, 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (chroot(BASE "/jail") || chdir("/"))
			_exit(10);
		/* A path outside the root, through an fd from before the chroot. */
		if (watch_mount(outside, "", AT_EMPTY_PATH, self->q[1], 6) != -1 ||
		    errno != EPERM)
			_exit(11);
		_exit(watch_mount(AT_FDCWD, "/", 0, self->q[1], 7) ? 12 : 0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(WEXITSTATUS(status), 0);
	close(outside);

	/* Beside the jail: not visible from inside it. */
	ASSERT_EQ(tmpfs_at(BASE "/b", 0), 0);
	ASSERT_EQ(sys_mount_setattr(BASE "/b", MOUNT_ATTR_NOSUID, 0), 0);
	ASSERT_EQ(sys_umount2(BASE "/b", 0), 0);
	/* The mount that holds the jail is above its root. */
	ASSERT_EQ(sys_mount_setattr(BASE, MOUNT_ATTR_NOSUID, 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 0);

	/* Below the root: visible. */
	ASSERT_EQ(tmpfs_at(BASE "/jail/in", 0), 0);
	in = mnt_id(BASE "/jail/in");
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 7, 0,
			 self->base_id, in, self->base_id);
	ASSERT_EQ(sys_mount_setattr(BASE "/jail/in", MOUNT_ATTR_NOEXEC, 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_SETATTR, 7, NOTIFY_MOUNT_IN_SUBTREE,
			 in, in, self->base_id);
	ASSERT_EQ(sys_umount2(BASE "/jail/in", 0), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_UNMOUNT, 7, 0,
			 self->base_id, in, self->base_id);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t len = (ssize_t)strlen(text);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, len) == len;
	close(fd);
	return ok ? 0 : -1;
}

/*
 * An unprivileged user in a user and mount namespace of its own may watch the
 * mounts of that namespace (fanotify's mount marks need CAP_SYS_ADMIN), but
 * not those of a namespace it has no CAP_SYS_ADMIN over.
 */
TEST_F(mount_notify, unprivileged_user_namespace_watches_its_own_mounts)
{
	int status, parent_ns_dir;
	pid_t pid;

	parent_ns_dir = open(BASE "/a", O_RDONLY | O_DIRECTORY);
	ASSERT_GE(parent_ns_dir, 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		struct rec r[MAX_RECS];
		struct mount_notification *m;
		uint64_t base, a;
		int q[2];

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(10);
		/* Changing ids made /proc/self root's; it must be ours for uid_map. */
		if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
			_exit(9);
		if (make_queue(q))
			_exit(11);
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS))
			_exit(13);
		if (write_file("/proc/self/setgroups", "deny") ||
		    write_file("/proc/self/uid_map", "0 65534 1") ||
		    write_file("/proc/self/gid_map", "0 65534 1"))
			_exit(14);
		/* A mount of the parent's namespace: not without privilege there. */
		if (watch_mount(parent_ns_dir, "", AT_EMPTY_PATH, q[1], 1) != -1 ||
		    errno != EPERM)
			_exit(12);
		base = mnt_id(BASE);
		if (!base || watch_mount(AT_FDCWD, BASE, 0, q[1], 2))
			_exit(15);
		if (tmpfs_at(BASE "/a", 0))
			_exit(16);
		a = mnt_id(BASE "/a");
		if (read_recs(q[0], r, MAX_RECS) != 1)
			_exit(17);
		m = mn(&r[0]);
		if (r[0].len != REC_LEN ||
		    m->watch.subtype != NOTIFY_MOUNT_NEW_MOUNT ||
		    (m->watch.info & WATCH_INFO_ID) >> 8 != 2 ||
		    m->triggered_on != base || m->auxiliary_mount != a ||
		    m->watched_mount != base)
			_exit(18);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(WEXITSTATUS(status), 0);
	close(parent_ns_dir);
}

/* Automounts are flagged, bind mounts of them are not (tracefs in debugfs). */
TEST_F(mount_notify, automount_is_submount)
{
	struct rec r[MAX_RECS];
	struct stat st;
	uint64_t d, t;

	if (sys_mount("debugfs", BASE "/a", "debugfs", 0, NULL))
		SKIP(return, "no debugfs");
	if (lstat(BASE "/a/tracing", &st))
		SKIP(return, "no tracefs automount point in debugfs");
	d = mnt_id(BASE "/a");
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE "/a", 0, self->q[1], 1), 0);
	ASSERT_EQ(stat(BASE "/a/tracing/.", &st), 0);
	t = mnt_id(BASE "/a/tracing/.");
	ASSERT_NE(t, d);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 1,
			 NOTIFY_MOUNT_IS_SUBMOUNT, d, t, d);

	/*
	 * A bind mount of the automount is made by the user, not the kernel,
	 * although clone_mnt() copies the automount's MNT_SHRINKABLE.
	 */
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 2), 0);
	ASSERT_EQ(sys_mount(BASE "/a/tracing", BASE "/b", NULL, MS_BIND, NULL), 0);
	ASSERT_EQ(read_recs(self->q[0], r, MAX_RECS), 1);
	ASSERT_MOUNT_REC(&r[0], NOTIFY_MOUNT_NEW_MOUNT, 2, 0, self->base_id,
			 mnt_id(BASE "/b"), self->base_id);
}

/*
 * 10,000 mount/umount cycles while a thread drains the queue.  The pipe
 * flags a loss with a LOSS record after the last record delivered before it,
 * so every cycle's NEW_MOUNT/UNMOUNT pair is either received, in order, or
 * covered by a LOSS record between the surrounding received records.
 */
/*
 * The stress consumers stop after every 1000 records until the producer has
 * made PAUSE_CYCLES more cycles (600 records): more than a 256-note pipe or a
 * one-page ring holds, so the queue overflows however fast the kernel is.
 */
#define PAUSE_CYCLES 300

/*
 * The stress producer: CYCLES bind mounts and umounts of BASE/a, the mount's ID in
 * expect[], its progress in *produced; *done set at the end.
 */
static void produce_cycles(struct __test_metadata *_metadata, uint64_t *expect,
			   unsigned int *produced, int *done)
{
	unsigned int i;

	for (i = 0; i < CYCLES; i++) {
		ASSERT_EQ(bind_at(BASE "/a"), 0);
		expect[i] = mnt_id(BASE "/a");
		ASSERT_NE(expect[i], 0ULL);
		ASSERT_EQ(sys_umount2(BASE "/a", 0), 0);
		__atomic_store_n(produced, i + 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(done, 1, __ATOMIC_RELEASE);
}

/* Wait until *produced has advanced by PAUSE_CYCLES, or the producer is done. */
static void wait_for_producer(const unsigned int *produced, const int *done)
{
	unsigned int start = __atomic_load_n(produced, __ATOMIC_ACQUIRE);

	while (__atomic_load_n(produced, __ATOMIC_ACQUIRE) - start < PAUSE_CYCLES &&
	       !__atomic_load_n(done, __ATOMIC_ACQUIRE))
		usleep(1000);
}

struct consumer {
	int fd;
	int done;		/* __atomic_*() only */
	unsigned int produced;	/* cycles made; __atomic_*() only */
	/* Received stream: aux id and subtype, or 0 / 0xff for LOSS. */
	uint64_t *ids;
	unsigned char *sub;
	unsigned int n, max;
	int bad;
};

static void *consume(void *arg)
{
	struct consumer *c = arg;
	unsigned char buf[4096];

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t len, off = 0;
		int done = __atomic_load_n(&c->done, __ATOMIC_ACQUIRE);

		len = read(c->fd, buf, sizeof(buf));
		if (len < 0) {
			if (errno != EAGAIN) {
				c->bad = 1;
				return NULL;
			}
			if (done)
				return NULL;
			poll(&pfd, 1, 10);
			continue;
		}
		while (off < len) {
			struct watch_notification *w = (void *)(buf + off);
			unsigned int l = w->info & WATCH_INFO_LENGTH;

			if (l < 8 || off + l > len || c->n >= c->max) {
				c->bad = 2;
				return NULL;
			}
			if (w->type == WATCH_TYPE_META &&
			    w->subtype == WATCH_META_LOSS_NOTIFICATION) {
				c->ids[c->n] = 0;
				c->sub[c->n++] = 0xff;
			} else if (w->type == WATCH_TYPE_MOUNT_NOTIFY && l == REC_LEN) {
				struct mount_notification *m = (void *)w;

				c->ids[c->n] = m->auxiliary_mount;
				c->sub[c->n++] = w->subtype;
				/* A consumer that falls behind now and then. */
				if (c->n % 1000 == 0)
					wait_for_producer(&c->produced, &c->done);
			} else {
				c->bad = 3;
				return NULL;
			}
			off += l;
		}
	}
}

/*
 * Walk the expected stream (NEW(i), UNMOUNT(i) for each cycle i) against the
 * received one.  Every expected record is either received, in order, or
 * missing with a LOSS record between the received records around the gap.
 */
static void check_stream(struct __test_metadata *_metadata, struct consumer *c,
			 const uint64_t *expect, unsigned int cycles,
			 unsigned int *nr_lost)
{
	unsigned int i, j = 0, received = 0, losses = 0, lost_pairs = 0;
	bool loss_seen = false;
	int prev = -1;

	for (i = 0; i < c->n; i++) {
		int idx;

		if (c->sub[i] == 0xff) {
			losses++;
			loss_seen = true;
			continue;
		}
		/* Find this record in the expected stream. */
		while (j < cycles && expect[j] != c->ids[i])
			j++;
		ASSERT_LT(j, cycles) {
			TH_LOG("record %u: unexpected mount id %llu", i,
			       (unsigned long long)c->ids[i]);
		}
		ASSERT_TRUE(c->sub[i] == NOTIFY_MOUNT_NEW_MOUNT ||
			    c->sub[i] == NOTIFY_MOUNT_UNMOUNT);
		idx = 2 * j + (c->sub[i] == NOTIFY_MOUNT_UNMOUNT);
		ASSERT_GT(idx, prev);
		if (idx != prev + 1) {
			ASSERT_TRUE(loss_seen) {
				TH_LOG("records %d..%d missing without a LOSS record",
				       prev + 1, idx - 1);
			}
		}
		lost_pairs += idx - prev - 1;
		prev = idx;
		loss_seen = false;
		received++;
	}
	if (prev != (int)(2 * cycles - 1)) {
		ASSERT_TRUE(loss_seen) {
			TH_LOG("tail records %d.. missing without a LOSS record",
			       prev + 1);
		}
	}
	lost_pairs += 2 * cycles - 1 - prev;
	/* A pipe flags losses but can't count them: the ring test below does. */
	TH_LOG("%u records received, %u missing, %u LOSS records",
	       received, lost_pairs, losses);
	if (nr_lost)
		*nr_lost = lost_pairs;
}

TEST_F_TIMEOUT(mount_notify, stress_mount_umount_loss_accounting, 600)
{
	struct consumer c = { .fd = self->q[0] };
	uint64_t *expect;
	pthread_t th;
	unsigned int lost = 0;

	expect = calloc(CYCLES, sizeof(*expect));
	c.max = 2 * CYCLES + CYCLES;
	c.ids = calloc(c.max, sizeof(*c.ids));
	c.sub = calloc(c.max, 1);
	ASSERT_NE(expect, NULL);
	ASSERT_NE(c.ids, NULL);
	ASSERT_NE(c.sub, NULL);

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 1), 0);
	ASSERT_EQ(pthread_create(&th, NULL, consume, &c), 0);
	produce_cycles(_metadata, expect, &c.produced, &c.done);
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(c.bad, 0);

	check_stream(_metadata, &c, expect, CYCLES, &lost);
	EXPECT_GT(lost, 0U);	/* the slow consumer made the pipe overflow */
	free(expect);
	free(c.ids);
	free(c.sub);
}

/*
 * Overflow the pipe (256 notes) with nobody reading: the records that fit are
 * delivered in order and the rest are flagged with a LOSS record.  300 cycles
 * post 600 records.
 */
#define OVERFLOW_CYCLES 300

TEST_F(mount_notify, overflow_is_flagged_with_loss_record)
{
	struct consumer c = { .fd = self->q[0], .done = 1 };
	uint64_t expect[OVERFLOW_CYCLES];
	unsigned int i, lost = 0;

	c.max = 3 * OVERFLOW_CYCLES;
	c.ids = calloc(c.max, sizeof(*c.ids));
	c.sub = calloc(c.max, 1);
	ASSERT_NE(c.ids, NULL);
	ASSERT_NE(c.sub, NULL);
	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, self->q[1], 1), 0);
	for (i = 0; i < OVERFLOW_CYCLES; i++) {
		ASSERT_EQ(bind_at(BASE "/a"), 0);
		expect[i] = mnt_id(BASE "/a");
		ASSERT_EQ(sys_umount2(BASE "/a", 0), 0);
	}
	consume(&c);
	ASSERT_EQ(c.bad, 0);
	check_stream(_metadata, &c, expect, OVERFLOW_CYCLES, &lost);
	ASSERT_GT(lost, 0U);
	ASSERT_LE(c.n, 257U);	/* at most 256 records + 1 LOSS */
	free(c.ids);
	free(c.sub);
}

/*
 * The same 10,000 cycles into a small ring, drained by a thread: a ring counts
 * what it drops.  Each gap in the stream must be exactly the count of the loss
 * record in front of the next record, and what was dropped after the last
 * record is what IOC_WATCH_QUEUE_TAKE_LOSS returns, at the ring's head.
 */
struct ring_consumer {
	int fd;
	int done;		/* __atomic_*() only */
	unsigned int produced;	/* cycles made; __atomic_*() only */
	unsigned char *ring;
	struct watch_queue_ring_meta *meta;
	uint32_t mask;
	uint64_t *ids;
	unsigned char *sub;
	uint32_t *lost_before;	/* loss counted just before each record */
	uint32_t pending;	/* loss counted after the last record */
	unsigned int n, max;
	int bad;
};

static void *ring_consume(void *arg)
{
	struct ring_consumer *c = arg;
	uint32_t tail = c->meta->tail;

	for (;;) {
		int done = __atomic_load_n(&c->done, __ATOMIC_ACQUIRE);
		uint32_t head = __atomic_load_n(&c->meta->head, __ATOMIC_ACQUIRE);

		while (tail != head) {
			const struct watch_notification *w =
				(const void *)(c->ring + (tail & c->mask) * 8);
			unsigned int slots = w->info & WATCH_INFO_NR_SLOTS;

			if (!slots || c->n >= c->max) {
				c->bad = 1;
				return NULL;
			}
			if (w->type == WATCH_TYPE_META &&
			    w->subtype == WATCH_META_LOSS_NOTIFICATION) {
				c->pending += ((const struct watch_notification_loss *)w)->nr_lost;
			} else if (w->type == WATCH_TYPE_MOUNT_NOTIFY) {
				const struct mount_notification *m = (const void *)w;

				c->ids[c->n] = m->auxiliary_mount;
				c->sub[c->n] = w->subtype;
				c->lost_before[c->n++] = c->pending;
				c->pending = 0;
				/* A consumer that falls behind now and then. */
				if (c->n % 1000 == 0)
					wait_for_producer(&c->produced, &c->done);
			}
			tail += slots;
			__atomic_store_n(&c->meta->tail, tail, __ATOMIC_RELEASE);
		}
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&c->meta->head, __ATOMIC_ACQUIRE) != tail)
			continue;
		if (done)
			return NULL;
		poll(&(struct pollfd){ .fd = c->fd, .events = POLLIN }, 1, 10);
	}
}

TEST_F_TIMEOUT(mount_notify, stress_mount_umount_exact_loss_in_a_ring, 600)
{
	struct ring_consumer c = { 0 };
	struct watch_queue_loss tail_loss;
	unsigned int i, j, received = 0, dropped = 0;
	size_t len = sysconf(_SC_PAGESIZE);
	int prev = -1;
	uint64_t *expect;
	pthread_t th;

	c.fd = open("/dev/watch_queue", O_RDWR | O_CLOEXEC);
	if (c.fd < 0)
		SKIP(return, "no /dev/watch_queue (ring series not applied)");
	ASSERT_EQ(ioctl(c.fd, IOC_WATCH_QUEUE_NR_PAGES, 1), 0);
	c.ring = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, c.fd, 0);
	ASSERT_NE(c.ring, MAP_FAILED);
	c.meta = (struct watch_queue_ring_meta *)c.ring;
	c.mask = len / 8 - 1;
	c.max = 2 * CYCLES;
	expect = calloc(CYCLES, sizeof(*expect));
	c.ids = calloc(c.max, sizeof(*c.ids));
	c.sub = calloc(c.max, 1);
	c.lost_before = calloc(c.max, sizeof(*c.lost_before));
	ASSERT_TRUE(expect && c.ids && c.sub && c.lost_before);

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, c.fd, 1), 0);
	ASSERT_EQ(pthread_create(&th, NULL, ring_consume, &c), 0);
	produce_cycles(_metadata, expect, &c.produced, &c.done);
	ASSERT_EQ(pthread_join(th, NULL), 0);
	ASSERT_EQ(c.bad, 0);
	ASSERT_EQ(ioctl(c.fd, IOC_WATCH_QUEUE_TAKE_LOSS, &tail_loss), 0);
	ASSERT_EQ(tail_loss.head, c.meta->head);

	/* Record k of the stream is cycle k / 2's NEW_MOUNT (even) or UNMOUNT. */
	for (i = 0, j = 0; i < c.n; i++) {
		int idx;

		while (j < CYCLES && expect[j] != c.ids[i])
			j++;
		ASSERT_LT(j, (unsigned int)CYCLES);
		ASSERT_TRUE(c.sub[i] == NOTIFY_MOUNT_NEW_MOUNT ||
			    c.sub[i] == NOTIFY_MOUNT_UNMOUNT);
		idx = 2 * j + (c.sub[i] == NOTIFY_MOUNT_UNMOUNT);
		ASSERT_GT(idx, prev);
		ASSERT_EQ((unsigned int)(idx - prev - 1), c.lost_before[i]) {
			TH_LOG("record %u: %d missing before it, the loss record says %u",
			       i, idx - prev - 1, c.lost_before[i]);
		}
		dropped += c.lost_before[i];
		prev = idx;
		received++;
	}
	ASSERT_EQ((unsigned int)(2 * CYCLES - 1 - prev), c.pending + tail_loss.nr_lost);
	dropped += c.pending + tail_loss.nr_lost;
	EXPECT_GT(dropped, 0U);	/* the ring must have overflowed to test anything */
	EXPECT_GT(received, 0U);
	TH_LOG("%u records received, %u dropped and counted exactly", received, dropped);
	free(expect);
	free(c.ids);
	free(c.sub);
	free(c.lost_before);
	munmap(c.ring, len);
	close(c.fd);
}

/* The same NEW_MOUNT through a /dev/watch_queue ring, if the kernel has one. */
TEST_F(mount_notify, ring_new_mount)
{
	struct watch_notification *slots;
	struct mount_notification *m;
	long psz = sysconf(_SC_PAGESIZE);
	uint32_t *head;
	uint64_t a;
	void *map;
	int fd;

	fd = open("/dev/watch_queue", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP(return, "no /dev/watch_queue (ring series not applied)");
	ASSERT_EQ(ioctl(fd, IOC_WATCH_QUEUE_NR_PAGES, 1), 0);
	map = mmap(NULL, psz, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(map, MAP_FAILED);
	slots = map;
	head = (uint32_t *)((char *)map + 8);

	ASSERT_EQ(watch_mount(AT_FDCWD, BASE, 0, fd, 0x12), 0);
	ASSERT_EQ(tmpfs_at(BASE "/a", 0), 0);
	a = mnt_id(BASE "/a");

	ASSERT_EQ(__atomic_load_n(head, __ATOMIC_ACQUIRE), 2 + (REC_LEN + 7) / 8);
	m = (struct mount_notification *)&slots[2];
	ASSERT_EQ((unsigned int)m->watch.type, (unsigned int)WATCH_TYPE_MOUNT_NOTIFY);
	ASSERT_EQ((unsigned int)m->watch.subtype, (unsigned int)NOTIFY_MOUNT_NEW_MOUNT);
	ASSERT_EQ(m->watch.info & 0x3f, (REC_LEN + 7) / 8);
	ASSERT_EQ((m->watch.info & WATCH_INFO_ID) >> 8, 0x12U);
	ASSERT_EQ(m->watch.info & WATCH_INFO_TYPE_INFO, 0U);
	ASSERT_EQ(m->triggered_on, self->base_id);
	ASSERT_EQ(m->auxiliary_mount, a);
	ASSERT_EQ(m->watched_mount, self->base_id);
	ASSERT_EQ(m->mnt_attr, statmount_attr(a));
	munmap(map, psz);
	close(fd);
}

TEST_HARNESS_MAIN
