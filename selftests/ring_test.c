// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/watch_queue: the mmap()able notification ring.
 *
 * One behaviour per test, each named after the rule it checks.  The rules
 * come from shared/docs/ring-abi.md (the contract) and notes/ring-design.md
 * (the decisions), and every bug class in shared/docs/lessons.md has a test
 * here that fails on the buggy behaviour.
 *
 * Most placement tests drive the ring with IOC_WATCH_QUEUE_INJECT (kernels
 * built with CONFIG_WATCH_QUEUE_TEST_INJECT) and compare the whole mapping,
 * byte for byte, against a model of the writer written from the design
 * (struct model below): the meta entry, skip records, loss records, the
 * records and every byte the kernel must leave alone.
 *
 * <linux/watch_queue.h> is included with <fcntl.h> and <sys/mount.h> (through
 * wq_util.h): since the series, it no longer drags in <linux/fcntl.h>.
 */
#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "wq_util.h"
#include "kselftest_harness.h"

/*
 * The checks below compare small literals with __u32 ring fields all over;
 * -Wextra's -Wsign-compare on every harness macro expansion is only noise.
 */
#pragma GCC diagnostic ignored "-Wsign-compare"

#define DEV_PATH	"/dev/watch_queue"
#define SLOT		8u
#define MAX_SLOTS	63u
/* A record type no source uses; not META, so injection accepts it. */
#define TEST_TYPE	0x3a5u
#define NOBODY		65534

/* ---------------------------------------------------------------------------
 * The uapi layout: a wrong size or offset here is a build failure.
 */
static_assert(sizeof(struct watch_notification) == 8, "record header is one slot");
static_assert(sizeof(struct watch_queue_ring_meta) == 16, "meta entry is two slots");
static_assert(offsetof(struct watch_queue_ring_meta, head) == 8, "head at byte 8");
static_assert(offsetof(struct watch_queue_ring_meta, tail) == 12, "tail at byte 12");
static_assert(sizeof(struct watch_notification_loss) == 16, "loss record is two slots");
static_assert(offsetof(struct watch_notification_loss, nr_lost) == 8, "nr_lost in slot 2");
static_assert(WATCH_INFO_NR_SLOTS == 0x3f, "ring length mask");
static_assert(WATCH_META_SKIP_NOTIFICATION == 2, "skip subtype");
static_assert(_IO('W', 0x62) == IOC_WATCH_QUEUE_NR_PAGES, "NR_PAGES ioctl");
static_assert(sizeof(struct watch_queue_loss) == 8, "TAKE_LOSS result");
static_assert(offsetof(struct watch_queue_loss, head) == 4, "TAKE_LOSS head");
static_assert(_IOR('W', 0x63, struct watch_queue_loss) == IOC_WATCH_QUEUE_TAKE_LOSS,
	      "TAKE_LOSS ioctl");
/* The size INJECT encodes is the most it reads: the longest record. */
static_assert(_IOC_SIZE(IOC_WATCH_QUEUE_INJECT) == 63 * 8, "INJECT ioctl size");
static_assert(_IOW('W', 0x64, __u64[63]) == IOC_WATCH_QUEUE_INJECT, "INJECT ioctl");
static_assert(WATCH_QUEUE_RING_MAX_PAGES == 256, "max ring size");

/* ---------------------------------------------------------------------------
 * Small wrappers.
 */
static uint64_t hdr_word(uint32_t type, uint32_t subtype, uint32_t info)
{
	struct watch_notification n = { .type = type, .subtype = subtype, .info = info };
	uint64_t w;

	memcpy(&w, &n, sizeof(w));
	return w;
}

static struct watch_notification word_hdr(uint64_t w)
{
	struct watch_notification n;

	memcpy(&n, &w, sizeof(n));
	return n;
}

/* Read the byte at @off of a mapping: the access itself is what is tested. */
static unsigned char peek(const void *map, size_t off)
{
	return __atomic_load_n((const unsigned char *)map + off, __ATOMIC_RELAXED);
}

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static long nr_pages_ioctl(int fd, unsigned long nr)
{
	return ioctl(fd, IOC_WATCH_QUEUE_NR_PAGES, nr);
}

/* IOC_WATCH_QUEUE_TAKE_LOSS: the count, and where in the stream it applies. */
static long take_loss_at(int fd, uint32_t *lost, uint32_t *head)
{
	struct watch_queue_loss l = { .nr_lost = 0xdeadbeef, .head = 0xdeadbeef };
	long ret = ioctl(fd, IOC_WATCH_QUEUE_TAKE_LOSS, &l);

	*lost = l.nr_lost;
	if (head)
		*head = l.head;
	return ret;
}

static long take_loss(int fd, uint32_t *lost)
{
	return take_loss_at(fd, lost, NULL);
}

/*
 * Build an L-slot record: header {type, subtype, info = info_hi | L} and a
 * payload of non-zero pseudo-random bytes derived from seed.
 */
static void make_rec(uint64_t *buf, unsigned int L, uint32_t type, uint32_t subtype,
		     uint32_t info_hi, uint64_t seed)
{
	unsigned int i;

	buf[0] = hdr_word(type, subtype, (info_hi & ~0xffu) | L);
	for (i = 1; i < L; i++)
		buf[i] = splitmix(&seed) | 0x0101010101010101ull;
}

static long inject(int fd, const uint64_t *rec)
{
	return ioctl(fd, IOC_WATCH_QUEUE_INJECT, rec);
}

/* Does this kernel have IOC_WATCH_QUEUE_INJECT?  Probed on an unsized queue. */
static int inject_probe(void)
{
	uint64_t rec[1];
	uint32_t lost;
	int fd = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC), ok;

	if (fd < 0)
		return 0;
	make_rec(rec, 1, TEST_TYPE, 0, 0, 1);
	ok = inject(fd, rec) == 0 || errno != ENOTTY;
	take_loss(fd, &lost);
	close(fd);
	return ok;
}

/* ---------------------------------------------------------------------------
 * A mapped ring.
 */
struct ring {
	int fd;
	unsigned int nr_pages;
	size_t size;
	uint32_t n, mask;
	uint64_t *slots;
	struct watch_queue_ring_meta *meta;
};

/* open() /dev/watch_queue; SKIP (returns -1) if the kernel has no ring device. */
static int dev_open(struct __test_metadata *_metadata)
{
	int fd = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0 && (errno == ENOENT || errno == ENODEV || errno == ENXIO))
		SKIP(return -1, DEV_PATH " is absent (kernel without the ring)");
	ASSERT_LE(0, fd) {
		TH_LOG("open(" DEV_PATH "): %s", strerror(errno));
	}
	return fd;
}

/* mmap() of @len bytes at @off of @fd fails with EINVAL. */
static void mmap_fails_einval(struct __test_metadata *_metadata, int fd, size_t len, int prot,
			      int flags, off_t off)
{
	EXPECT_EQ(MAP_FAILED, mmap(NULL, len, prot, flags, fd, off));
	EXPECT_EQ(EINVAL, errno);
}

static void ring_map(struct __test_metadata *_metadata, struct ring *r, int fd,
		     unsigned int nr_pages)
{
	void *p;

	r->fd = fd;
	r->nr_pages = nr_pages;
	r->size = nr_pages * page_size();
	r->n = r->size / SLOT;
	r->mask = r->n - 1;
	p = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, p) {
		TH_LOG("mmap of a %u-page ring: %s", nr_pages, strerror(errno));
	}
	r->slots = p;
	r->meta = p;
}

/* A sized, mapped ring; returns -1 if SKIPped. */
static int ring_make(struct __test_metadata *_metadata, struct ring *r, unsigned int nr_pages)
{
	int fd = dev_open(_metadata);

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	if (fd < 0)
		return -1;
	ASSERT_EQ(0, nr_pages_ioctl(fd, nr_pages)) {
		TH_LOG("IOC_WATCH_QUEUE_NR_PAGES(%u): %s", nr_pages, strerror(errno));
	}
	ring_map(_metadata, r, fd, nr_pages);
	return 0;
}

/* IOC_WATCH_QUEUE_INJECT is there, or the test is SKIPped (and must return). */
static bool need_inject(struct __test_metadata *_metadata)
{
	if (!inject_probe())
		SKIP(return false,
		     "IOC_WATCH_QUEUE_INJECT returns ENOTTY (kernel without CONFIG_WATCH_QUEUE_TEST_INJECT)");
	return true;
}

/* need_inject(), then ring_make(): -1 if the test is to return (SKIPped). */
static int inject_ring_make(struct __test_metadata *_metadata, struct ring *r,
			    unsigned int nr_pages)
{
	if (!need_inject(_metadata))
		return -1;
	return ring_make(_metadata, r, nr_pages);
}

