// SPDX-License-Identifier: GPL-2.0
/*
 * Pipe-users regression suite: what Linux already does with
 * O_NOTIFICATION_PIPE notification pipes and KEYCTL_WATCH_KEY key
 * notifications.  The mmap()able ring series must keep all of it.
 *
 * Every test asserts exact record contents (type, subtype, length, watch id,
 * key_id, aux) or an exact errno, so it fails if the behaviour changes.
 *
 * Do not include <fcntl.h> here: <linux/watch_queue.h> pulls in
 * <linux/fcntl.h> and the two redefine struct flock.
 */
#include <sys/wait.h>

#include "wq_util.h"
#include "kselftest_harness.h"

#define NOTE_SIZE	128			/* WATCH_QUEUE_NOTE_SIZE */
#define KEY_NOTE_LEN	((int)sizeof(struct key_notification))
#define REMOVAL_LEN	((int)sizeof(struct watch_notification_removal))
#define META_LEN	((int)sizeof(struct watch_notification))
#define GC_DELAY_PATH	"/proc/sys/kernel/keys/gc_delay"
#define GC_WAIT_MS	10000

static key_serial_t add_user_key(const char *desc, key_serial_t ring)
{
	return add_key("user", desc, "payload", 7, ring);
}

/* A decoded record header; bit-fields copied out so the harness can compare them. */
struct rec {
	int type, subtype, len, watch_id, type_info;
	const unsigned char *p;
};

static struct rec decode(const unsigned char *p)
{
	struct watch_notification n;
	struct rec r;

	memcpy(&n, p, sizeof(n));
	r.type = n.type;
	r.subtype = n.subtype;
	r.len = n.info & WATCH_INFO_LENGTH;
	r.watch_id = (n.info & WATCH_INFO_ID) >> WATCH_INFO_ID__SHIFT;
	r.type_info = (n.info & WATCH_INFO_TYPE_INFO) >> WATCH_INFO_TYPE_INFO__SHIFT;
	r.p = p;
	return r;
}

/* Assert the header fields every record of these tests has. */
static void check_header(struct __test_metadata *_metadata, struct rec r, int type,
			 int subtype, int len, int watch_id)
{
	ASSERT_EQ(type, r.type);
	ASSERT_EQ(subtype, r.subtype);
	ASSERT_EQ(len, r.len);
	ASSERT_EQ(watch_id, r.watch_id);
	ASSERT_EQ(0, r.type_info);
}

/* Assert that @r is a key notification with exactly these contents. */
static void check_key_rec(struct __test_metadata *_metadata, struct rec r,
			  int subtype, key_serial_t key, uint32_t aux, int watch_id)
{
	struct key_notification kn;

	check_header(_metadata, r, WATCH_TYPE_KEY_NOTIFY, subtype, KEY_NOTE_LEN, watch_id);
	memcpy(&kn, r.p, sizeof(kn));
	ASSERT_EQ((uint32_t)key, kn.key_id);
	ASSERT_EQ(aux, kn.aux);
}

/* Assert that @r is a removal notification for @key's watch @watch_id. */
static void check_removal_rec(struct __test_metadata *_metadata, struct rec r,
			      key_serial_t key, int watch_id)
{
	struct watch_notification_removal rm;

	check_header(_metadata, r, WATCH_TYPE_META, WATCH_META_REMOVAL_NOTIFICATION, REMOVAL_LEN,
		     watch_id);
	memcpy(&rm, r.p, sizeof(rm));
	ASSERT_EQ((uint64_t)(uint32_t)key, rm.id);
}

static void check_loss_rec(struct __test_metadata *_metadata, struct rec r)
{
	ASSERT_EQ(WATCH_TYPE_META, r.type);
	ASSERT_EQ(WATCH_META_LOSS_NOTIFICATION, r.subtype);
	ASSERT_EQ(META_LEN, r.len);
	ASSERT_EQ(0, r.watch_id);
	ASSERT_EQ(0, r.type_info);
}

/*
 * Read everything queued right now (the fd is non-blocking) into @buf.
 * Records are posted synchronously by the keyctl that causes them, so no
 * waiting is needed for those.
 */
static size_t drain(struct __test_metadata *_metadata, int fd, unsigned char *buf,
		    size_t size)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n < 0) {
			ASSERT_EQ(EAGAIN, errno);
			return got;
		}
		ASSERT_GT(n, 0);
		got += n;
		ASSERT_LT(got, size);
	}
}

/* Split @len bytes into records; assert each is well formed. Returns count. */
static int split(struct __test_metadata *_metadata, const unsigned char *buf, size_t len,
		 struct rec *out, int max)
{
	size_t off = 0;
	int n = 0;

	while (off < len) {
		struct rec r;

		ASSERT_GE((ssize_t)(len - off), META_LEN);
		r = decode(buf + off);
		ASSERT_GE(r.len, META_LEN);
		ASSERT_LE(r.len, (ssize_t)(len - off));
		ASSERT_LT(n, max);
		out[n++] = r;
		off += r.len;
	}
	return n;
}

/* Exactly one record must be queued; return it (in @buf). */
static struct rec only_rec(struct __test_metadata *_metadata, int fd, unsigned char *buf,
			   size_t size)
{
	struct rec recs[8];
	size_t len = drain(_metadata, fd, buf, size);
	int n = split(_metadata, buf, len, recs, 8);

	if (n != 1)
		TH_LOG("expected exactly one record, read %zu bytes (%d records)", len, n);
	ASSERT_EQ(1, n);
	return recs[0];
}

static void expect_nothing(struct __test_metadata *_metadata, int fd)
{
	unsigned char b[256];

	ASSERT_EQ(-1, read(fd, b, sizeof(b)));
	ASSERT_EQ(EAGAIN, errno);
}

static void wait_readable(struct __test_metadata *_metadata, int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	ASSERT_EQ(1, poll(&pfd, 1, ms)) {
		TH_LOG("nothing arrived within %d ms", ms);
	}
}