static void ring_free(struct ring *r)
{
	if (r->slots)
		munmap(r->slots, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->slots = NULL;
	r->fd = -1;
}

static uint32_t ring_head(const struct ring *r)
{
	return __atomic_load_n(&r->meta->head, __ATOMIC_ACQUIRE);
}

static uint32_t ring_tail(const struct ring *r)
{
	return __atomic_load_n(&r->meta->tail, __ATOMIC_RELAXED);
}

static void set_tail(struct ring *r, uint32_t t)
{
	__atomic_store_n(&r->meta->tail, t, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------------------------------
 * The model of the writer (notes/ring-design.md, "Placement", "Room", "Loss").
 * img holds what every slot but slot 1 must contain.
 */
struct model {
	uint32_t n, mask, head, lost;
	uint64_t *img;
};

static void model_init(struct model *m, uint32_t n)
{
	m->n = n;
	m->mask = n - 1;
	m->head = 0;
	m->lost = 0;
	m->img = calloc(n, SLOT);
	m->img[0] = hdr_word(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 2);
}

static uint32_t model_place(struct model *m, uint32_t h, uint32_t L, bool write)
{
	uint32_t left;

	if ((h & m->mask) == 0) {
		if (write)
			m->img[0] = hdr_word(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 2);
		h += 2;
	}
	left = m->n - (h & m->mask);
	if (left < L) {
		if (write)
			m->img[h & m->mask] = hdr_word(WATCH_TYPE_META,
						       WATCH_META_SKIP_NOTIFICATION, left);
		h += left;
		if (write)
			m->img[0] = hdr_word(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 2);
		h += 2;
	}
	return h;
}

/* Slots a post of L slots needs now (loss record included). */
static uint32_t model_need(struct model *m, uint32_t L)
{
	uint32_t h = m->head;

	if (m->lost)
		h = model_place(m, h, 2, false) + 2;
	return model_place(m, h, L, false) + L - m->head;
}

static bool model_tail_ok(const struct model *m, uint32_t tail)
{
	return m->head - tail <= m->n && (tail & m->mask) != 1;
}

static bool model_post(struct model *m, uint32_t tail, const uint64_t *rec, uint32_t L)
{
	struct watch_notification n = word_hdr(rec[0]);
	uint32_t used = m->head - tail, h;

	if (!model_tail_ok(m, tail) || used + model_need(m, L) > m->n) {
		if (m->lost != UINT32_MAX)
			m->lost++;
		return false;
	}
	h = m->head;
	if (m->lost) {
		h = model_place(m, h, 2, true);
		m->img[h & m->mask] = hdr_word(WATCH_TYPE_META, WATCH_META_LOSS_NOTIFICATION, 2);
		m->img[(h + 1) & m->mask] = m->lost; /* nr_lost, __reserved = 0 */
		h += 2;
	}
	h = model_place(m, h, L, true);
	memcpy(&m->img[h & m->mask], rec, L * SLOT);
	m->img[h & m->mask] = hdr_word(n.type, n.subtype, (n.info & ~0xffu) | L);
	m->head = h + L;
	m->lost = 0;
	return true;
}

/* The whole mapping must be what the model says (slot 1 holds head, tail). */
static void check_ring(struct __test_metadata *_metadata, const struct ring *r,
		       const struct model *m)
{
	uint32_t i;

	ASSERT_EQ(m->head, ring_head(r));
	if (r->slots[0] == m->img[0] &&
	    memcmp(r->slots + 2, m->img + 2, (r->n - 2) * SLOT) == 0)
		return;
	for (i = 0; i < r->n; i++) {
		if (i == 1 || r->slots[i] == m->img[i])
			continue;
		TH_LOG("slot %u (head %u): kernel wrote %016llx, design says %016llx",
		       i, m->head, (unsigned long long)r->slots[i],
		       (unsigned long long)m->img[i]);
		ASSERT_EQ(m->img[i], r->slots[i]);
	}
}

/*
 * Inject an L-slot record and check that the kernel did exactly what the
 * model does with the tail that is in the mapping now.  full: compare every
 * byte of the ring, else only head.  Returns whether it was delivered.
 */
static bool post_checked(struct __test_metadata *_metadata, struct ring *r,
			 struct model *m, uint32_t L, uint64_t seed, bool full)
{
	uint64_t rec[MAX_SLOTS];
	uint32_t tail = ring_tail(r);
	bool delivered;

	make_rec(rec, L, TEST_TYPE, seed & 0xff, (uint32_t)(seed >> 8) & 0xffff00u, seed);
	ASSERT_EQ(0, inject(r->fd, rec)) {
		TH_LOG("IOC_WATCH_QUEUE_INJECT(%u slots): %s", L, strerror(errno));
	}
	delivered = model_post(m, tail, rec, L);
	if (full)
		check_ring(_metadata, r, m);
	else
		ASSERT_EQ(m->head, ring_head(r));
	return delivered;
}

static void drain(struct ring *r, struct model *m)
{
	set_tail(r, m->head);
}

/*
 * The kernel's pending loss must be the model's, and placed where the model
 * is: after every record before its head.  Both are reset.
 */
static void check_take_loss(struct __test_metadata *_metadata, struct ring *r, struct model *m)
{
	uint32_t lost, head;

	ASSERT_EQ(0, take_loss_at(r->fd, &lost, &head));
	ASSERT_EQ(m->lost, lost);
	ASSERT_EQ(m->head, head);
	ASSERT_EQ(r->meta->head, head);
	m->lost = 0;
}

/*
 * Move head (draining as it goes) until the next record is appended at slot
 * index p (2 <= p < n), or just after an exact end (p == 0).
 */
static void advance_to(struct __test_metadata *_metadata, struct ring *r, struct model *m,
		       uint32_t p, uint64_t *seed)
{
	while ((m->head & m->mask) != p) {
		uint32_t idx = m->head & m->mask;
		uint32_t cur = idx == 0 ? 2 : idx, L;

		if (p == 0 || cur > p)
			L = r->n - cur;
		else
			L = p - cur;
		if (L > MAX_SLOTS)
			L = MAX_SLOTS;
		if (L == 0)
			break;
		ASSERT_TRUE(post_checked(_metadata, r, m, L, splitmix(seed), false));
		drain(r, m);
	}
	ASSERT_EQ(p, m->head & m->mask);
}

/* ---------------------------------------------------------------------------
 * Reading the ring as a consumer.
 */
struct rec {
	uint32_t type, subtype, info, len, idx;
	uint64_t d[MAX_SLOTS];
};

/*
 * Consume up to max records (skip records are passed over and not returned)
 * and advance tail past them.  Every record must be well formed.
 */
static int ring_consume(struct __test_metadata *_metadata, struct ring *r,
			struct rec *out, int max)
{
	uint32_t h = ring_head(r), t = ring_tail(r);
	int cnt = 0;

	ASSERT_LE(h - t, r->n);
	while (t != h && cnt < max) {
		uint32_t idx = t & r->mask;
		struct watch_notification n = word_hdr(r->slots[idx]);
		uint32_t L = n.info & WATCH_INFO_NR_SLOTS;

		ASSERT_NE(0, L) {
			TH_LOG("zero-length record at slot %u", idx);
		}
		ASSERT_LE(idx + L, r->n) {
			TH_LOG("record at slot %u of %u slots straddles the end", idx, L);
		}
		ASSERT_LE(L, h - t);
		ASSERT_EQ(0, n.info & 0xc0);
		if (!(n.type == WATCH_TYPE_META && n.subtype == WATCH_META_SKIP_NOTIFICATION)) {
			out[cnt].type = n.type;
			out[cnt].subtype = n.subtype;
			out[cnt].info = n.info;
			out[cnt].len = L;
			out[cnt].idx = idx;
			memcpy(out[cnt].d, &r->slots[idx], L * SLOT);
			cnt++;
		}
		t += L;
	}
	set_tail(r, t);
	return cnt;
}

/* ---------------------------------------------------------------------------
 * The default fixture: a 1-page ring (512 slots with 4K pages), mapped.
 */
FIXTURE(ring) {
	struct ring r;
	struct model m;
	struct rec *recs;
	uint64_t seed;
};

FIXTURE_SETUP(ring)
{
	self->recs = NULL;
	self->m.img = NULL;
	if (ring_make(_metadata, &self->r, 1) < 0)
		return;
	model_init(&self->m, self->r.n);
	self->recs = calloc(1024, sizeof(struct rec));
	self->seed = 0x5eed;
}

FIXTURE_TEARDOWN(ring)
{
	ring_free(&self->r);
	free(self->m.img);
	free(self->recs);
}

#define R	(&self->r)
#define M	(&self->m)
#define SEED	(splitmix(&self->seed))

/* Plain tests that need a longer timeout than the default. */
FIXTURE(slow) {
	int unused;
};

FIXTURE_SETUP(slow)
{
}

FIXTURE_TEARDOWN(slow)
{
}

/* ===========================================================================
 * Setup: open, IOC_WATCH_QUEUE_NR_PAGES, mmap.
 */

TEST(nr_pages_zero_fails_einval)
{
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	EXPECT_EQ(-1, nr_pages_ioctl(fd, 0));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
}

/*
 * Every value of @bad fails IOC_WATCH_QUEUE_NR_PAGES with EINVAL on one fd;
 * with @then_one, none of them sized the ring: 1 page is accepted after.
 */
static void nr_pages_fail_einval(struct __test_metadata *_metadata, const unsigned long *bad,
				 size_t n, bool then_one)
{
	int fd;
	size_t i;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	for (i = 0; i < n; i++) {
		EXPECT_EQ(-1, nr_pages_ioctl(fd, bad[i])) {
			TH_LOG("NR_PAGES(%#lx) was accepted", bad[i]);
		}
		EXPECT_EQ(EINVAL, errno);
	}
	if (then_one)
		EXPECT_EQ(0, nr_pages_ioctl(fd, 1));
	close(fd);
}

TEST(nr_pages_not_power_of_two_fails_einval)
{
	static const unsigned long bad[] = { 3, 5, 6, 7, 12, 17, 100, 255 };

	nr_pages_fail_einval(_metadata, bad, ARRAY_SIZE(bad), false);
}

TEST(nr_pages_huge_or_negative_fails_einval)
{
	static const unsigned long bad[] = {
		WATCH_QUEUE_RING_MAX_PAGES * 2, 1024, 1ul << 20, 1ul << 31, 1ul << 32,
		(1ul << 32) + 1, (1ul << 32) + 256, 1ul << 63, ~0ul, (unsigned long)-2,
		(unsigned long)-4096, (unsigned long)INT_MIN, (unsigned long)(long)INT_MIN,
		0x80000000ul, 0xffffffffful,
	};

	nr_pages_fail_einval(_metadata, bad, ARRAY_SIZE(bad), true);
}

TEST(nr_pages_accepts_every_power_of_two_up_to_max)
{
	unsigned long nr;

	for (nr = 1; nr <= WATCH_QUEUE_RING_MAX_PAGES; nr <<= 1) {
		struct ring r;

		if (ring_make(_metadata, &r, nr) < 0)
			return;
		EXPECT_EQ(0, ring_head(&r));
		EXPECT_EQ(0, ring_tail(&r));
		/* The last byte of the ring is mapped and zero. */
		EXPECT_EQ(0, peek(r.slots, r.size - 1));
		ring_free(&r);
	}
}

TEST(second_nr_pages_fails_ebusy)
{
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	ASSERT_EQ(0, nr_pages_ioctl(fd, 2));
	EXPECT_EQ(-1, nr_pages_ioctl(fd, 2));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-1, nr_pages_ioctl(fd, 4));
	EXPECT_EQ(EBUSY, errno);
	EXPECT_EQ(-1, nr_pages_ioctl(fd, 1));
	EXPECT_EQ(EBUSY, errno);
	close(fd);
}

TEST(mmap_before_sizing_fails_einval)
{
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	mmap_fails_einval(_metadata, fd, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	close(fd);
}

TEST(mmap_at_nonzero_offset_fails_einval)
{
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	ASSERT_EQ(0, nr_pages_ioctl(fd, 4));
	mmap_fails_einval(_metadata, fd, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED,
			  page_size());
	mmap_fails_einval(_metadata, fd, 3 * page_size(), PROT_READ | PROT_WRITE, MAP_SHARED,
			  page_size());
	close(fd);
}

TEST(mmap_longer_than_ring_fails_einval)
{
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	ASSERT_EQ(0, nr_pages_ioctl(fd, 2));
	mmap_fails_einval(_metadata, fd, 3 * page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	mmap_fails_einval(_metadata, fd, 4 * page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	close(fd);
}

TEST(mmap_private_fails_einval)
{
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	ASSERT_EQ(0, nr_pages_ioctl(fd, 1));
	mmap_fails_einval(_metadata, fd, page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
	mmap_fails_einval(_metadata, fd, page_size(), PROT_READ, MAP_PRIVATE, 0);
	close(fd);
}

TEST(mmap_read_only_fails_einval)
{
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	ASSERT_EQ(0, nr_pages_ioctl(fd, 1));
	mmap_fails_einval(_metadata, fd, page_size(), PROT_READ, MAP_SHARED, 0);
	close(fd);
}

TEST(mmap_shorter_than_ring_sees_the_same_pages)
{
	struct ring r;
	uint64_t *first;

	if (ring_make(_metadata, &r, 4) < 0)
		return;
	first = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	ASSERT_NE(MAP_FAILED, first);
	set_tail(&r, 0x1234);
	EXPECT_EQ(0x1234, ((struct watch_queue_ring_meta *)first)->tail);
	EXPECT_EQ(0, memcmp(first, r.slots, page_size()));
	munmap(first, page_size());
	ring_free(&r);
}

TEST(two_mmaps_of_one_fd_share_pages_and_two_fds_do_not)
{
	struct ring a, b;
	uint64_t *a2;

	if (ring_make(_metadata, &a, 2) < 0)
		return;
	ASSERT_EQ(0, ring_make(_metadata, &b, 2));
	a2 = mmap(NULL, a.size, PROT_READ | PROT_WRITE, MAP_SHARED, a.fd, 0);
	ASSERT_NE(MAP_FAILED, a2);
	a.slots[a.n - 1] = 0x1122334455667788ull;
	a.slots[3] = 0xabcdef;
	EXPECT_EQ(0x1122334455667788ull, a2[a.n - 1]);
	EXPECT_EQ(0xabcdef, a2[3]);
	EXPECT_EQ(0, b.slots[b.n - 1]);
	EXPECT_EQ(0, b.slots[3]);
	munmap(a2, a.size);
	ring_free(&a);
	ring_free(&b);
}

TEST(mprotect_adding_exec_fails)
{
	struct ring r;

	if (ring_make(_metadata, &r, 1) < 0)
		return;
	EXPECT_EQ(-1, mprotect(r.slots, r.size, PROT_READ | PROT_WRITE | PROT_EXEC));
	EXPECT_EQ(EACCES, errno);
	ring_free(&r);
}

TEST(mremap_cannot_grow_the_mapping)
{
	struct ring r;
	void *p;

	if (ring_make(_metadata, &r, 2) < 0)
		return;
	EXPECT_EQ(MAP_FAILED, mremap(r.slots, r.size, 2 * r.size, MREMAP_MAYMOVE));
	EXPECT_EQ(MAP_FAILED, mremap(r.slots, r.size, 2 * r.size, 0));
	/* Shrink, then try to grow back: still refused. */
	p = mremap(r.slots, r.size, page_size(), 0);
	ASSERT_EQ((void *)r.slots, p);
	EXPECT_EQ(MAP_FAILED, mremap(r.slots, page_size(), r.size, MREMAP_MAYMOVE));
	EXPECT_EQ(MAP_FAILED, mremap(r.slots, page_size(), r.size, 0));
	/* What's left is still the ring. */
	EXPECT_EQ(hdr_word(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 2), r.slots[0]);
	munmap(r.slots, page_size());
	r.slots = NULL;
	ring_free(&r);
}

/* Post records into a 4-page ring until every page holds some. */
static void fill_every_page(struct __test_metadata *_metadata, int fd, uint32_t n)
{
	uint64_t rec[MAX_SLOTS];
	uint32_t i;

	for (i = 0; i < (n - 2) / MAX_SLOTS; i++) {
		make_rec(rec, MAX_SLOTS, TEST_TYPE, i & 0xff, 0, i + 1);
		ASSERT_EQ(0, inject(fd, rec));
	}
}

TEST(munmap_first_page_then_rest_of_mapping_keeps_working)
{
	struct ring r;
	uint64_t *full;
	size_t ps = page_size();

	if (inject_ring_make(_metadata, &r, 4) < 0)
		return;
	ASSERT_EQ(0, munmap(r.slots, ps));
	full = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
	ASSERT_NE(MAP_FAILED, full);
	fill_every_page(_metadata, r.fd, r.n);
	EXPECT_NE(0, ((struct watch_queue_ring_meta *)full)->head);
	/* Pages 1..3 of the split mapping are the ring's pages. */
	EXPECT_EQ(0, memcmp((char *)r.slots + ps, (char *)full + ps, r.size - ps));
	ASSERT_EQ(0, munmap(full, r.size));
	/* Write to and read back the remains after the other mapping and the fd are gone. */
	close(r.fd);
	r.fd = -1;
	memset((char *)r.slots + ps, 0x5a, r.size - ps);
	EXPECT_EQ(0x5a, peek(r.slots, r.size - 1));
	ASSERT_EQ(0, munmap((char *)r.slots + ps, r.size - ps));
	r.slots = NULL;
}

TEST(munmap_last_page_then_rest_of_mapping_keeps_working)
{
	struct ring r;
	size_t ps = page_size();
	uint32_t h;

	if (inject_ring_make(_metadata, &r, 4) < 0)
		return;
	ASSERT_EQ(0, munmap((char *)r.slots + 3 * ps, ps));
	fill_every_page(_metadata, r.fd, r.n);
	h = ring_head(&r);
	EXPECT_EQ(2 + ((r.n - 2) / MAX_SLOTS) * MAX_SLOTS, h);
	/* Consume it all through the remaining mapping. */
	set_tail(&r, h);
	{
		uint64_t rec[MAX_SLOTS];

		make_rec(rec, 1, TEST_TYPE, 1, 0, 7);
		ASSERT_EQ(0, inject(r.fd, rec));
		EXPECT_EQ(h + 1, ring_head(&r));
	}
	close(r.fd);
	r.fd = -1;
	memset(r.slots, 0xa5, 3 * ps);
	EXPECT_EQ(0xa5, peek(r.slots, 3 * ps - 1));
	ASSERT_EQ(0, munmap(r.slots, 3 * ps));
	r.slots = NULL;
}

TEST(mprotect_read_only_keeps_ring_readable_and_writes_fault)
{
	struct ring r;
	uint64_t rec[1];
	pid_t pid;
	int status;

	if (inject_ring_make(_metadata, &r, 1) < 0)
		return;
	ASSERT_EQ(0, mprotect(r.slots, r.size, PROT_READ));
	make_rec(rec, 1, TEST_TYPE, 3, 0, 9);
	ASSERT_EQ(0, inject(r.fd, rec));
	EXPECT_EQ(3, ring_head(&r));
	EXPECT_EQ(rec[0], r.slots[2]);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		set_tail(&r, 3);	/* must fault */
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV) {
		TH_LOG("writing tail through a PROT_READ mapping did not fault (status %#x)",
		       status);
	}
	EXPECT_EQ(0, ring_tail(&r));

	ASSERT_EQ(0, mprotect(r.slots, r.size, PROT_READ | PROT_WRITE));
	set_tail(&r, 3);
	ASSERT_EQ(0, inject(r.fd, rec));
	EXPECT_EQ(4, ring_head(&r));
	ring_free(&r);
}

/* Child side of the fork tests: report through the exit status. */
#define CHILD_CHECK(cond, code) do { if (!(cond)) _exit(code); } while (0)

TEST(fork_parent_closes_first_child_keeps_using_mapping_and_fd)
{
	struct ring r;
	int go[2], status;
	pid_t pid;
	char c;

	if (inject_ring_make(_metadata, &r, 2) < 0)
		return;
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		uint64_t rec[4];
		uint32_t h;

		close(go[1]);
		CHILD_CHECK(read(go[0], &c, 1) == 1, 10);
		/* Parent has closed its fd and unmapped by now. */
		h = ring_head(&r);
		set_tail(&r, h);
		make_rec(rec, 4, TEST_TYPE, 4, 0, 44);
		CHILD_CHECK(inject(r.fd, rec) == 0, 11);
		CHILD_CHECK(ring_head(&r) == h + 4 + ((h & r.mask) == 0 ? 2 : 0), 12);
		memset(r.slots + 2, 0x77, r.size - 16);
		close(r.fd);
		CHILD_CHECK(r.slots[r.n - 1] == 0x7777777777777777ull, 13);
		munmap(r.slots, r.size);
		_exit(0);
	}
	close(go[0]);
	fill_every_page(_metadata, r.fd, r.n);
	ring_free(&r);
	ASSERT_EQ(1, write(go[1], "x", 1));
	close(go[1]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child failed: status %#x (exit code = failing check)", status);
	}
}

TEST(fork_child_closes_and_exits_first_parent_keeps_using_ring)
{
	struct ring r;
	uint64_t rec[2];
	int status;
	pid_t pid;

	if (inject_ring_make(_metadata, &r, 2) < 0)
		return;
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		r.slots[5] = 0x5555;	/* shared pages: the parent sees it */
		munmap(r.slots, r.size);
		close(r.fd);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(0x5555, r.slots[5]);
	make_rec(rec, 2, TEST_TYPE, 1, 0, 3);
	ASSERT_EQ(0, inject(r.fd, rec));
	EXPECT_EQ(4, ring_head(&r));
	EXPECT_EQ(0, memcmp(&r.slots[2], rec, sizeof(rec)));
	ring_free(&r);
}

TEST(fork_both_close_fd_keep_mapping_then_unmap_in_turn)
{
	struct ring r;
	int go[2], back[2], status;
	pid_t pid;
	char c;

	if (ring_make(_metadata, &r, 1) < 0)
		return;
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(back));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(r.fd);
		CHILD_CHECK(read(go[0], &c, 1) == 1, 10);
		/* Parent closed its fd too: only mappings hold the ring. */
		CHILD_CHECK(r.slots[7] == 0x7777, 11);
		r.slots[8] = 0x8888;
		CHILD_CHECK(write(back[1], "y", 1) == 1, 12);
		CHILD_CHECK(read(go[0], &c, 1) == 1, 13);
		/* Parent unmapped: ours still works. */
		r.slots[9] = 0x9999;
		CHILD_CHECK(r.slots[8] == 0x8888, 14);
		munmap(r.slots, r.size);
		_exit(0);
	}
	close(r.fd);
	r.fd = -1;
	r.slots[7] = 0x7777;
	ASSERT_EQ(1, write(go[1], "x", 1));
	ASSERT_EQ(1, read(back[0], &c, 1));
	EXPECT_EQ(0x8888, r.slots[8]);
	ASSERT_EQ(0, munmap(r.slots, r.size));
	r.slots = NULL;
	ASSERT_EQ(1, write(go[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child failed: status %#x (exit code = failing check)", status);
	}
}

TEST(close_fd_while_mapped_then_touch_mapping_then_post_elsewhere)
{
	struct ring a, b;
	uint64_t rec[3];
	size_t i;

	if (inject_ring_make(_metadata, &a, 2) < 0)
		return;
	ASSERT_EQ(0, ring_make(_metadata, &b, 2));
	fill_every_page(_metadata, a.fd, a.n);
	close(a.fd);
	a.fd = -1;
	for (i = 0; i < a.size; i++)
		peek(a.slots, i);
	memset(a.slots, 0xee, a.size);
	for (i = 0; i < a.n; i++)
		EXPECT_EQ(0xeeeeeeeeeeeeeeeeull, a.slots[i]);
	make_rec(rec, 3, TEST_TYPE, 2, 0, 5);
	ASSERT_EQ(0, inject(b.fd, rec));
	EXPECT_EQ(5, ring_head(&b));
	EXPECT_EQ(0, memcmp(&b.slots[2], rec, sizeof(rec)));
	ring_free(&a);
	/* And after the last mapping went, b still works. */
	set_tail(&b, 5);
	ASSERT_EQ(0, inject(b.fd, rec));
	EXPECT_EQ(8, ring_head(&b));
	ring_free(&b);
}

/* ===========================================================================
 * Layout.
 */

TEST_F(ring, fresh_ring_is_meta_skip_entry_then_zeroes)
{
	struct watch_notification n = word_hdr(self->r.slots[0]);
	uint32_t i;

	EXPECT_EQ(WATCH_TYPE_META, (uint32_t)n.type);
	EXPECT_EQ(WATCH_META_SKIP_NOTIFICATION, (uint32_t)n.subtype);
	EXPECT_EQ(2, n.info);
	EXPECT_EQ(0, R->meta->head);
	EXPECT_EQ(0, R->meta->tail);
	EXPECT_EQ(0, R->slots[1]);
	for (i = 2; i < R->n; i++)
		ASSERT_EQ(0, R->slots[i]);
}

/*
 * INJECT reads the record's own length, not the 504 bytes its ioctl number
 * encodes: a 1-slot record just before an unmapped page goes in, a 63-slot
 * record that runs into that page is EFAULT and posts nothing.
 */
TEST_F(ring, inject_reads_only_the_records_own_slots)
{
	size_t page = page_size();
	unsigned char *buf;
	uint32_t lost;
	uint64_t *rec;

	if (!need_inject(_metadata))
		return;
	buf = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	ASSERT_EQ(0, munmap(buf + page, page));

	rec = (uint64_t *)(buf + page - 8);
	make_rec(rec, 1, TEST_TYPE, 3, 0, 1);
	EXPECT_EQ(0, inject(R->fd, rec));
	EXPECT_EQ(3, R->meta->head);

	rec = (uint64_t *)(buf + page - 62 * 8);
	make_rec(rec, 62, TEST_TYPE, 3, 0, 1);
	rec[0] = hdr_word(TEST_TYPE, 3, 63);	/* claims one slot more */
	EXPECT_EQ(-1, inject(R->fd, rec));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(3, R->meta->head);
	ASSERT_EQ(0, take_loss(R->fd, &lost));
	EXPECT_EQ(0, lost);
	munmap(buf, page);
}

TEST_F(ring, first_record_lands_at_slot_2_and_head_counts_the_meta_entry)
{
	uint64_t rec[5];

	if (!need_inject(_metadata))
		return;
	make_rec(rec, 5, TEST_TYPE, 9, 0x00420000, 77);
	ASSERT_EQ(0, inject(R->fd, rec));
	EXPECT_EQ(7, R->meta->head);
	EXPECT_EQ(0, memcmp(&R->slots[2], rec, sizeof(rec)));
	EXPECT_EQ(0, R->slots[7]);
	EXPECT_EQ(hdr_word(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 2), R->slots[0]);
}

/* ===========================================================================
 * Placement, skip records, wrapping (injection; byte for byte vs the model).
 */

TEST_F_TIMEOUT(ring, every_length_at_every_position_near_the_end_matches_design, 120)
{
	uint32_t L, p, end;

	if (!need_inject(_metadata))
		return;
	for (L = 1; L <= MAX_SLOTS; L++) {
		for (p = R->n - 64; p < R->n; p++) {
			advance_to(_metadata, R, M, p, &self->seed);
			ASSERT_TRUE(post_checked(_metadata, R, M, L, SEED, true)) {
				TH_LOG("%u-slot record at slot %u was dropped", L, p);
			}
			/* Where it landed: in place, or at slot 2 after a skip. */
			end = p + L <= R->n ? p + L : 2 + L;
			ASSERT_EQ(end, ((M->head - 1) & M->mask) + 1);
			drain(R, M);
		}
	}
}

TEST_F(ring, skip_record_covers_rest_of_ring_and_writes_only_its_header)
{
	uint32_t p = R->n - 5, i;
	uint64_t before[4];
	uint32_t h0;

	if (!need_inject(_metadata))
		return;
	/* First lap: records over the last slots so they hold non-zero bytes. */
	advance_to(_metadata, R, M, R->n - 10, &self->seed);
	ASSERT_TRUE(post_checked(_metadata, R, M, 10, SEED, true));
	drain(R, M);
	advance_to(_metadata, R, M, p, &self->seed);
	memcpy(before, &R->slots[p + 1], sizeof(before));
	for (i = 0; i < 4; i++)
		ASSERT_NE(0, before[i]);
	h0 = M->head;
	ASSERT_TRUE(post_checked(_metadata, R, M, 6, SEED, true));
	EXPECT_EQ(hdr_word(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 5), R->slots[p]);
	EXPECT_EQ(0, memcmp(before, &R->slots[p + 1], sizeof(before)));
	EXPECT_EQ(h0 + 5 + 2 + 6, ring_head(R));
}

TEST_F(ring, meta_header_is_rewritten_on_every_wrap)
{
	int lap;

	if (!need_inject(_metadata))
		return;
	for (lap = 0; lap < 3; lap++) {
		/* The consumer scribbles on slot 0; the kernel restores it at the wrap. */
		R->slots[0] = 0xffffffffffffffffull;
		M->img[0] = R->slots[0];
		advance_to(_metadata, R, M, R->n - 3, &self->seed);
		ASSERT_TRUE(post_checked(_metadata, R, M, 4, SEED, true));
		EXPECT_EQ(hdr_word(WATCH_TYPE_META, WATCH_META_SKIP_NOTIFICATION, 2), R->slots[0]);
		drain(R, M);
	}
}

TEST_F(ring, injected_info_bits_6_and_7_never_reach_the_ring)
{
	uint64_t rec[3];
	struct watch_notification n;
	long ret;

	if (!need_inject(_metadata))
		return;
	make_rec(rec, 3, TEST_TYPE, 1, 0x12345600, 1);
	n = word_hdr(rec[0]);
	n.info |= 0xc0;			/* length still 3: info & 0x3f */
	memcpy(rec, &n, sizeof(n));
	ret = inject(R->fd, rec);
	if (ret < 0) {
		/* Refusing it is fine too. */
		EXPECT_EQ(EINVAL, errno);
		EXPECT_EQ(0, ring_head(R));
		return;
	}
	ASSERT_EQ(5, ring_head(R));
	n = word_hdr(R->slots[2]);
	EXPECT_EQ(0, n.info & 0xc0) {
		TH_LOG("ring record info %#x: bits 6..7 must be 0 in the ring", n.info);
	}
	EXPECT_EQ(3, n.info & WATCH_INFO_NR_SLOTS);
	EXPECT_EQ(0x12345600, n.info & ~0xffu);
}

TEST_F(ring, watch_id_and_type_info_bits_pass_through)
{
	uint64_t rec[2];
	struct watch_notification n;

	if (!need_inject(_metadata))
		return;
	make_rec(rec, 2, TEST_TYPE, 0xfe, 0xfedcba00, 3);
	ASSERT_EQ(0, inject(R->fd, rec));
	n = word_hdr(R->slots[2]);
	EXPECT_EQ(TEST_TYPE, (uint32_t)n.type);
	EXPECT_EQ(0xfe, (uint32_t)n.subtype);
	EXPECT_EQ(0xfedcba02, n.info);
	EXPECT_EQ(rec[1], R->slots[3]);
}

TEST_F(ring, inject_zero_slots_fails_einval)
{
	uint64_t rec[1];

	if (!need_inject(_metadata))
		return;
	rec[0] = hdr_word(TEST_TYPE, 0, 0x100);
	EXPECT_EQ(-1, inject(R->fd, rec));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(0, ring_head(R));
}

TEST_F(ring, inject_meta_type_fails_einval)
{
	uint64_t rec[2];
	uint32_t st;

	if (!need_inject(_metadata))
		return;
	for (st = 0; st < 4; st++) {
		rec[0] = hdr_word(WATCH_TYPE_META, st, 2);
		rec[1] = 5;
		EXPECT_EQ(-1, inject(R->fd, rec));
		EXPECT_EQ(EINVAL, errno);
	}
	EXPECT_EQ(0, ring_head(R));
}

TEST_F(ring, inject_from_bad_address_fails_efault)
{
	uint64_t *page;
	size_t ps = page_size();

	if (!need_inject(_metadata))
		return;
	EXPECT_EQ(-1, ioctl(R->fd, IOC_WATCH_QUEUE_INJECT, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	/* Header readable, body runs into an unmapped page. */
	page = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, page);
	ASSERT_EQ(0, munmap((char *)page + ps, ps));
	page[ps / 8 - 1] = hdr_word(TEST_TYPE, 0, 4);
	EXPECT_EQ(-1, inject(R->fd, &page[ps / 8 - 1]));
	EXPECT_EQ(EFAULT, errno);
	munmap(page, ps);
	EXPECT_EQ(0, ring_head(R));
}

/* ===========================================================================
 * Full ring, the exact-end wedge.
 */

TEST_F(ring, exactly_full_ring_is_accepted_and_one_more_slot_is_lost)
{
	static const uint32_t starts[] = { 0, 3, 4, 100, 256, 448, 509, 510, 511 };
	unsigned int s;

	if (!need_inject(_metadata))
		return;
	for (s = 0; s < ARRAY_SIZE(starts); s++) {
		uint32_t p = starts[s] & M->mask, t;
		int k = 0;

		if (p)
			advance_to(_metadata, R, M, p, &self->seed);
		t = M->head;
		/* Fill with 1-slot records, no consuming. */
		while (model_need(M, 1) + (M->head - t) <= M->n) {
			ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, false));
			k++;
		}
		check_ring(_metadata, R, M);
		ASSERT_EQ(M->n, M->head - t) {
			TH_LOG("start %u: ring holds %u slots after %d records, not %u",
			       p, M->head - t, k, M->n);
		}
		/* One more slot does not fit. */
		ASSERT_FALSE(post_checked(_metadata, R, M, 1, SEED, true));
		check_take_loss(_metadata, R, M);
		drain(R, M);
	}
}

TEST_F(ring, ring_full_up_to_the_meta_entry_drops_the_next_record)
{
	uint32_t t;

	if (!need_inject(_metadata))
		return;
	/* tail at slot 2: after the last slot only the meta entry is free. */
	advance_to(_metadata, R, M, 0, &self->seed);
	t = M->head + 2;
	ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, false));
	set_tail(R, t);		/* consumed the meta entry only */
	while ((M->head & M->mask) != 0)
		ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, false));
	ASSERT_EQ(M->n - 2, M->head - t);
	ASSERT_FALSE(post_checked(_metadata, R, M, 1, SEED, true));
	check_take_loss(_metadata, R, M);
}

TEST_F(ring, record_ending_exactly_at_ring_end_then_drain_then_post_delivers)
{
	uint32_t L, L2;

	if (!need_inject(_metadata))
		return;
	for (L = 1; L <= MAX_SLOTS; L++) {
		advance_to(_metadata, R, M, R->n - L, &self->seed);
		ASSERT_TRUE(post_checked(_metadata, R, M, L, SEED, true));
		ASSERT_EQ(0, M->head & M->mask) {
			TH_LOG("%u-slot record at slot %u did not end at the ring end",
			       L, R->n - L);
		}
		/* Consumer still behind by that record: a post must fit. */
		L2 = 1 + (L * 7) % MAX_SLOTS;
		ASSERT_TRUE(post_checked(_metadata, R, M, L2, SEED, true));
		/* Catch up exactly at the end, then post again. */
		set_tail(R, M->head);
		advance_to(_metadata, R, M, R->n - L, &self->seed);
		ASSERT_TRUE(post_checked(_metadata, R, M, L, SEED, true));
		drain(R, M);		/* head == tail at idx 0 */
		ASSERT_TRUE(post_checked(_metadata, R, M, L2, SEED, true)) {
			TH_LOG("wedged: %u-slot post after draining at the exact end was dropped",
			       L2);
		}
		ASSERT_EQ(2 + L2, M->head & M->mask);
		drain(R, M);
	}
}