/* A sized, non-blocking notification pipe; fds[0] reads, fds[1] is the write end. */
static int open_notify_pipe(struct __test_metadata *_metadata, int fds[2], int nr_notes)
{
	if (pipe2(fds, O_NOTIFICATION_PIPE | O_NONBLOCK) < 0) {
		if (errno == ENOPKG || errno == EINVAL)
			SKIP(return -1, "no notification pipes (CONFIG_WATCH_QUEUE=n?)");
		ASSERT_EQ(0, -errno);
	}
	if (nr_notes)
		ASSERT_EQ(0, ioctl(fds[0], IOC_WATCH_QUEUE_SET_SIZE, nr_notes));
	return 0;
}

static int read_gc_delay(void)
{
	char b[32] = "";
	FILE *f = fopen(GC_DELAY_PATH, "r");
	int v = -1;

	if (!f)
		return -1;
	if (fgets(b, sizeof(b), f))
		v = atoi(b);
	fclose(f);
	return v;
}

static int write_gc_delay(int v)
{
	FILE *f = fopen(GC_DELAY_PATH, "w");
	int ret;

	if (!f)
		return -1;
	ret = fprintf(f, "%d\n", v) < 0 ? -1 : 0;
	if (fclose(f))
		ret = -1;
	return ret;
}

FIXTURE(wq) {
	int fds[2];		/* notification pipe, 256 notes, O_NONBLOCK */
	key_serial_t ring;	/* keyring "pipe_keys_test" in a fresh session keyring */
	unsigned char buf[8192];
	int old_gc_delay;
};

FIXTURE_SETUP(wq)
{
	long session;

	self->fds[0] = -1;
	self->fds[1] = -1;
	self->old_gc_delay = -1;

	/* A fresh anonymous session keyring: no interference from the caller's. */
	session = kctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0);
	if (syscall_missing(session))
		SKIP(return, "keyctl(2) not available (CONFIG_KEYS=n)");
	ASSERT_GT(session, 0);

	if (open_notify_pipe(_metadata, self->fds, 256) < 0)
		return;

	self->ring = add_key("keyring", "pipe_keys_test", NULL, 0, KEY_SPEC_SESSION_KEYRING);
	ASSERT_GT(self->ring, 0);

	/* Probe KEYCTL_WATCH_KEY on a throwaway key. */
	do {
		key_serial_t probe = add_user_key("probe", self->ring);

		ASSERT_GT(probe, 0);
		if (watch_key(probe, self->fds[0], 0) < 0 && errno == EOPNOTSUPP)
			SKIP(return, "KEYCTL_WATCH_KEY unsupported (CONFIG_KEY_NOTIFICATIONS=n)");
		ASSERT_EQ(0, watch_key(probe, self->fds[0], -1)) {
			TH_LOG("removing the probe watch: %s", strerror(errno));
		}
		/* The probe's removal record; nothing else. */
		check_removal_rec(_metadata, only_rec(_metadata, self->fds[0], self->buf,
						      sizeof(self->buf)), probe, 0);
		ASSERT_EQ(0, kctl(KEYCTL_UNLINK, probe, self->ring, 0, 0));
	} while (0);
}

FIXTURE_TEARDOWN(wq)
{
	if (self->old_gc_delay >= 0)
		write_gc_delay(self->old_gc_delay);
	if (self->fds[0] >= 0)
		close(self->fds[0]);
	if (self->fds[1] >= 0)
		close(self->fds[1]);
}

/* Set gc_delay to 0 for the duration of the test (restored in teardown). */
static void fast_gc(struct __test_metadata *_metadata, struct _test_data_wq *self)
{
	int old = read_gc_delay();

	if (old < 0 || write_gc_delay(0) < 0)
		SKIP(return, "cannot set %s (needs root)", GC_DELAY_PATH);
	self->old_gc_delay = old;
}

/* Up to 17 type filters: one more than the kernel accepts. */
struct filter16 {
	struct watch_notification_filter f;
	struct watch_notification_type_filter t[17];
};

#define FD	(self->fds[0])

/* only_rec() and drain() on the fixture's queue, into self->buf. */
static struct rec only_rec_wq(struct __test_metadata *_metadata, struct _test_data_wq *self)
{
	return only_rec(_metadata, FD, self->buf, sizeof(self->buf));
}

static size_t drain_wq(struct __test_metadata *_metadata, struct _test_data_wq *self)
{
	return drain(_metadata, FD, self->buf, sizeof(self->buf));
}

/* A new user key "k" in the test keyring. */
static key_serial_t new_key(struct __test_metadata *_metadata, struct _test_data_wq *self)
{
	key_serial_t k = add_user_key("k", self->ring);

	ASSERT_GT(k, 0);
	return k;
}

/* Another queue, fds2, watching @k as watch 1: an update reaches it.  Closes it. */
static void second_queue_sees_update(struct __test_metadata *_metadata, int fds2[2],
				     key_serial_t k)
{
	unsigned char b2[256];

	ASSERT_EQ(0, key_update(k, "x"));
	check_key_rec(_metadata, only_rec(_metadata, fds2[0], b2, sizeof(b2)),
		      NOTIFY_KEY_UPDATED, k, 0, 1);
	close(fds2[0]);
	close(fds2[1]);
}

/*
 * A new user key in the test keyring, watched as @watch_id; keyctl(@cmd, key,
 * @a3, @a4) must post exactly one @subtype record.  Returns the key.
 */
static key_serial_t change_posts(struct __test_metadata *_metadata, struct _test_data_wq *self,
				 int watch_id, int cmd, unsigned long a3, unsigned long a4,
				 int subtype)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, watch_id));
	ASSERT_EQ(0, kctl(cmd, k, a3, a4, 0));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), subtype, k, 0, watch_id);
	return k;
}

/* ---------------------------------------------------------------------------
 * The key events, one record each.
 */

TEST_F(wq, update_posts_updated_with_key_id_and_zero_aux)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 7));
	ASSERT_EQ(0, key_update(k, "new payload"));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_UPDATED, k, 0, 7);
}

TEST_F(wq, add_key_over_existing_key_posts_updated_not_linked)
{
	key_serial_t k = add_user_key("k", self->ring), k2;

	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(self->ring, FD, 1));
	ASSERT_EQ(0, watch_key(k, FD, 2));
	k2 = add_key("user", "k", "other", 5, self->ring);
	ASSERT_EQ(k, k2);
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_UPDATED, k, 0, 2);
}