/* ===========================================================================
 * Loss.
 */

TEST_F(ring, loss_record_with_exact_count_precedes_next_delivered_record)
{
	int i, n;
	uint32_t lost;
	struct rec *recs = self->recs;
	struct watch_notification_loss loss;

	if (!need_inject(_metadata))
		return;
	while (post_checked(_metadata, R, M, 50, SEED, false))
		;
	/* Only 10 slots free: loss record + 50 slots never fit. */
	for (i = 0; i < 4; i++)
		ASSERT_FALSE(post_checked(_metadata, R, M, 50, SEED, false));
	n = ring_consume(_metadata, R, recs, 1024);
	EXPECT_EQ(10, n);	/* 510 slots / 50 */
	ASSERT_TRUE(post_checked(_metadata, R, M, 3, SEED, true));
	n = ring_consume(_metadata, R, recs, 1024);
	ASSERT_EQ(2, n);
	memcpy(&loss, recs[0].d, sizeof(loss));
	EXPECT_EQ(WATCH_TYPE_META, recs[0].type);
	EXPECT_EQ(WATCH_META_LOSS_NOTIFICATION, recs[0].subtype);
	EXPECT_EQ(2, recs[0].info);
	EXPECT_EQ(5, loss.nr_lost);
	EXPECT_EQ(0, loss.__reserved);
	EXPECT_EQ(TEST_TYPE, recs[1].type);
	EXPECT_EQ(3, recs[1].len);
	ASSERT_EQ(0, take_loss(R->fd, &lost));
	EXPECT_EQ(0, lost);
}