TEST_F(wq, add_key_into_watched_keyring_posts_linked_with_new_key_as_aux)
{
	key_serial_t k;

	ASSERT_EQ(0, watch_key(self->ring, FD, 0x2a));
	k = add_user_key("k", self->ring);
	ASSERT_GT(k, 0);
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_LINKED,
		      self->ring, k, 0x2a);
}

TEST_F(wq, link_posts_linked_on_keyring_with_key_as_aux)
{
	key_serial_t k = add_user_key("k", KEY_SPEC_SESSION_KEYRING);

	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(self->ring, FD, 0xff));
	ASSERT_EQ(0, kctl(KEYCTL_LINK, k, self->ring, 0, 0));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_LINKED,
		      self->ring, k, 0xff);
}

TEST_F(wq, unlink_posts_unlinked_on_keyring_with_key_as_aux)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(self->ring, FD, 3));
	ASSERT_EQ(0, kctl(KEYCTL_UNLINK, k, self->ring, 0, 0));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_UNLINKED,
		      self->ring, k, 3);
}

TEST_F(wq, clear_posts_one_cleared_record_and_no_unlinks)
{
	ASSERT_GT(add_user_key("a", self->ring), 0);
	ASSERT_GT(add_user_key("b", self->ring), 0);
	ASSERT_EQ(0, watch_key(self->ring, FD, 4));
	ASSERT_EQ(0, kctl(KEYCTL_CLEAR, self->ring, 0, 0, 0));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_CLEARED,
		      self->ring, 0, 4);
}

TEST_F(wq, clear_of_empty_keyring_still_posts_cleared)
{
	ASSERT_EQ(0, watch_key(self->ring, FD, 4));
	ASSERT_EQ(0, kctl(KEYCTL_CLEAR, self->ring, 0, 0, 0));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_CLEARED,
		      self->ring, 0, 4);
}

TEST_F(wq, revoke_posts_revoked)
{
	change_posts(_metadata, self, 5, KEYCTL_REVOKE, 0, 0, NOTIFY_KEY_REVOKED);
}

TEST_F(wq, invalidate_posts_invalidated)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 6));
	ASSERT_EQ(0, kctl(KEYCTL_INVALIDATE, k, 0, 0, 0));
	/* The removal may follow once gc runs; the first record is the invalidation. */
	do {
		struct rec recs[4];
		size_t len = drain_wq(_metadata, self);
		int n = split(_metadata, self->buf, len, recs, 4);

		ASSERT_GE(n, 1);
		check_key_rec(_metadata, recs[0], NOTIFY_KEY_INVALIDATED, k, 0, 6);
		if (n > 1)
			check_removal_rec(_metadata, recs[1], k, 6);
		ASSERT_LE(n, 2);
	} while (0);
}

TEST_F(wq, setperm_posts_setattr)
{
	change_posts(_metadata, self, 8, KEYCTL_SETPERM, 0x3f3f0000, 0, NOTIFY_KEY_SETATTR);
}

TEST_F(wq, set_timeout_posts_setattr)
{
	change_posts(_metadata, self, 9, KEYCTL_SET_TIMEOUT, 1000, 0, NOTIFY_KEY_SETATTR);
}

TEST_F(wq, chown_posts_setattr)
{
	/* Change only the group to our own: allowed without privilege. */
	change_posts(_metadata, self, 10, KEYCTL_CHOWN, (unsigned long)-1, getegid(),
		     NOTIFY_KEY_SETATTR);
}

TEST_F(wq, records_from_several_events_arrive_in_order_in_one_read)
{
	struct rec recs[8];
	key_serial_t k = add_user_key("k", self->ring), k2;
	ssize_t len;

	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, watch_key(self->ring, FD, 2));
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(0, kctl(KEYCTL_SETPERM, k, 0x3f3f0000, 0, 0));
	k2 = add_user_key("k2", self->ring);
	ASSERT_GT(k2, 0);
	len = read(FD, self->buf, sizeof(self->buf));
	ASSERT_EQ(3 * KEY_NOTE_LEN, len);
	ASSERT_EQ(3, split(_metadata, self->buf, len, recs, 8));
	check_key_rec(_metadata, recs[0], NOTIFY_KEY_UPDATED, k, 0, 1);
	check_key_rec(_metadata, recs[1], NOTIFY_KEY_SETATTR, k, 0, 1);
	check_key_rec(_metadata, recs[2], NOTIFY_KEY_LINKED, self->ring, k2, 2);
}

TEST_F(wq, two_queues_watching_one_key_each_get_the_record_with_their_watch_id)
{
	int fds2[2];
	unsigned char b2[256];
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, open_notify_pipe(_metadata, fds2, 16));
	ASSERT_EQ(0, watch_key(k, FD, 0x11));
	ASSERT_EQ(0, watch_key(k, fds2[0], 0x22));
	ASSERT_EQ(0, key_update(k, "x"));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_UPDATED, k, 0, 0x11);
	check_key_rec(_metadata, only_rec(_metadata, fds2[0], b2, sizeof(b2)),
		      NOTIFY_KEY_UPDATED, k, 0, 0x22);
	close(fds2[0]);
	close(fds2[1]);
}

TEST_F(wq, events_on_an_unwatched_key_post_nothing)
{
	key_serial_t k = new_key(_metadata, self);
	key_serial_t other = add_user_key("other", self->ring);

	ASSERT_GT(other, 0);
	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, key_update(other, "x"));
	ASSERT_EQ(0, kctl(KEYCTL_REVOKE, other, 0, 0, 0));
	expect_nothing(_metadata, FD);
}

/* ---------------------------------------------------------------------------
 * Adding and removing watches.
 */

TEST_F(wq, watch_id_minus_one_posts_removal_and_stops_records)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 0x33));
	ASSERT_EQ(0, watch_key(k, FD, -1));
	check_removal_rec(_metadata, only_rec_wq(_metadata, self), k, 0x33);
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(0, kctl(KEYCTL_REVOKE, k, 0, 0, 0));
	expect_nothing(_metadata, FD);
}

TEST_F(wq, removing_watch_from_never_watched_key_fails_ebadslt)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(-1, watch_key(k, FD, -1));
	ASSERT_EQ(EBADSLT, errno);
	expect_nothing(_metadata, FD);
}

TEST_F(wq, removing_watch_twice_fails_ebadslt)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, watch_key(k, FD, -1));
	ASSERT_EQ(-1, watch_key(k, FD, -1));
	ASSERT_EQ(EBADSLT, errno);
}

TEST_F(wq, removing_watch_held_only_by_another_queue_fails_ebadslt)
{
	int fds2[2];
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, open_notify_pipe(_metadata, fds2, 16));
	ASSERT_EQ(0, watch_key(k, fds2[0], 1));
	ASSERT_EQ(-1, watch_key(k, FD, -1));
	ASSERT_EQ(EBADSLT, errno);
	/* The other queue's watch is untouched. */
	second_queue_sees_update(_metadata, fds2, k);
}

TEST_F(wq, watch_id_out_of_range_fails_einval)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(-1, watch_key(k, FD, 0x100));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(-1, watch_key(k, FD, -2));
	ASSERT_EQ(EINVAL, errno);
	/* The bounds themselves are valid. */
	ASSERT_EQ(0, watch_key(k, FD, 0));
	ASSERT_EQ(0, watch_key(k, FD, -1));
	ASSERT_EQ(0, watch_key(k, FD, 0xff));
}

TEST_F(wq, second_watch_on_same_key_from_same_queue_fails_ebusy)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(-1, watch_key(k, FD, 2));
	ASSERT_EQ(EBUSY, errno);
	ASSERT_EQ(-1, watch_key(k, FD, 1));
	ASSERT_EQ(EBUSY, errno);
	/* Still exactly one record per event, from the first watch. */
	ASSERT_EQ(0, key_update(k, "x"));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_UPDATED, k, 0, 1);
}

TEST_F(wq, watch_through_ordinary_pipe_or_non_pipe_fd_fails_einval)
{
	int p[2];
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, pipe2(p, 0));
	ASSERT_EQ(-1, watch_key(k, p[0], 1));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(-1, watch_key(k, 0x7fff, 1));	/* not an open fd */
	ASSERT_EQ(EINVAL, errno);
	/* The write end of a notification pipe is the same pipe: accepted. */
	ASSERT_EQ(0, watch_key(k, self->fds[1], 1));
	close(p[0]);
	close(p[1]);
}

TEST_F(wq, watch_on_nonexistent_key_fails_enokey)
{
	ASSERT_EQ(-1, watch_key(0x7ffffff0, FD, 1));
	ASSERT_EQ(ENOKEY, errno);
}

TEST_F(wq, closing_pipe_with_live_watch_then_changing_key_is_harmless)
{
	key_serial_t k = new_key(_metadata, self);
	int fds2[2];

	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, watch_key(self->ring, FD, 2));
	ASSERT_EQ(0, key_update(k, "queued, never read"));
	close(self->fds[0]);
	close(self->fds[1]);
	self->fds[0] = -1;
	self->fds[1] = -1;
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(0, kctl(KEYCTL_SETPERM, k, 0x3f3f0000, 0, 0));
	ASSERT_EQ(0, kctl(KEYCTL_UNLINK, k, self->ring, 0, 0));
	ASSERT_EQ(0, kctl(KEYCTL_CLEAR, self->ring, 0, 0, 0));
	ASSERT_EQ(0, kctl(KEYCTL_INVALIDATE, self->ring, 0, 0, 0));
	/* A new queue on a new key still works. */
	ASSERT_EQ(0, open_notify_pipe(_metadata, fds2, 16));
	k = add_user_key("k2", KEY_SPEC_SESSION_KEYRING);
	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(k, fds2[0], 1));
	second_queue_sees_update(_metadata, fds2, k);
}

TEST_F(wq, closing_only_the_write_end_keeps_the_queue_delivering)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 1));
	close(self->fds[1]);
	self->fds[1] = -1;
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(KEY_NOTE_LEN, read(FD, self->buf, sizeof(self->buf)));
	check_key_rec(_metadata, decode(self->buf), NOTIFY_KEY_UPDATED, k, 0, 1);
	/* Empty and no writers: EOF. */
	ASSERT_EQ(0, read(FD, self->buf, sizeof(self->buf)));
}

/* ---------------------------------------------------------------------------
 * Removal notifications when the watched key goes away.
 */

TEST_F(wq, last_unlink_then_gc_posts_removal_with_key_id)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 0x44));
	ASSERT_EQ(0, kctl(KEYCTL_UNLINK, k, self->ring, 0, 0));
	wait_readable(_metadata, FD, GC_WAIT_MS);
	check_removal_rec(_metadata, only_rec_wq(_metadata, self), k, 0x44);
	expect_nothing(_metadata, FD);
}

TEST_F(wq, revoked_key_posts_revoked_then_removal_once_last_link_goes)
{
	key_serial_t k = change_posts(_metadata, self, 0x55, KEYCTL_REVOKE, 0, 0,
				      NOTIFY_KEY_REVOKED);

	/* 6.12's gc does not reap revoked keys from keyrings (key_is_dead()). */
	ASSERT_EQ(0, kctl(KEYCTL_UNLINK, k, self->ring, 0, 0));
	wait_readable(_metadata, FD, GC_WAIT_MS);
	check_removal_rec(_metadata, only_rec_wq(_metadata, self), k, 0x55);
}

TEST_F_TIMEOUT(wq, expired_key_is_reaped_by_gc_and_posts_removal, 60)
{
	key_serial_t k = add_user_key("k", self->ring);

	fast_gc(_metadata, self);	/* gc_delay 0: reap as soon as it expires */
	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(k, FD, 0x5a));
	ASSERT_EQ(0, kctl(KEYCTL_SET_TIMEOUT, k, 1, 0, 0));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_SETATTR, k, 0, 0x5a);
	/* Still linked in the keyring: only gc can drop it. */
	wait_readable(_metadata, FD, GC_WAIT_MS);
	check_removal_rec(_metadata, only_rec_wq(_metadata, self), k, 0x5a);
}

TEST_F(wq, invalidate_posts_invalidated_then_removal)
{
	key_serial_t k = new_key(_metadata, self);
	ssize_t n;

	ASSERT_EQ(0, watch_key(k, FD, 0x66));
	ASSERT_EQ(0, kctl(KEYCTL_INVALIDATE, k, 0, 0, 0));
	n = read(FD, self->buf, KEY_NOTE_LEN);
	ASSERT_EQ(KEY_NOTE_LEN, n);
	check_key_rec(_metadata, decode(self->buf), NOTIFY_KEY_INVALIDATED, k, 0, 0x66);
	wait_readable(_metadata, FD, GC_WAIT_MS);
	check_removal_rec(_metadata, only_rec_wq(_metadata, self), k, 0x66);
}