TEST_F(ring, take_loss_reads_and_resets_the_pending_count)
{
	uint32_t lost = 99;
	int i;

	if (!need_inject(_metadata))
		return;
	ASSERT_EQ(0, take_loss(R->fd, &lost));
	EXPECT_EQ(0, lost);
	while (post_checked(_metadata, R, M, MAX_SLOTS, SEED, false))
		;
	for (i = 0; i < 6; i++)
		ASSERT_FALSE(post_checked(_metadata, R, M, MAX_SLOTS, SEED, false));
	ASSERT_EQ(0, take_loss(R->fd, &lost));
	EXPECT_EQ(7, lost);
	ASSERT_EQ(0, take_loss(R->fd, &lost));
	EXPECT_EQ(0, lost);
	/* Taken: the next delivered record has no loss record before it. */
	M->lost = 0;
	drain(R, M);
	ASSERT_TRUE(post_checked(_metadata, R, M, 2, SEED, true));
	EXPECT_EQ(TEST_TYPE, (uint32_t)word_hdr(R->slots[(M->head - 2) & M->mask]).type);
}

TEST(take_loss_on_unsized_ring_returns_zero_and_counts_injected_records)
{
	uint64_t rec[1];
	uint32_t lost = 99;
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	ASSERT_EQ(0, take_loss(fd, &lost));
	EXPECT_EQ(0, lost);
	if (inject_probe()) {
		make_rec(rec, 1, TEST_TYPE, 0, 0, 1);
		ASSERT_EQ(0, inject(fd, rec));
		ASSERT_EQ(0, inject(fd, rec));
		ASSERT_EQ(0, take_loss(fd, &lost));
		EXPECT_EQ(2, lost);
	}
	close(fd);
}

TEST_F(ring, take_loss_to_bad_address_fails_efault_and_keeps_the_count)
{
	uint32_t lost;

	if (!need_inject(_metadata))
		return;
	while (post_checked(_metadata, R, M, MAX_SLOTS, SEED, false))
		;
	ASSERT_FALSE(post_checked(_metadata, R, M, MAX_SLOTS, SEED, false));
	ASSERT_EQ(2, M->lost);
	EXPECT_EQ(-1, ioctl(R->fd, IOC_WATCH_QUEUE_TAKE_LOSS, (void *)8));
	EXPECT_EQ(EFAULT, errno);
	ASSERT_EQ(0, take_loss(R->fd, &lost));
	EXPECT_EQ(2, lost);
}

TEST_F(ring, record_is_dropped_when_loss_record_and_record_do_not_both_fit)
{
	uint32_t t;

	if (!need_inject(_metadata))
		return;
	/* 3 free slots: room for a 3-slot record alone, not for loss + record. */
	t = M->head;
	while (M->head - t + model_need(M, 1) <= M->n - 3)
		ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, false));
	ASSERT_EQ(M->n - 3, M->head - t);
	ASSERT_FALSE(post_checked(_metadata, R, M, 4, SEED, false));	/* lost: 1 */
	ASSERT_EQ(1, M->lost);
	ASSERT_FALSE(post_checked(_metadata, R, M, 3, SEED, true));	/* 2 + 3 > 3 */
	ASSERT_EQ(2, M->lost);
	ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, true));	/* 2 + 1 fits */
	ASSERT_EQ(0, M->lost);
	check_take_loss(_metadata, R, M);
}

/* Count @n consumed records: data records, and the losses the loss records report. */
static void tally_recs(struct __test_metadata *_metadata, const struct rec *recs, int n,
		       uint64_t *delivered, uint64_t *reported)
{
	int j;

	for (j = 0; j < n; j++) {
		if (recs[j].type == WATCH_TYPE_META) {
			ASSERT_EQ(WATCH_META_LOSS_NOTIFICATION, recs[j].subtype);
			*reported += (uint32_t)recs[j].d[1];
		} else {
			(*delivered)++;
		}
	}
}

TEST_F_TIMEOUT(ring, loss_counts_exact_under_overflow_at_every_wrap_position, 120)
{
	uint32_t p;
	struct rec *recs = self->recs;

	if (!need_inject(_metadata))
		return;
	for (p = R->n - 70; p <= R->n; p++) {
		uint64_t posted = 0, delivered = 0, reported = 0;
		uint32_t lost;
		int i, n;

		advance_to(_metadata, R, M, p & M->mask, &self->seed);
		check_take_loss(_metadata, R, M);
		for (i = 0; i < 40; i++) {
			uint64_t x = SEED;
			uint32_t L = 1 + x % MAX_SLOTS;

			post_checked(_metadata, R, M, L, x >> 8, true);
			posted++;
			if ((x >> 32) % 4 == 0) {
				/* Consume a few records. */
				n = ring_consume(_metadata, R, recs, 1 + (x >> 40) % 4);
				tally_recs(_metadata, recs, n, &delivered, &reported);
			}
		}
		n = ring_consume(_metadata, R, recs, 1024);
		tally_recs(_metadata, recs, n, &delivered, &reported);
		ASSERT_EQ(0, take_loss(R->fd, &lost));
		ASSERT_EQ(M->lost, lost);
		M->lost = 0;
		ASSERT_EQ(posted, delivered + reported + lost) {
			TH_LOG("start %u: posted %llu, got %llu + loss records %llu + TAKE_LOSS %u",
			       p, (unsigned long long)posted, (unsigned long long)delivered,
			       (unsigned long long)reported, lost);
		}
		ASSERT_EQ(M->head, ring_tail(R));
	}
}

/* ===========================================================================
 * The consumer's tail can't be trusted.
 */

/* With this tail, a post must write nothing at all and be counted lost. */
static void expect_no_room(struct __test_metadata *_metadata, struct ring *r,
			   struct model *m, uint32_t tail, uint32_t L)
{
	uint64_t *snap = malloc(r->size);
	uint32_t lost;

	ASSERT_NE(NULL, snap);
	set_tail(r, tail);
	memcpy(snap, r->slots, r->size);
	ASSERT_FALSE(post_checked(_metadata, r, m, L, 1, true)) {
		TH_LOG("tail %u with head %u: record delivered", tail, m->head);
	}
	EXPECT_EQ(0, memcmp(snap, r->slots, r->size));
	ASSERT_EQ(0, take_loss(r->fd, &lost));
	EXPECT_EQ(1, lost);
	m->lost = 0;
	free(snap);
}

TEST_F(ring, tail_ahead_of_head_leaves_no_room)
{
	static const uint32_t ahead[] = { 1, 2, 3, 8, 511, 512, 513, 0x7fffffff, 0x80000000,
					  0xfffffdff, 0xfffffe00 };
	unsigned int i;

	if (!need_inject(_metadata))
		return;
	advance_to(_metadata, R, M, 100, &self->seed);
	for (i = 0; i < ARRAY_SIZE(ahead); i++)
		expect_no_room(_metadata, R, M, M->head + ahead[i], 1);
	drain(R, M);
	ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, true));
}

TEST_F(ring, tail_more_than_a_ring_behind_leaves_no_room)
{
	static const uint32_t behind[] = { 513, 514, 600, 1024, 0x7fffffff, 0x80000001 };
	unsigned int i;

	if (!need_inject(_metadata))
		return;
	advance_to(_metadata, R, M, 100, &self->seed);
	advance_to(_metadata, R, M, 50, &self->seed);	/* second lap: head > 512 */
	for (i = 0; i < ARRAY_SIZE(behind); i++)
		expect_no_room(_metadata, R, M, M->head - behind[i], 1);
	drain(R, M);
	ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, true));
}

TEST_F(ring, tail_exactly_a_ring_behind_is_a_full_ring)
{
	if (!need_inject(_metadata))
		return;
	advance_to(_metadata, R, M, 100, &self->seed);
	advance_to(_metadata, R, M, 40, &self->seed);
	expect_no_room(_metadata, R, M, M->head - M->n, 1);
	set_tail(R, M->head - M->n + 40);	/* consumed 40 slots: room again */
	ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, true));
	check_take_loss(_metadata, R, M);
}

TEST_F(ring, tail_in_the_middle_of_the_meta_entry_leaves_no_room)
{
	if (!need_inject(_metadata))
		return;
	advance_to(_metadata, R, M, 100, &self->seed);
	advance_to(_metadata, R, M, 0, &self->seed);
	advance_to(_metadata, R, M, 20, &self->seed);
	/* tail at slot 1 of this lap, 19 slots behind head: otherwise plenty of room. */
	expect_no_room(_metadata, R, M, M->head - 19, 1);
	/* Further along: slot 1 of this lap, 299 slots behind head. */
	drain(R, M);
	advance_to(_metadata, R, M, 300, &self->seed);
	expect_no_room(_metadata, R, M, (M->head & ~M->mask) + 1, 1);
	expect_no_room(_metadata, R, M, (M->head & ~M->mask) + 1, MAX_SLOTS);
	drain(R, M);
	ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, true));
}

TEST_F_TIMEOUT(ring, every_tail_value_near_head_follows_the_room_rule, 120)
{
	static const uint32_t pos[] = { 0, 3, 100, 448, 449, 450, 500, 509, 510, 511 };
	static const uint32_t lens[] = { 1, 2, 63 };
	unsigned int li, k = 0;
	int32_t d;

	if (!need_inject(_metadata))
		return;
	/* Get past the first lap so tails behind head are plain numbers. */
	advance_to(_metadata, R, M, 200, &self->seed);
	advance_to(_metadata, R, M, 100, &self->seed);
	for (li = 0; li < 3; li++) {
		for (d = -70; d <= (int32_t)R->n + 70; d++, k++) {
			uint32_t t;

			advance_to(_metadata, R, M, pos[k % 10], &self->seed);
			t = M->head - (uint32_t)d;
			set_tail(R, t);
			/* Model and kernel must agree on delivered or not, byte for byte. */
			post_checked(_metadata, R, M, lens[li], SEED, true);
			check_take_loss(_metadata, R, M);
			drain(R, M);
		}
	}
}

/* ===========================================================================
 * Filters.
 */

/* Set a filter of the first nr_copy entries of f, claiming nr of them. */
static int set_filter_claim(int fd, const struct watch_notification_type_filter *f,
			    uint32_t nr_copy, uint32_t nr, uint32_t reserved)
{
	struct watch_notification_filter *wf;
	int ret;

	wf = calloc(1, sizeof(*wf) + (nr_copy + 1) * sizeof(*f));
	if (!wf)
		return -2;
	wf->nr_filters = nr;
	wf->__reserved = reserved;
	memcpy(wf->filters, f, nr_copy * sizeof(*f));
	ret = ioctl(fd, IOC_WATCH_QUEUE_SET_FILTER, wf);
	free(wf);
	return ret;
}

static int set_filter(int fd, const struct watch_notification_type_filter *f, uint32_t nr,
		      uint32_t reserved)
{
	return set_filter_claim(fd, f, nr, nr, reserved);
}

static void sel(struct watch_notification_type_filter *f, unsigned int subtype)
{
	f->subtype_filter[subtype / 32] |= 1u << (subtype % 32);
}

/* Inject one 1-slot record of each subtype 0..255 of @type. */
static void inject_all_subtypes(struct __test_metadata *_metadata, int fd, uint32_t type)
{
	uint64_t rec[1];
	uint32_t st;

	for (st = 0; st < 256; st++) {
		make_rec(rec, 1, type, st, 0, st + 1);
		ASSERT_EQ(0, inject(fd, rec));
	}
}

TEST_F(ring, filter_passes_only_selected_subtypes_including_those_at_32_and_above)
{
	static const unsigned int want[] = { 0, 31, 32, 33, 63, 64, 100, 127, 128, 200, 254, 255 };
	struct watch_notification_type_filter f = { .type = WATCH_TYPE_KEY_NOTIFY };
	unsigned int i;
	uint32_t lost;
	int n;

	if (!need_inject(_metadata))
		return;
	for (i = 0; i < ARRAY_SIZE(want); i++)
		sel(&f, want[i]);
	ASSERT_EQ(0, set_filter(R->fd, &f, 1, 0));
	inject_all_subtypes(_metadata, R->fd, WATCH_TYPE_KEY_NOTIFY);
	inject_all_subtypes(_metadata, R->fd, TEST_TYPE);	/* type not in the filter */
	n = ring_consume(_metadata, R, self->recs, 1024);
	ASSERT_EQ(ARRAY_SIZE(want), n);
	for (i = 0; i < (unsigned int)n; i++) {
		EXPECT_EQ(WATCH_TYPE_KEY_NOTIFY, self->recs[i].type);
		EXPECT_EQ(want[i], self->recs[i].subtype);
	}
	ASSERT_EQ(0, take_loss(R->fd, &lost));
	EXPECT_EQ(0, lost);	/* filtered records are not lost records */
}