TEST_F(wq, destroyed_keyring_posts_removal_on_every_queue_watching_it)
{
	int fds2[2];
	unsigned char b2[256];

	ASSERT_EQ(0, open_notify_pipe(_metadata, fds2, 16));
	ASSERT_EQ(0, watch_key(self->ring, FD, 1));
	ASSERT_EQ(0, watch_key(self->ring, fds2[0], 2));
	ASSERT_EQ(0, kctl(KEYCTL_UNLINK, self->ring, KEY_SPEC_SESSION_KEYRING, 0, 0));
	wait_readable(_metadata, FD, GC_WAIT_MS);
	check_removal_rec(_metadata, only_rec_wq(_metadata, self), self->ring, 1);
	wait_readable(_metadata, fds2[0], GC_WAIT_MS);
	check_removal_rec(_metadata, only_rec(_metadata, fds2[0], b2, sizeof(b2)),
			  self->ring, 2);
	close(fds2[0]);
	close(fds2[1]);
}

TEST_F(wq, removal_records_pass_a_filter_that_drops_meta_type)
{
	struct filter16 flt = {
		.f.nr_filters = 1,
		.t[0] = { .type = WATCH_TYPE_KEY_NOTIFY, .subtype_filter[0] = 0 },
	};
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, ioctl(FD, IOC_WATCH_QUEUE_SET_FILTER, &flt));
	ASSERT_EQ(0, watch_key(k, FD, 0x77));
	ASSERT_EQ(0, key_update(k, "filtered out"));
	expect_nothing(_metadata, FD);
	/* Removal records bypass the filter. */
	ASSERT_EQ(0, watch_key(k, FD, -1));
	check_removal_rec(_metadata, only_rec_wq(_metadata, self), k, 0x77);
}

/* ---------------------------------------------------------------------------
 * Filters (IOC_WATCH_QUEUE_SET_FILTER).
 */

static int set_filter(int fd, struct filter16 *flt, unsigned int nr)
{
	flt->f.nr_filters = nr;
	return ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER, &flt->f);
}

/* Setattr, update, revoke on a watched key; return the subtypes that arrive as a bitmask. */
static unsigned int three_events(struct __test_metadata *_metadata, struct _test_data_wq *self)
{
	struct rec recs[8];
	key_serial_t k = new_key(_metadata, self);
	unsigned int seen = 0;
	size_t len;
	int i, n;

	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, kctl(KEYCTL_SETPERM, k, 0x3f3f0000, 0, 0));
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(0, kctl(KEYCTL_REVOKE, k, 0, 0, 0));
	len = drain_wq(_metadata, self);
	n = split(_metadata, self->buf, len, recs, 8);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(WATCH_TYPE_KEY_NOTIFY, recs[i].type);
		check_key_rec(_metadata, recs[i], recs[i].subtype, k, 0, 1);
		ASSERT_EQ(0u, seen & (1u << recs[i].subtype));
		seen |= 1u << recs[i].subtype;
	}
	return seen;
}

#define BIT(n) (1u << (n))
#define THREE (BIT(NOTIFY_KEY_SETATTR) | BIT(NOTIFY_KEY_UPDATED) | BIT(NOTIFY_KEY_REVOKED))

TEST_F(wq, without_filter_all_subtypes_arrive)
{
	ASSERT_EQ(THREE, three_events(_metadata, self));
}

TEST_F(wq, filter_passes_only_selected_subtypes_in_order)
{
	struct filter16 flt = {};
	struct rec recs[4];
	key_serial_t k = new_key(_metadata, self);
	size_t len;

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].subtype_filter[0] = BIT(NOTIFY_KEY_UPDATED) | BIT(NOTIFY_KEY_REVOKED);
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, kctl(KEYCTL_SETPERM, k, 0x3f3f0000, 0, 0));
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(0, kctl(KEYCTL_SETPERM, k, 0x3f3f0000, 0, 0));
	ASSERT_EQ(0, kctl(KEYCTL_REVOKE, k, 0, 0, 0));
	len = drain_wq(_metadata, self);
	ASSERT_EQ(2, split(_metadata, self->buf, len, recs, 4));
	check_key_rec(_metadata, recs[0], NOTIFY_KEY_UPDATED, k, 0, 1);
	check_key_rec(_metadata, recs[1], NOTIFY_KEY_REVOKED, k, 0, 1);
}

TEST_F(wq, filter_for_one_subtype_drops_every_other)
{
	struct filter16 flt = {};

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].subtype_filter[0] = BIT(NOTIFY_KEY_SETATTR);
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	ASSERT_EQ(BIT(NOTIFY_KEY_SETATTR), three_events(_metadata, self));
}

TEST_F(wq, filter_info_mask_selects_records_by_watch_id)
{
	struct filter16 flt = {};
	key_serial_t a = add_user_key("a", self->ring), b = add_user_key("b", self->ring);

	ASSERT_GT(a, 0);
	ASSERT_GT(b, 0);
	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].subtype_filter[0] = ~0u;
	flt.t[0].info_mask = WATCH_INFO_ID;
	flt.t[0].info_filter = 2 << WATCH_INFO_ID__SHIFT;
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	ASSERT_EQ(0, watch_key(a, FD, 1));
	ASSERT_EQ(0, watch_key(b, FD, 2));
	ASSERT_EQ(0, key_update(a, "x"));
	ASSERT_EQ(0, key_update(b, "x"));
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_UPDATED, b, 0, 2);
}

TEST_F(wq, null_filter_removes_the_filter)
{
	struct filter16 flt = {};

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].subtype_filter[0] = BIT(NOTIFY_KEY_REVOKED);
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	ASSERT_EQ(0, ioctl(FD, IOC_WATCH_QUEUE_SET_FILTER, NULL));
	ASSERT_EQ(THREE, three_events(_metadata, self));
}