TEST_F(ring, filter_types_0_to_1023_with_all_subtypes_are_accepted_and_bounded)
{
	struct watch_notification_type_filter f[16];
	uint32_t base, i;
	int n;

	if (!need_inject(_metadata))
		return;
	for (base = 0; base < 1024; base += 16) {
		memset(f, 0, sizeof(f));
		for (i = 0; i < 16; i++) {
			f[i].type = base + i;
			memset(f[i].subtype_filter, 0xff, sizeof(f[i].subtype_filter));
		}
		ASSERT_EQ(0, set_filter(R->fd, f, 16, 0)) {
			TH_LOG("filter for types %u..%u: %s", base, base + 15, strerror(errno));
		}
		/* Subtypes 0..255 of type 1 pass only if type 1 is in this filter. */
		inject_all_subtypes(_metadata, R->fd, WATCH_TYPE_KEY_NOTIFY);
		/* Types the kernel doesn't know are never let through a filter. */
		inject_all_subtypes(_metadata, R->fd, base + 3);
		n = ring_consume(_metadata, R, self->recs, 1024);
		ASSERT_EQ(base == 0 ? 256 : 0, n) {
			TH_LOG("filter for types %u..%u let %d records through",
			       base, base + 15, n);
		}
	}
}

TEST_F(ring, filter_with_more_than_16_entries_fails_einval)
{
	struct watch_notification_type_filter f[64];

	memset(f, 0, sizeof(f));
	EXPECT_EQ(0, set_filter(R->fd, f, 16, 0));
	EXPECT_EQ(-1, set_filter(R->fd, f, 17, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, set_filter(R->fd, f, 64, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, set_filter_claim(R->fd, f, 64, 0x40000001, 0));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(ring, filter_with_nonzero_reserved_or_no_entries_fails_einval)
{
	struct watch_notification_type_filter f = { .type = 1 };

	EXPECT_EQ(-1, set_filter(R->fd, &f, 1, 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, set_filter(R->fd, &f, 1, 0x80000000));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, set_filter(R->fd, &f, 0, 0));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(ring, null_filter_removes_the_filter)
{
	struct watch_notification_type_filter f = { .type = WATCH_TYPE_KEY_NOTIFY };
	int n;

	if (!need_inject(_metadata))
		return;
	sel(&f, 40);
	ASSERT_EQ(0, set_filter(R->fd, &f, 1, 0));
	inject_all_subtypes(_metadata, R->fd, WATCH_TYPE_KEY_NOTIFY);
	ASSERT_EQ(1, ring_consume(_metadata, R, self->recs, 1024));
	ASSERT_EQ(0, ioctl(R->fd, IOC_WATCH_QUEUE_SET_FILTER, NULL));
	inject_all_subtypes(_metadata, R->fd, WATCH_TYPE_KEY_NOTIFY);
	n = ring_consume(_metadata, R, self->recs, 1024);
	EXPECT_EQ(256, n);
	do {
		uint32_t lost;

		ASSERT_EQ(0, take_loss(R->fd, &lost));
		EXPECT_EQ(0, lost);
	} while (0);
}

/* ===========================================================================
 * poll and epoll.
 */

static int poll_in(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLRDNORM };
	int ret = poll(&pfd, 1, ms);

	return ret <= 0 ? ret : pfd.revents;
}

TEST_F(ring, poll_empty_ring_is_not_readable)
{
	EXPECT_EQ(0, poll_in(R->fd, 0));
}

TEST(poll_unsized_ring_is_not_readable)
{
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	EXPECT_EQ(0, poll_in(fd, 0));
	close(fd);
}

TEST_F(ring, poll_reports_pollin_while_head_differs_from_tail)
{
	if (!need_inject(_metadata))
		return;
	ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, true));
	EXPECT_EQ(POLLIN | POLLRDNORM, poll_in(R->fd, 0) & (POLLIN | POLLRDNORM));
	EXPECT_EQ(POLLIN, poll_in(R->fd, 0) & POLLIN);
	drain(R, M);
	EXPECT_EQ(0, poll_in(R->fd, 0));
	set_tail(R, M->head + 7);	/* nonsense tail counts as non-empty */
	EXPECT_EQ(POLLIN, poll_in(R->fd, 0) & POLLIN);
	drain(R, M);
}

struct poster {
	int fd;
	int delay_ms;
	int ret;
};

static void *poster_fn(void *arg)
{
	struct poster *p = arg;
	uint64_t rec[1];

	usleep(p->delay_ms * 1000);
	make_rec(rec, 1, TEST_TYPE, 1, 0, 1);
	p->ret = inject(p->fd, rec);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

TEST_F(ring, poll_waiter_is_woken_by_post_into_empty_ring_from_another_thread)
{
	struct poster p = { .fd = R->fd, .delay_ms = 300 };
	pthread_t th;
	double t0;
	int ret;

	if (!need_inject(_metadata))
		return;
	ASSERT_TRUE(post_checked(_metadata, R, M, 1, SEED, false));
	drain(R, M);		/* empty again, after one post: not a fresh ring */
	ASSERT_EQ(0, pthread_create(&th, NULL, poster_fn, &p));
	t0 = now_s();
	ret = poll_in(R->fd, 10000);
	EXPECT_EQ(POLLIN, ret & POLLIN) {
		TH_LOG("poll returned %d after %.1fs", ret, now_s() - t0);
	}
	EXPECT_LT(now_s() - t0, 9.0);
	pthread_join(th, NULL);
	EXPECT_EQ(0, p.ret);
}

TEST_F(ring, epoll_waiter_is_woken_by_post_into_empty_ring_from_another_thread)
{
	struct poster p = { .fd = R->fd, .delay_ms = 300 };
	struct epoll_event ev = { .events = EPOLLIN }, out;
	pthread_t th;
	int ep, ret;
	double t0;

	if (!need_inject(_metadata))
		return;
	ep = epoll_create1(EPOLL_CLOEXEC);
	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, R->fd, &ev));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 0));
	ASSERT_EQ(0, pthread_create(&th, NULL, poster_fn, &p));
	t0 = now_s();
	ret = epoll_wait(ep, &out, 1, 10000);
	EXPECT_EQ(1, ret);
	EXPECT_TRUE(out.events & EPOLLIN);
	EXPECT_LT(now_s() - t0, 9.0);
	pthread_join(th, NULL);
	/* Level-triggered: still readable until the consumer catches up. */
	EXPECT_EQ(1, epoll_wait(ep, &out, 1, 0));
	set_tail(R, ring_head(R));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 0));
	close(ep);
}

/* ===========================================================================
 * Keys: the ring is a watch queue like a notification pipe.
 */

FIXTURE(keys) {
	struct ring r;
	int pfd[2];
	key_serial_t keyring;
	unsigned char buf[4096];
	struct rec recs[64];
};

FIXTURE_SETUP(keys)
{
	long session;

	self->pfd[0] = -1;
	self->pfd[1] = -1;
	self->r.fd = -1;
	self->r.slots = NULL;
	session = kctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0);
	if (syscall_missing(session))
		SKIP(return, "keyctl(2) not available (CONFIG_KEYS=n)");
	ASSERT_GT(session, 0);
	if (ring_make(_metadata, &self->r, 1) < 0)
		return;
	self->keyring = add_key("keyring", "ring_test", NULL, 0, KEY_SPEC_SESSION_KEYRING);
	ASSERT_GT(self->keyring, 0);
	if (watch_key(self->keyring, self->r.fd, 1) < 0 && errno == EOPNOTSUPP)
		SKIP(return, "KEYCTL_WATCH_KEY unsupported (CONFIG_KEY_NOTIFICATIONS=n)");
	ASSERT_EQ(0, watch_key(self->keyring, self->r.fd, -1)) {
		TH_LOG("KEYCTL_WATCH_KEY with a ring fd: %s", strerror(errno));
	}
	set_tail(&self->r, ring_head(&self->r));	/* drop the probe's removal record */
	ASSERT_EQ(0, pipe2(self->pfd, O_NOTIFICATION_PIPE | O_NONBLOCK));
	ASSERT_EQ(0, ioctl(self->pfd[0], IOC_WATCH_QUEUE_SET_SIZE, 64));
}

FIXTURE_TEARDOWN(keys)
{
	ring_free(&self->r);
	if (self->pfd[0] >= 0)
		close(self->pfd[0]);
	if (self->pfd[1] >= 0)
		close(self->pfd[1]);
}

/* The one key record each queue must now hold. */
static void check_key_event(struct __test_metadata *_metadata, struct _test_data_keys *self,
			    int subtype, key_serial_t key, uint32_t aux)
{
	struct key_notification kn;
	struct watch_notification n;
	ssize_t len;
	int cnt;

	/* Ring: 2 slots, watch id 0x5a. */
	cnt = ring_consume(_metadata, &self->r, self->recs, 64);
	ASSERT_EQ(1, cnt);
	EXPECT_EQ(WATCH_TYPE_KEY_NOTIFY, self->recs[0].type);
	EXPECT_EQ(subtype, self->recs[0].subtype);
	EXPECT_EQ((0x5au << 8) | 2, self->recs[0].info);
	memcpy(&kn, self->recs[0].d, sizeof(kn));
	EXPECT_EQ((uint32_t)key, kn.key_id);
	EXPECT_EQ(aux, kn.aux);

	/* Pipe: 16 bytes, watch id 0xa5. */
	len = read(self->pfd[0], self->buf, sizeof(self->buf));
	ASSERT_EQ((ssize_t)sizeof(kn), len);
	memcpy(&kn, self->buf, sizeof(kn));
	memcpy(&n, self->buf, sizeof(n));
	EXPECT_EQ(WATCH_TYPE_KEY_NOTIFY, (uint32_t)n.type);
	EXPECT_EQ(subtype, (uint32_t)n.subtype);
	EXPECT_EQ((0xa5u << 8) | 16, n.info);
	EXPECT_EQ((uint32_t)key, kn.key_id);
	EXPECT_EQ(aux, kn.aux);
}

/* @key watched by the ring (watch id 0x5a) and by the pipe (0xa5). */
static void watch_both(struct __test_metadata *_metadata, struct _test_data_keys *self,
		       key_serial_t key)
{
	ASSERT_EQ(0, watch_key(key, self->r.fd, 0x5a));
	ASSERT_EQ(0, watch_key(key, self->pfd[0], 0xa5));
}

static key_serial_t user_key(const char *desc, key_serial_t ring);

/* A new user key in the test keyring, watched by both. */
static key_serial_t watched_key(struct __test_metadata *_metadata, struct _test_data_keys *self)
{
	key_serial_t k = user_key("k", self->keyring);

	ASSERT_GT(k, 0);
	watch_both(_metadata, self, k);
	return k;
}

static key_serial_t user_key(const char *desc, key_serial_t ring)
{
	return add_key("user", desc, "payload", 7, ring);
}

TEST_F(keys, updated_arrives_in_ring_and_pipe)
{
	key_serial_t k = watched_key(_metadata, self);

	ASSERT_EQ(0, key_update(k, "new"));
	check_key_event(_metadata, self, NOTIFY_KEY_UPDATED, k, 0);
}