TEST_F(wq, filter_can_be_replaced)
{
	struct filter16 flt = {};

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].subtype_filter[0] = BIT(NOTIFY_KEY_REVOKED);
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	flt.t[0].subtype_filter[0] = BIT(NOTIFY_KEY_UPDATED);
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	ASSERT_EQ(BIT(NOTIFY_KEY_UPDATED), three_events(_metadata, self));
}

TEST_F(wq, filter_with_only_meta_type_drops_key_records)
{
	struct filter16 flt = {};

	flt.t[0].type = WATCH_TYPE_META;
	flt.t[0].subtype_filter[0] = ~0u;
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	ASSERT_EQ(0u, three_events(_metadata, self));
}

TEST_F(wq, filter_types_at_or_above_watch_type_nr_are_accepted_and_ignored)
{
	static const uint32_t types[] = { WATCH_TYPE__NR, 1023, 1024, 0x10000, UINT32_MAX };
	struct filter16 flt = {};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(types); i++) {
		flt.t[i].type = types[i];
		flt.t[i].subtype_filter[0] = ~0u;
	}
	/* Only unknown types: accepted, and nothing of a known type matches. */
	ASSERT_EQ(0, set_filter(FD, &flt, ARRAY_SIZE(types)));
	ASSERT_EQ(0u, three_events(_metadata, self));
}

TEST_F(wq, filter_unknown_types_do_not_disturb_a_known_type_entry)
{
	struct filter16 flt = {};
	unsigned int i;

	for (i = 0; i < 15; i++) {
		flt.t[i].type = i & 1 ? 1024 + i : UINT32_MAX - i;
		flt.t[i].subtype_filter[0] = ~0u;
	}
	flt.t[15].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[15].subtype_filter[0] = BIT(NOTIFY_KEY_REVOKED) | BIT(NOTIFY_KEY_SETATTR);
	ASSERT_EQ(0, set_filter(FD, &flt, 16));
	ASSERT_EQ(BIT(NOTIFY_KEY_REVOKED) | BIT(NOTIFY_KEY_SETATTR),
		  three_events(_metadata, self));
}

TEST_F(wq, filter_subtype_bits_at_32_and_above_do_not_select_low_subtypes)
{
	struct filter16 flt = {};
	unsigned int w;

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].subtype_filter[0] = BIT(NOTIFY_KEY_UPDATED);
	for (w = 1; w < 8; w++)
		flt.t[0].subtype_filter[w] = ~0u;	/* subtypes 32..255 */
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	ASSERT_EQ(BIT(NOTIFY_KEY_UPDATED), three_events(_metadata, self));
}

TEST_F(wq, filter_with_only_high_subtype_bits_drops_all_key_records)
{
	struct filter16 flt = {};
	unsigned int w;

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	for (w = 1; w < 8; w++)
		flt.t[0].subtype_filter[w] = ~0u;
	ASSERT_EQ(0, set_filter(FD, &flt, 1));
	ASSERT_EQ(0u, three_events(_metadata, self));
}

TEST_F(wq, filter_with_sixteen_entries_is_accepted)
{
	struct filter16 flt = {};
	unsigned int i;

	for (i = 0; i < 16; i++) {
		flt.t[i].type = WATCH_TYPE_KEY_NOTIFY;
		flt.t[i].subtype_filter[0] = BIT(i % 8);
	}
	ASSERT_EQ(0, set_filter(FD, &flt, 16));
	ASSERT_EQ(THREE, three_events(_metadata, self));
}

TEST_F(wq, filter_with_more_than_sixteen_entries_fails_einval)
{
	struct filter16 flt = {};
	unsigned int i;

	for (i = 0; i < 17; i++)
		flt.t[i].type = WATCH_TYPE_KEY_NOTIFY;
	ASSERT_EQ(-1, set_filter(FD, &flt, 17));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(-1, set_filter(FD, &flt, 1024));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(-1, set_filter(FD, &flt, UINT32_MAX));
	ASSERT_EQ(EINVAL, errno);
	/* A rejected filter leaves the queue unfiltered. */
	ASSERT_EQ(THREE, three_events(_metadata, self));
}

TEST_F(wq, filter_with_zero_entries_fails_einval)
{
	struct filter16 flt = {};

	ASSERT_EQ(-1, set_filter(FD, &flt, 0));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(wq, filter_with_nonzero_reserved_fails_einval)
{
	struct filter16 flt = {};

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].subtype_filter[0] = ~0u;
	flt.f.__reserved = 1;
	ASSERT_EQ(-1, set_filter(FD, &flt, 1));
	ASSERT_EQ(EINVAL, errno);
	flt.f.__reserved = 0x80000000u;
	ASSERT_EQ(-1, set_filter(FD, &flt, 1));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(wq, filter_with_info_filter_bits_outside_info_mask_fails_einval)
{
	struct filter16 flt = {};

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].info_mask = WATCH_INFO_ID;
	flt.t[0].info_filter = WATCH_INFO_FLAG_0;
	ASSERT_EQ(-1, set_filter(FD, &flt, 1));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(wq, filter_info_mask_covering_the_length_fails_einval)
{
	struct filter16 flt = {};

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[0].info_mask = 1;		/* a WATCH_INFO_LENGTH bit */
	ASSERT_EQ(-1, set_filter(FD, &flt, 1));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(wq, bad_entry_in_an_unknown_type_still_fails_einval)
{
	struct filter16 flt = {};

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	flt.t[1].type = 4096;				/* ignored type ... */
	flt.t[1].info_mask = WATCH_INFO_LENGTH;		/* ... but still validated */
	ASSERT_EQ(-1, set_filter(FD, &flt, 2));
	ASSERT_EQ(EINVAL, errno);
}

TEST_F(wq, filter_at_bad_address_fails_efault)
{
	ASSERT_EQ(-1, ioctl(FD, IOC_WATCH_QUEUE_SET_FILTER, (void *)16));
	ASSERT_EQ(EFAULT, errno);
}

TEST_F(wq, filter_and_size_ioctls_on_ordinary_pipe_fail_enodev)
{
	struct filter16 flt = {};
	int p[2];

	flt.t[0].type = WATCH_TYPE_KEY_NOTIFY;
	ASSERT_EQ(0, pipe2(p, 0));
	ASSERT_EQ(-1, set_filter(p[0], &flt, 1));
	ASSERT_EQ(ENODEV, errno);
	ASSERT_EQ(-1, ioctl(p[0], IOC_WATCH_QUEUE_SET_SIZE, 16));
	ASSERT_EQ(ENODEV, errno);
	close(p[0]);
	close(p[1]);
}

/* ---------------------------------------------------------------------------
 * Queue size, loss, reading and writing.
 */

TEST_F(wq, set_size_zero_fails_einval)
{
	int p[2];

	ASSERT_EQ(0, open_notify_pipe(_metadata, p, 0));
	ASSERT_EQ(-1, ioctl(p[0], IOC_WATCH_QUEUE_SET_SIZE, 0));
	ASSERT_EQ(EINVAL, errno);
	close(p[0]);
	close(p[1]);
}

TEST_F(wq, set_size_above_512_fails_einval)
{
	/* The ioctl argument is truncated to unsigned int, so stay below 2^32. */
	static const unsigned long sizes[] = { 513, 4096, 0x7fffffff, 0x80000000ul,
					       0xffffffffUL };
	int p[2];
	unsigned int i;

	ASSERT_EQ(0, open_notify_pipe(_metadata, p, 0));
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		ASSERT_EQ(-1, ioctl(p[0], IOC_WATCH_QUEUE_SET_SIZE, sizes[i])) {
			TH_LOG("size %#lx accepted", sizes[i]);
		}
		ASSERT_EQ(EINVAL, errno);
	}
	/* Still unsized: a valid size is accepted afterwards. */
	ASSERT_EQ(0, ioctl(p[0], IOC_WATCH_QUEUE_SET_SIZE, 1));
	close(p[0]);
	close(p[1]);
}

TEST_F(wq, set_size_1_and_512_are_accepted)
{
	int p[2], q[2];

	ASSERT_EQ(0, open_notify_pipe(_metadata, p, 0));
	ASSERT_EQ(0, ioctl(p[0], IOC_WATCH_QUEUE_SET_SIZE, 1));
	ASSERT_EQ(0, open_notify_pipe(_metadata, q, 0));
	ASSERT_EQ(0, ioctl(q[0], IOC_WATCH_QUEUE_SET_SIZE, 512)) {
		TH_LOG("512 notes: %s (EPERM means the user's pipe quota is exhausted)",
		       strerror(errno));
	}
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

TEST_F(wq, set_size_twice_fails_ebusy)
{
	ASSERT_EQ(-1, ioctl(FD, IOC_WATCH_QUEUE_SET_SIZE, 16));
	ASSERT_EQ(EBUSY, errno);
}

TEST_F(wq, f_setpipe_sz_on_notification_pipe_fails_ebusy)
{
	ASSERT_EQ(-1, syscall(__NR_fcntl, FD, F_SETPIPE_SZ, 65536));
	ASSERT_EQ(EBUSY, errno);
}

TEST_F(wq, write_to_notification_pipe_fails_exdev)
{
	char c = 'x';

	ASSERT_EQ(-1, write(self->fds[1], &c, 1));
	ASSERT_EQ(EXDEV, errno);
	/* Even an empty write. */
	ASSERT_EQ(-1, write(self->fds[1], &c, 0));
	ASSERT_EQ(EXDEV, errno);
	expect_nothing(_metadata, FD);
}

TEST_F(wq, read_buffer_smaller_than_record_fails_enobufs_and_keeps_record)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(-1, read(FD, self->buf, KEY_NOTE_LEN - 1));
	ASSERT_EQ(ENOBUFS, errno);
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_UPDATED, k, 0, 1);
}

TEST_F(wq, read_never_splits_a_record)
{
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(0, key_update(k, "y"));
	/* Room for one and a half records: only the whole first one is returned. */
	ASSERT_EQ(KEY_NOTE_LEN, read(FD, self->buf, KEY_NOTE_LEN + KEY_NOTE_LEN / 2));
	check_key_rec(_metadata, decode(self->buf), NOTIFY_KEY_UPDATED, k, 0, 1);
	check_key_rec(_metadata, only_rec_wq(_metadata, self), NOTIFY_KEY_UPDATED, k, 0, 1);
}

TEST_F(wq, fionread_counts_queued_bytes)
{
	key_serial_t k = new_key(_metadata, self);
	int n = -1;

	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, ioctl(FD, FIONREAD, &n));
	ASSERT_EQ(0, n);
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(0, key_update(k, "y"));
	ASSERT_EQ(0, ioctl(FD, FIONREAD, &n));
	ASSERT_EQ(2 * KEY_NOTE_LEN, n);
}

TEST_F(wq, poll_reports_readable_only_when_a_record_is_queued)
{
	struct pollfd pfd = { .fd = FD, .events = POLLIN };
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, watch_key(k, FD, 1));
	ASSERT_EQ(0, poll(&pfd, 1, 0));
	ASSERT_EQ(0, key_update(k, "x"));
	ASSERT_EQ(1, poll(&pfd, 1, 0));
	ASSERT_TRUE(pfd.revents & POLLIN);
}

/*
 * Size 1 rounds up to one page of 128-byte notes.  Overflowing it sets the
 * loss flag on the last queued buffer; read() hands out the queued records,
 * then one WATCH_META_LOSS_NOTIFICATION record (8 bytes, watch id 0).
 */
TEST_F(wq, overflow_delivers_a_full_queue_then_one_loss_record)
{
	int p[2];
	unsigned char b[8192];
	struct rec recs[128];
	long page = sysconf(_SC_PAGESIZE);
	int capacity = page / NOTE_SIZE, extra = 10, i, n;
	size_t len;
	key_serial_t k = new_key(_metadata, self);

	ASSERT_LE(capacity, 100);
	ASSERT_EQ(0, open_notify_pipe(_metadata, p, 1));
	ASSERT_EQ(0, watch_key(k, p[0], 3));
	for (i = 0; i < capacity + extra; i++)
		ASSERT_EQ(0, key_update(k, "x"));
	len = drain(_metadata, p[0], b, sizeof(b));
	n = split(_metadata, b, len, recs, 128);
	ASSERT_EQ(capacity + 1, n) {
		TH_LOG("read %zu bytes, %d records, after %d events into %d notes",
		       len, n, capacity + extra, capacity);
	}
	for (i = 0; i < capacity; i++)
		check_key_rec(_metadata, recs[i], NOTIFY_KEY_UPDATED, k, 0, 3);
	check_loss_rec(_metadata, recs[capacity]);

	/* Drained: the queue delivers again, with no second loss record. */
	ASSERT_EQ(0, key_update(k, "x"));
	check_key_rec(_metadata, only_rec(_metadata, p[0], b, sizeof(b)),
		      NOTIFY_KEY_UPDATED, k, 0, 3);
	close(p[0]);
	close(p[1]);
}