TEST_F(keys, linked_arrives_in_ring_and_pipe)
{
	key_serial_t k;

	watch_both(_metadata, self, self->keyring);
	k = user_key("k", self->keyring);
	ASSERT_GT(k, 0);
	check_key_event(_metadata, self, NOTIFY_KEY_LINKED, self->keyring, k);
}

TEST_F(keys, unlinked_arrives_in_ring_and_pipe)
{
	key_serial_t k = user_key("k", self->keyring);

	ASSERT_GT(k, 0);
	watch_both(_metadata, self, self->keyring);
	ASSERT_EQ(0, kctl(KEYCTL_UNLINK, k, self->keyring, 0, 0));
	check_key_event(_metadata, self, NOTIFY_KEY_UNLINKED, self->keyring, k);
}

TEST_F(keys, cleared_arrives_in_ring_and_pipe)
{
	ASSERT_GT(user_key("k", self->keyring), 0);
	watch_both(_metadata, self, self->keyring);
	ASSERT_EQ(0, kctl(KEYCTL_CLEAR, self->keyring, 0, 0, 0));
	check_key_event(_metadata, self, NOTIFY_KEY_CLEARED, self->keyring, 0);
}

TEST_F(keys, revoked_arrives_in_ring_and_pipe)
{
	key_serial_t k = watched_key(_metadata, self);

	ASSERT_EQ(0, kctl(KEYCTL_REVOKE, k, 0, 0, 0));
	check_key_event(_metadata, self, NOTIFY_KEY_REVOKED, k, 0);
}

TEST_F(keys, invalidated_arrives_in_ring_and_pipe)
{
	key_serial_t k = watched_key(_metadata, self);
	struct key_notification kn;

	ASSERT_EQ(0, kctl(KEYCTL_INVALIDATE, k, 0, 0, 0));
	/* The gc may add removal records behind it: look at the first only. */
	ASSERT_LE(1, ring_consume(_metadata, &self->r, self->recs, 1));
	EXPECT_EQ(WATCH_TYPE_KEY_NOTIFY, self->recs[0].type);
	EXPECT_EQ(NOTIFY_KEY_INVALIDATED, self->recs[0].subtype);
	memcpy(&kn, self->recs[0].d, sizeof(kn));
	EXPECT_EQ((uint32_t)k, kn.key_id);
	ASSERT_LE(16, read(self->pfd[0], self->buf, sizeof(self->buf)));
	memcpy(&kn, self->buf, sizeof(kn));
	EXPECT_EQ(NOTIFY_KEY_INVALIDATED, (uint32_t)kn.watch.subtype);
	EXPECT_EQ((uint32_t)k, kn.key_id);
}

TEST_F(keys, setattr_arrives_in_ring_and_pipe)
{
	key_serial_t k = watched_key(_metadata, self);

	ASSERT_EQ(0, kctl(KEYCTL_SETPERM, k, 0x3f3f0000, 0, 0));
	check_key_event(_metadata, self, NOTIFY_KEY_SETATTR, k, 0);
}

TEST_F(keys, watch_id_minus_one_posts_removal_record_into_ring)
{
	key_serial_t k = user_key("k", self->keyring);
	struct watch_notification_removal rm;

	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(k, self->r.fd, 0x33));
	ASSERT_EQ(0, watch_key(k, self->r.fd, -1));
	ASSERT_EQ(1, ring_consume(_metadata, &self->r, self->recs, 64));
	EXPECT_EQ(WATCH_TYPE_META, self->recs[0].type);
	EXPECT_EQ(WATCH_META_REMOVAL_NOTIFICATION, self->recs[0].subtype);
	EXPECT_EQ((0x33u << 8) | 2, self->recs[0].info);
	memcpy(&rm, self->recs[0].d, sizeof(rm));
	EXPECT_EQ((uint64_t)(uint32_t)k, rm.id);
	ASSERT_EQ(0, key_update(k, "x"));
	EXPECT_EQ(0, ring_consume(_metadata, &self->r, self->recs, 64));
}

TEST_F_TIMEOUT(keys, key_destruction_posts_removal_record_into_ring, 60)
{
	key_serial_t k = user_key("k", self->keyring);
	struct watch_notification_removal rm;
	double t0 = now_s();
	int got = 0, i, n;

	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(k, self->r.fd, 0x44));
	ASSERT_EQ(0, kctl(KEYCTL_INVALIDATE, k, 0, 0, 0));	/* gc destroys it now */
	while (!got && now_s() - t0 < 20) {
		poll_in(self->r.fd, 1000);
		n = ring_consume(_metadata, &self->r, self->recs, 64);
		for (i = 0; i < n; i++) {
			if (self->recs[i].type != WATCH_TYPE_META)
				continue;
			ASSERT_EQ(WATCH_META_REMOVAL_NOTIFICATION, self->recs[i].subtype);
			EXPECT_EQ((0x44u << 8) | 2, self->recs[i].info);
			memcpy(&rm, self->recs[i].d, sizeof(rm));
			EXPECT_EQ((uint64_t)(uint32_t)k, rm.id);
			got = 1;
		}
	}
	EXPECT_TRUE(got) {
		TH_LOG("no removal record within 20 s of invalidating the key");
	}
}

TEST_F(keys, closing_ring_with_live_watches_leaves_key_ops_working)
{
	key_serial_t k = user_key("k", self->keyring);
	struct key_notification kn;

	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(k, self->r.fd, 1));
	ASSERT_EQ(0, watch_key(self->keyring, self->r.fd, 2));
	ASSERT_EQ(0, watch_key(k, self->pfd[0], 3));
	ring_free(&self->r);		/* munmap + close: the queue is released */
	ASSERT_EQ(0, key_update(k, "a"));
	ASSERT_EQ(0, kctl(KEYCTL_SETPERM, k, 0x3f3f0000, 0, 0));
	ASSERT_GT(user_key("k2", self->keyring), 0);
	ASSERT_EQ(0, kctl(KEYCTL_REVOKE, k, 0, 0, 0));
	/* The pipe still gets its records. */
	ASSERT_EQ(48, read(self->pfd[0], self->buf, sizeof(self->buf)));
	memcpy(&kn, self->buf + 32, sizeof(kn));
	EXPECT_EQ(NOTIFY_KEY_REVOKED, (uint32_t)kn.watch.subtype);
	/* Watching with a closed fd fails cleanly. */
	EXPECT_EQ(-1, watch_key(self->keyring, 1000, 1));
}

TEST_F(keys, ring_watched_before_sizing_counts_posts_as_lost)
{
	key_serial_t k = user_key("k", self->keyring);
	uint32_t lost;
	int fd = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);

	ASSERT_GT(k, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, watch_key(k, fd, 1));
	ASSERT_EQ(0, key_update(k, "a"));
	ASSERT_EQ(0, key_update(k, "b"));
	ASSERT_EQ(0, take_loss(fd, &lost));
	EXPECT_EQ(2, lost);
	close(fd);
}

/* ===========================================================================
 * Locked-memory accounting (as an unprivileged user, in a child).
 */

static char *child_msg;	/* shared page for the child's complaint */

#define CFAIL(...) do { snprintf(child_msg, 4096, __VA_ARGS__); _exit(1); } while (0)

static void become_nobody(rlim_t memlock_pages)
{
	struct rlimit rl = { memlock_pages * page_size(), memlock_pages * page_size() };

	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		CFAIL("setrlimit: %s", strerror(errno));
	if (setgid(NOBODY) || setuid(NOBODY))
		CFAIL("setuid(nobody): %s", strerror(errno));
}

static void run_child(struct __test_metadata *_metadata, void (*fn)(void *), void *arg)
{
	int status;
	pid_t pid;

	if (getuid() != 0)
		SKIP(return, "needs root to drop to an unprivileged user");
	if (sys_open(DEV_PATH, O_RDONLY | O_CLOEXEC) < 0)
		SKIP(return, DEV_PATH " is absent");
	child_msg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, child_msg);
	child_msg[0] = 0;
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("unprivileged child: %s (status %#x)", child_msg, status);
	}
	munmap(child_msg, 4096);
}

static void memlock_limit_child(void *arg)
{
	int a, b, c;

	become_nobody(4);
	a = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
	if (a < 0)
		CFAIL("open as nobody: %s", strerror(errno));
	if (nr_pages_ioctl(a, 8) != -1 || errno != ENOMEM)
		CFAIL("NR_PAGES(8) over a 4-page RLIMIT_MEMLOCK: got %s, want ENOMEM",
		      errno == 0 ? "success" : strerror(errno));
	errno = 0;
	if (nr_pages_ioctl(a, 4))
		CFAIL("NR_PAGES(4) within a 4-page limit: %s", strerror(errno));
	b = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
	errno = 0;
	if (nr_pages_ioctl(b, 1) != -1 || errno != ENOMEM)
		CFAIL("NR_PAGES(1) with 4 of 4 pages charged: got %s, want ENOMEM",
		      errno == 0 ? "success" : strerror(errno));
	close(a);
	if (nr_pages_ioctl(b, 4))
		CFAIL("NR_PAGES(4) after the first ring was closed: %s (not refunded)",
		      strerror(errno));
	c = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
	errno = 0;
	if (nr_pages_ioctl(c, 1) != -1 || errno != ENOMEM)
		CFAIL("third ring: got %s, want ENOMEM", errno == 0 ? "success" : strerror(errno));
	close(b);
	close(c);
}

TEST(nr_pages_beyond_rlimit_memlock_fails_enomem_for_unprivileged_user)
{
	run_child(_metadata, memlock_limit_child, NULL);
}

static void mapped_charge_child(void *arg)
{
	void *p;
	int a, b;

	become_nobody(1);
	a = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
	if (a < 0 || nr_pages_ioctl(a, 1))
		CFAIL("first ring: %s", strerror(errno));
	p = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	if (p == MAP_FAILED)
		CFAIL("mmap: %s", strerror(errno));
	close(a);
	/* The mapping keeps the ring, so its page is still charged. */
	b = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
	errno = 0;
	if (nr_pages_ioctl(b, 1) != -1 || errno != ENOMEM)
		CFAIL("NR_PAGES(1) while the closed ring is still mapped: got %s, want ENOMEM",
		      errno == 0 ? "success" : strerror(errno));
	munmap(p, page_size());
	if (nr_pages_ioctl(b, 1))
		CFAIL("NR_PAGES(1) after munmap of the closed ring: %s (not refunded)",
		      strerror(errno));
	close(b);
}

TEST(memlock_charge_is_held_while_mapped_and_refunded_on_last_unmap)
{
	run_child(_metadata, mapped_charge_child, NULL);
}

/* Pass an fd over a unix socket (SCM_RIGHTS); -1 on failure. */
static int send_fd(int sock, int fd)
{
	char data = 0, cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char data, cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &data, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cmsg;
	int fd;

	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

/* As nobody with a 1-page limit: open a ring and hand it over. */
static void opener_sends_child(void *arg)
{
	int fd;

	become_nobody(1);
	fd = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0 || send_fd(*(int *)arg, fd))
		CFAIL("open and send as nobody: %s", strerror(errno));
}

/*
 * The pages are charged to the opener, within its limit: root, which has
 * CAP_IPC_LOCK, can't size a ring that nobody opened beyond nobody's
 * RLIMIT_MEMLOCK, and what it sizes within it counts against nobody.
 */
TEST(memlock_is_charged_to_the_opener_not_to_the_task_that_sizes_the_ring)
{
	int sv[2], fd;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
	run_child(_metadata, opener_sends_child, &sv[1]);
	fd = recv_fd(sv[0]);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, nr_pages_ioctl(fd, 4));
	EXPECT_EQ(ENOMEM, errno);
	EXPECT_EQ(0, nr_pages_ioctl(fd, 1));
	close(fd);
	close(sv[0]);
	close(sv[1]);
}