TEST_F(wq, loss_record_comes_after_the_last_record_queued_before_the_loss)
{
	int p[2];
	unsigned char b[8192];
	struct rec recs[128];
	long page = sysconf(_SC_PAGESIZE);
	int capacity = page / NOTE_SIZE, i, n;
	size_t len;
	key_serial_t k = add_user_key("k", self->ring), k2;

	ASSERT_GT(k, 0);
	ASSERT_EQ(0, open_notify_pipe(_metadata, p, 1));
	ASSERT_EQ(0, watch_key(k, p[0], 3));
	ASSERT_EQ(0, watch_key(self->ring, p[0], 4));
	for (i = 0; i < capacity; i++)
		ASSERT_EQ(0, key_update(k, "x"));
	/* Lost: */
	ASSERT_EQ(0, kctl(KEYCTL_SETPERM, k, 0x3f3f0000, 0, 0));
	/* Read half; then post into the freed room; then read the rest. */
	ASSERT_EQ((capacity / 2) * KEY_NOTE_LEN,
		  read(p[0], b, (capacity / 2) * KEY_NOTE_LEN));
	k2 = add_user_key("k2", self->ring);
	ASSERT_GT(k2, 0);
	len = drain(_metadata, p[0], b, sizeof(b));
	n = split(_metadata, b, len, recs, 128);
	ASSERT_EQ(capacity - capacity / 2 + 2, n);
	for (i = 0; i < capacity - capacity / 2; i++)
		check_key_rec(_metadata, recs[i], NOTIFY_KEY_UPDATED, k, 0, 3);
	check_loss_rec(_metadata, recs[i]);
	check_key_rec(_metadata, recs[i + 1], NOTIFY_KEY_LINKED, self->ring, k2, 4);
	close(p[0]);
	close(p[1]);
}

TEST_F(wq, loss_record_needs_eight_bytes_of_read_buffer)
{
	int p[2];
	unsigned char b[8192];
	long page = sysconf(_SC_PAGESIZE);
	int capacity = page / NOTE_SIZE, i;
	key_serial_t k = new_key(_metadata, self);

	ASSERT_EQ(0, open_notify_pipe(_metadata, p, 1));
	ASSERT_EQ(0, watch_key(k, p[0], 3));
	for (i = 0; i < capacity + 1; i++)
		ASSERT_EQ(0, key_update(k, "x"));
	for (i = 0; i < capacity; i++)
		ASSERT_EQ(KEY_NOTE_LEN, read(p[0], b, KEY_NOTE_LEN));
	ASSERT_EQ(-1, read(p[0], b, META_LEN - 1));
	ASSERT_EQ(ENOBUFS, errno);
	ASSERT_EQ(META_LEN, read(p[0], b, sizeof(b)));
	check_loss_rec(_metadata, decode(b));
	ASSERT_EQ(-1, read(p[0], b, sizeof(b)));
	ASSERT_EQ(EAGAIN, errno);
	close(p[0]);
	close(p[1]);
}

/* ---------------------------------------------------------------------------
 * Per-user watch limit: a user may hold at most RLIMIT_NOFILE watches.  The
 * watches are made by a user of their own, in a child, so that what other
 * programs hold as root at the same time does not count.
 */

#define LIMIT_UID	64002	/* no other program uses it */

struct watch_keys {
	const key_serial_t *keys;
	int nr, fd, wait_ms;
};

/*
 * Run as LIMIT_UID: watch keys[0..nr) through fd; each refusal must be EAGAIN
 * and is retried for up to wait_ms (watches freed after an RCU grace period
 * count until then).  Returns the number of watches made, or 255 if a system
 * call failed otherwise.
 */
static int watch_keys(void *arg)
{
	const struct watch_keys *w = arg;
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int i, waited, ok = 0;

	for (i = 0; i < w->nr; i++) {
		for (waited = 0; watch_key(w->keys[i], w->fd, 1) != 0; waited += 10) {
			if (errno != EAGAIN)
				return 255;
			if (waited >= w->wait_ms)
				return ok;
			nanosleep(&ts, NULL);
		}
		ok++;
	}
	return ok;
}

/* How many of the keys LIMIT_UID can watch with RLIMIT_NOFILE at @limit. */
static int watches_as_user(const key_serial_t *keys, int nr, int fd, int limit, int wait_ms)
{
	struct watch_keys w = { .keys = keys, .nr = nr, .fd = fd, .wait_ms = wait_ms };

	return run_as_user(LIMIT_UID, limit, watch_keys, &w);
}

TEST_F(wq, watches_beyond_rlimit_nofile_fail_eagain_and_are_released_on_close)
{
	enum { LIMIT = 24, KEYS = LIMIT + 8 };
	key_serial_t keys[KEYS];
	char desc[16];
	int p[2], i;

	for (i = 0; i < KEYS; i++) {
		snprintf(desc, sizeof(desc), "k%d", i);
		keys[i] = add_user_key(desc, self->ring);
		ASSERT_GT(keys[i], 0);
	}
	/* The keys are in our session keyring: the child possesses them. */
	ASSERT_EQ(0, open_notify_pipe(_metadata, p, 16));
	ASSERT_EQ(LIMIT, watches_as_user(keys, KEYS, p[0], LIMIT, 0));
	/* Closing the queue releases the watches (after an RCU grace period). */
	close(p[0]);
	close(p[1]);
	ASSERT_EQ(0, open_notify_pipe(_metadata, p, 16));
	ASSERT_EQ(LIMIT, watches_as_user(keys, LIMIT, p[0], LIMIT, 5000)) {
		TH_LOG("watches still refused 5 s after their queue was closed");
	}
	close(p[0]);
	close(p[1]);
}

TEST_HARNESS_MAIN