/* As nobody with no locked memory at all: size a ring root opened. */
static void sizer_receives_child(void *arg)
{
	int fd, own;

	become_nobody(0);
	own = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
	errno = 0;
	if (own < 0 || nr_pages_ioctl(own, 1) != -1 || errno != ENOMEM)
		CFAIL("nobody sized its own ring with a 0 limit: %s",
		      errno ? strerror(errno) : "success");
	fd = recv_fd(*(int *)arg);
	if (fd < 0)
		CFAIL("recv_fd: %s", strerror(errno));
	if (nr_pages_ioctl(fd, 4))
		CFAIL("NR_PAGES(4) on root's ring: %s (charged to the caller?)",
		      strerror(errno));
}

/* ... and the opener's privilege goes with the file, not with the caller. */
TEST(a_ring_opened_with_cap_ipc_lock_is_not_charged_to_whoever_sizes_it)
{
	int sv[2], fd;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv));
	fd = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP(return, DEV_PATH " is absent");
	ASSERT_EQ(0, send_fd(sv[0], fd));
	run_child(_metadata, sizer_receives_child, &sv[1]);
	close(fd);
	close(sv[0]);
	close(sv[1]);
}

static void open_size_close_child(void *arg)
{
	int i, fd;

	become_nobody(1);
	for (i = 0; i < (int)CYCLES; i++) {	/* 10,000 rings */
		fd = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			CFAIL("iteration %d: open: %s", i, strerror(errno));
		if (nr_pages_ioctl(fd, 1))
			CFAIL("iteration %d: NR_PAGES(1) under a 1-page limit: %s (inexact refund)",
			      i, strerror(errno));
		if (i % 100 == 0) {
			void *p = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED,
				       fd, 0);

			if (p == MAP_FAILED)
				CFAIL("iteration %d: mmap: %s", i, strerror(errno));
			munmap(p, page_size());
		}
		close(fd);
	}
}

TEST_F_TIMEOUT(slow, open_size_close_10000_times_under_small_memlock_never_fails, 120)
{
	run_child(_metadata, open_size_close_child, NULL);
}

static void open_size_watch_close_child(void *arg)
{
	key_serial_t k;
	int i, fd;

	become_nobody(1);
	if (kctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0) < 0)
		CFAIL("join session keyring: %s", strerror(errno));
	k = user_key("k", KEY_SPEC_SESSION_KEYRING);
	if (k < 0)
		CFAIL("add_key: %s", strerror(errno));
	for (i = 0; i < (int)CYCLES / 10; i++) {	/* 1,000 watched rings */
		fd = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			CFAIL("iteration %d: open: %s", i, strerror(errno));
		if (nr_pages_ioctl(fd, 1)) {
			const char *why = "still failing 5 s later (refund lost)";
			int err = errno, ms;

			/* Tell a late refund from a lost one, for the report. */
			for (ms = 0; ms < 5000; ms += 10) {
				usleep(10000);
				if (nr_pages_ioctl(fd, 1) == 0)
					break;
			}
			if (ms < 5000)
				why = "the refund came later (deferred past close)";
			CFAIL("iteration %d: %s: %s; %s", i,
			      "NR_PAGES(1) under a 1-page limit right after closing a watched ring",
			      strerror(err), why);
		}
		if (watch_key(k, fd, 1))
			CFAIL("iteration %d: KEYCTL_WATCH_KEY: %s", i, strerror(errno));
		if (key_update(k, "x"))
			CFAIL("iteration %d: update: %s", i, strerror(errno));
		close(fd);
	}
}

TEST_F_TIMEOUT(slow, open_size_watch_close_1000_times_under_small_memlock_never_fails, 120)
{
	run_child(_metadata, open_size_watch_close_child, NULL);
}

/* ===========================================================================
 * Hostile consumer, concurrent posting and teardown.
 */

struct flood {
	int fd;
	key_serial_t key;
	int stop;		/* __atomic_*() only */
	uint64_t posted;
	int err;
	uint64_t seed;
};

static void *inject_thread(void *arg)
{
	struct flood *f = arg;
	uint64_t rec[MAX_SLOTS], seed = f->seed;

	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED) && f->posted < 20000) {
		uint32_t L = 1 + splitmix(&seed) % MAX_SLOTS;

		make_rec(rec, L, TEST_TYPE, L, 0, seed);
		if (inject(f->fd, rec))
			f->err = errno;
		f->posted++;
	}
	return NULL;
}

static void *update_thread(void *arg)
{
	struct flood *f = arg;

	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED) && f->posted < 20000) {
		if (key_update(f->key, "hostile"))
			f->err = errno;
		f->posted++;
	}
	return NULL;
}

TEST_F_TIMEOUT(ring, hostile_consumer_scribbling_head_tail_records_kernel_survives, 120)
{
	struct flood f[3];
	pthread_t th[3];
	uint64_t rnd = 42, bound = 0;
	key_serial_t k;
	double t0;
	uint32_t t, before, h, lost;
	struct rec *recs = self->recs;
	int i, n, found = 0;

	if (!need_inject(_metadata))
		return;
	ASSERT_LE(0, kctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0));
	k = user_key("hostile", KEY_SPEC_SESSION_KEYRING);
	ASSERT_GT(k, 0);
	ASSERT_EQ(0, watch_key(k, R->fd, 9));
	for (i = 0; i < 3; i++) {
		memset(&f[i], 0, sizeof(f[i]));
		f[i].fd = R->fd;
		f[i].key = k;
		f[i].seed = 1000 + i;
		ASSERT_EQ(0, pthread_create(&th[i], NULL, i < 2 ? inject_thread : update_thread,
					    &f[i]));
	}
	t0 = now_s();
	while (now_s() - t0 < 2.0) {
		uint64_t x = splitmix(&rnd);

		switch (x % 8) {
		case 0:
			R->meta->head = x >> 32;
			break;
		case 1:
			R->meta->tail = x >> 32;
			break;
		case 2:
			R->slots[(x >> 16) & R->mask] = splitmix(&rnd);
			break;
		case 3:
			R->slots[0] = splitmix(&rnd);
			break;
		case 4:			/* plausible consumer */
			set_tail(R, ring_head(R));
			break;
		case 5:
			set_tail(R, ring_head(R) - ((x >> 32) % 600));
			break;
		case 6:
			set_tail(R, (ring_head(R) & ~R->mask) + 1);
			break;
		default:
			sched_yield();
			break;
		}
	}
	for (i = 0; i < 3; i++)
		__atomic_store_n(&f[i].stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		EXPECT_EQ(0, f[i].err);
		bound += f[i].posted;
	}
	/*
	 * Restore a sane tail.  The kernel's own head is at most ~130 slots per
	 * post along; a probe at tail t delivers iff head - t <= n - 8 or so, so
	 * steps of 256 find it.  The head word changes only when one gets in.
	 */
	bound = bound * 130 + 1024;
	for (t = 0; (uint64_t)t <= bound; t += 256) {
		uint64_t rec[1];

		R->meta->head = 0xdead0001;
		before = ring_head(R);
		set_tail(R, t);
		make_rec(rec, 1, TEST_TYPE, 0, 0, 1);
		ASSERT_EQ(0, inject(R->fd, rec));
		if (ring_head(R) != before) {
			found = 1;
			break;
		}
	}
	ASSERT_TRUE(found) {
		TH_LOG("no tail in 0..%llu lets a record in", (unsigned long long)bound);
	}
	h = ring_head(R);
	EXPECT_LE(h - t, R->n);
	/* Sane from here on: consume, post, and see exactly what was posted. */
	set_tail(R, h);
	ASSERT_EQ(0, take_loss(R->fd, &lost));
	ASSERT_EQ(0, key_update(k, "after"));
	do {
		uint64_t rec[7];

		make_rec(rec, 7, TEST_TYPE, 0x77, 0x00110000, 4242);
		ASSERT_EQ(0, inject(R->fd, rec));
		n = ring_consume(_metadata, R, recs, 16);
		ASSERT_EQ(2, n);
		EXPECT_EQ(WATCH_TYPE_KEY_NOTIFY, recs[0].type);
		EXPECT_EQ(NOTIFY_KEY_UPDATED, recs[0].subtype);
		EXPECT_EQ((9u << 8) | 2, recs[0].info);
		EXPECT_EQ(7, recs[1].len);
		EXPECT_EQ(0, memcmp(recs[1].d, rec, sizeof(rec)));
	} while (0);
	EXPECT_EQ(0, poll_in(R->fd, 0));
	kctl(KEYCTL_REVOKE, k, 0, 0, 0);
}

struct churn {
	key_serial_t key;
	int stop;		/* __atomic_*() only */
	int iters, err;
	int step;
	int watched;		/* watches set (before the revoke) */
	int refused;		/* EKEYREVOKED (after it) */
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	int i;

	/* The race is at the revoke: a few hundred refusals after it are enough. */
	for (i = 0; i < c->iters && c->refused < 300; i++) {
		int fd = sys_open(DEV_PATH, O_RDWR | O_CLOEXEC);
		void *p = MAP_FAILED;

		if (fd < 0) {
			c->err = errno;
			break;
		}
		if (i % 3 != 0 && nr_pages_ioctl(fd, 1) == 0)
			p = mmap(NULL, page_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (watch_key(c->key, fd, i & 0xff) == 0)
			c->watched++;
		else if (errno == EKEYREVOKED)
			c->refused++;
		else
			c->err = errno;
		if (i % 2 && p != MAP_FAILED)
			munmap(p, page_size());
		close(fd);
		if (!(i % 2) && p != MAP_FAILED)
			munmap(p, page_size());
	}
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void *churn_update_thread(void *arg)
{
	struct churn *c = arg;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED))
		key_update(c->key, "u");
	return NULL;
}

TEST_F_TIMEOUT(slow, closing_rings_while_watched_key_is_updated_from_another_cpu, 120)
{
	struct churn c = { .iters = 300 };
	pthread_t a, b;
	int fd;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	close(fd);
	ASSERT_LE(0, kctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0));
	c.key = user_key("churn", KEY_SPEC_SESSION_KEYRING);
	ASSERT_GT(c.key, 0);
	ASSERT_EQ(0, pthread_create(&b, NULL, churn_update_thread, &c));
	ASSERT_EQ(0, pthread_create(&a, NULL, churn_thread, &c));
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	EXPECT_EQ(0, c.err);
	EXPECT_EQ(0, key_update(c.key, "after"));
	EXPECT_EQ(0, kctl(KEYCTL_REVOKE, c.key, 0, 0, 0));
}

TEST_F_TIMEOUT(slow, concurrent_watches_from_many_rings_while_key_is_revoked, 120)
{
	struct churn c[2] = { { .iters = 3000 }, { .iters = 3000 } };
	pthread_t th[2];
	key_serial_t k;
	int fd, i;

	fd = dev_open(_metadata);
	if (fd < 0)
		return;
	close(fd);
	ASSERT_LE(0, kctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0));
	k = user_key("revoked", KEY_SPEC_SESSION_KEYRING);
	ASSERT_GT(k, 0);
	for (i = 0; i < 2; i++) {
		c[i].key = k;
		ASSERT_EQ(0, pthread_create(&th[i], NULL, churn_thread, &c[i]));
	}
	usleep(100 * 1000);
	/* Both threads must still be setting watches when the key goes. */
	ASSERT_EQ(__atomic_load_n(&c[0].stop, __ATOMIC_RELAXED), 0);
	ASSERT_EQ(__atomic_load_n(&c[1].stop, __ATOMIC_RELAXED), 0);
	EXPECT_EQ(0, kctl(KEYCTL_REVOKE, k, 0, 0, 0));
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		EXPECT_EQ(0, c[i].err);
		/* ... having watched it before, and been refused after. */
		EXPECT_GT(c[i].watched, 0);
		EXPECT_GT(c[i].refused, 0);
	}
}

TEST_HARNESS_MAIN
