// SPDX-License-Identifier: GPL-2.0
/*
 * The guest half of the ring differential checker (harness/checkers/ring_diff.py).
 *
 *	ring_diff_driver --seed S --name NAME --ops N --pages P [--hostile]
 *			 --out FILE [--device PATH]
 *
 * Opens /dev/watch_queue, sizes and maps a ring of P pages and performs N
 * seeded random operations on it: injections (valid and invalid records of
 * every length), consumption following the consumer protocol, TAKE_LOSS,
 * filter changes (valid and invalid), and with --hostile a consumer that
 * writes hostile tails, scribbles on head and on free slots.  The operations
 * are a function of (S, NAME) alone, and a prefix of the operations of N is
 * the operations of any smaller N, so --ops M reruns the first M.
 *
 * It judges nothing.  It writes FILE, a trace: every operation with its
 * arguments and what the kernel returned, followed by every byte of the
 * mapping that changed since the previous operation (the whole mapping is
 * compared with a shadow copy after each one).  The Python model
 * (harness/ring_model.py) replays the trace and must end up with the same
 * mapping after every operation.  The format is in harness/ring_trace.py.
 *
 * Exit status: 0 when the trace is complete, 4 (KSFT_SKIP) with the reason on
 * stderr when the kernel lacks the ring or the injection ioctl, 1 on errors.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/watch_queue.h>

#include "../wq_util.h"

#define DEV_PATH	"/dev/watch_queue"
#define SLOT		8u
#define MAX_SLOTS	63u
#define FILTER_MAX	16u	/* kernel/watch_queue.c: most filters accepted */
#define MAX_FILTERS	(3 * FILTER_MAX + 1)
#define KSFT_SKIP	4

#define TRACE_MAGIC	"WQRDIFF1"
#define TRACE_VERSION	2
#define POOL_SIZE	65536u	/* random bytes record bodies are cut from */
#define LITERAL		0xffffffffu

/* Operation kinds and the reasons for a write or a no-op: ring_trace.py. */
enum { OP_OPEN, OP_INJECT, OP_CONSUME, OP_TAKE_LOSS, OP_SET_FILTER, OP_WRITE, OP_NOP,
	OP_END };
enum { W_TAIL_AHEAD, W_TAIL_BEHIND, W_TAIL_META, W_TAIL_EDGE, W_TAIL_RANDOM,
	W_RESTORE_TAIL, W_SCRIBBLE_HEAD, W_RESTORE_HEAD, W_SCRIBBLE_FREE };
#define NR_HOSTILE_KINDS 5

struct phase {
	double consume_p;
	unsigned int lo, hi;
};

static const struct phase phases[] = {
	{ 0.02, 1, 63 }, { 0.15, 1, 63 }, { 0.5, 1, 63 },
	{ 0.1, 1, 4 }, { 0.3, 32, 63 }, { 0.05, 60, 63 },
};

struct ring {
	int fd;
	unsigned char *map;
	unsigned char *shadow;		/* the mapping as of the last trace record */
	size_t len;
	uint32_t nr_slots, mask;
	_Atomic uint32_t *head, *tail;
};

struct driver {
	struct ring r;
	FILE *out;
	uint64_t rng;
	uint32_t index;			/* operations performed */
	uint32_t nr_ops;
	bool hostile;
	uint32_t consumer_tail;		/* where the sane consumer is */
	bool in_hostile;		/* a hostile tail is in place */
	uint32_t head_at_hostile;
	bool head_scribbled;
	uint32_t scribbled, real_head;
	unsigned char pool[POOL_SIZE + MAX_SLOTS * SLOT];
	const unsigned char *ref;	/* body of the record being injected */
	uint32_t ref_len, ref_src;	/* its length, its offset in the pool */
};

/* --- the trace --------------------------------------------------------------- */

static void put(struct driver *d, const void *p, size_t len)
{
	if (len && fwrite(p, 1, len, d->out) != len)
		die("writing the trace");
}

static void put32(struct driver *d, uint32_t v)
{
	put(d, &v, sizeof(v));		/* x86_64: little-endian, as the format says */
}

static void put_range(struct driver *d, uint32_t off, uint32_t len, uint32_t src)
{
	put32(d, off);
	put32(d, len);
	put32(d, src);
	if (src == LITERAL)
		put(d, d->r.map + off, len);
}

/*
 * A changed run of slots.  Where the run holds the body of the record being
 * injected byte for byte, that part is written as a reference to the pool
 * instead of its bytes: the check stays exact, the trace gets small.
 */
static uint32_t put_run(struct driver *d, uint32_t start, uint32_t end)
{
	uint32_t p;

	if (d->ref_len && end - start >= d->ref_len) {
		for (p = start; p + d->ref_len <= end; p += SLOT) {
			if (memcmp(d->r.map + p, d->ref, d->ref_len))
				continue;
			if (p > start)
				put_range(d, start, p - start, LITERAL);
			put_range(d, p, d->ref_len, d->ref_src);
			if (p + d->ref_len < end)
				put_range(d, p + d->ref_len, end - p - d->ref_len, LITERAL);
			return (p > start) + 1 + (p + d->ref_len < end);
		}
	}
	put_range(d, start, end - start, LITERAL);
	return 1;
}

/* Every slot that differs from the shadow, as ranges; the count goes last. */
static void put_delta(struct driver *d)
{
	struct ring *r = &d->r;
	uint32_t nr = 0, start, end;
	size_t off = 0, chunk, s;

	while (off < r->len) {
		chunk = r->len - off < 256 ? r->len - off : 256;
		if (!memcmp(r->map + off, r->shadow + off, chunk)) {
			off += chunk;
			continue;
		}
		for (s = off; s < off + chunk; s += SLOT) {
			if (!memcmp(r->map + s, r->shadow + s, SLOT))
				continue;
			start = s;
			while (s + SLOT < r->len && memcmp(r->map + s + SLOT, r->shadow + s + SLOT,
							    SLOT))
				s += SLOT;
			end = s + SLOT;
			nr += put_run(d, start, end);
			memcpy(r->shadow + start, r->map + start, end - start);
		}
		off = s > off + chunk ? s : off + chunk;
	}
	put32(d, LITERAL);	/* end of the ranges */
	put32(d, nr);
}

/* One operation: kind, arguments, errno, result bytes, then the delta. */
static void record(struct driver *d, uint32_t kind, const void *arg, uint32_t arg_len,
		   int err, const void *res, uint32_t res_len)
{
	put32(d, kind);
	put32(d, arg_len);
	put(d, arg, arg_len);
	put32(d, (uint32_t)err);
	put32(d, res_len);
	put(d, res, res_len);
	put_delta(d);
	d->ref_len = 0;
	d->index++;
}

static void record_why(struct driver *d, uint32_t kind, uint32_t why)
{
	record(d, kind, &why, sizeof(why), 0, NULL, 0);
}

/* --- the ring ------------------------------------------------------------------ */

static int ring_open(struct ring *r, const char *path, unsigned int pages)
{
	r->fd = syscall(__NR_openat, AT_FDCWD, path, O_RDWR | O_CLOEXEC, 0);
	if (r->fd < 0) {
		fprintf(stderr, "%s absent: %s\n", path, strerror(errno));
		return errno == ENOENT ? KSFT_SKIP : 1;
	}
	if (ioctl(r->fd, IOC_WATCH_QUEUE_NR_PAGES, pages) < 0) {
		fprintf(stderr, "IOC_WATCH_QUEUE_NR_PAGES: %s\n", strerror(errno));
		return errno == ENOTTY ? KSFT_SKIP : 1;
	}
	r->len = (size_t)pages * sysconf(_SC_PAGESIZE);
	r->map = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->map == MAP_FAILED) {
		fprintf(stderr, "mmap: %s\n", strerror(errno));
		return 1;
	}
	r->shadow = calloc(1, r->len);
	if (!r->shadow)
		die("calloc");
	r->nr_slots = r->len / SLOT;
	r->mask = r->nr_slots - 1;
	r->head = (_Atomic uint32_t *)(r->map + offsetof(struct watch_queue_ring_meta, head));
	r->tail = (_Atomic uint32_t *)(r->map + offsetof(struct watch_queue_ring_meta, tail));
	return 0;
}

static uint32_t head_now(struct driver *d)
{
	return atomic_load_explicit(d->r.head, memory_order_acquire);
}

static void write_bytes(struct driver *d, uint32_t why, uint32_t off, const void *p,
			uint32_t len)
{
	unsigned char arg[8 + 256];

	memcpy(arg, &why, 4);
	memcpy(arg + 4, &off, 4);
	memcpy(arg + 8, p, len);
	memcpy(d->r.map + off, p, len);
	record(d, OP_WRITE, arg, 8 + len, 0, NULL, 0);
}

static void write_u32(struct driver *d, uint32_t why, uint32_t off, uint32_t v)
{
	write_bytes(d, why, off, &v, sizeof(v));
}

/* --- operations ------------------------------------------------------------------ */

/*
 * Injects the 8-byte header @hdr followed by @len - 8 bytes of the pool from
 * @src.  The trace holds the header and @src only.
 */
static void op_inject(struct driver *d, const unsigned char *hdr, uint32_t src, uint32_t len)
{
	unsigned char rec[MAX_SLOTS * SLOT], arg[SLOT + 4];
	int err;

	memcpy(rec, hdr, SLOT);
	memcpy(rec + SLOT, d->pool + src, len - SLOT);
	err = ioctl(d->r.fd, IOC_WATCH_QUEUE_INJECT, rec) < 0 ? errno : 0;
	memcpy(arg, hdr, SLOT);
	memcpy(arg + SLOT, &src, 4);
	d->ref = d->pool + src;
	d->ref_len = len - SLOT;
	d->ref_src = src;
	record(d, OP_INJECT, arg, sizeof(arg), err, NULL, 0);
}

/* The consumer protocol of the uapi header; at most @max records (0: all). */
static void op_consume(struct driver *d, uint32_t max)
{
	struct ring *r = &d->r;
	uint32_t head = head_now(d);
	uint32_t tail = atomic_load_explicit(r->tail, memory_order_relaxed);
	uint32_t start = tail, nr = 0, error = 0, res[3];

	while (tail != head && (!max || nr < max)) {
		uint32_t used = head - tail, idx = tail & r->mask, len;
		struct watch_notification n;

		if (used > r->nr_slots) {
			error = 1;
			break;
		}
		if (idx == 1) {
			error = 2;
			break;
		}
		memcpy(&n, r->map + idx * SLOT, sizeof(n));
		len = n.info & WATCH_INFO_NR_SLOTS;
		if (!len || idx + len > r->nr_slots || len > used) {
			error = 3;
			break;
		}
		if (n.type != WATCH_TYPE_META || n.subtype != WATCH_META_SKIP_NOTIFICATION)
			nr++;
		tail += len;
	}
	if (tail != start)
		atomic_store_explicit(r->tail, tail, memory_order_release);
	d->consumer_tail = tail;
	res[0] = nr;
	res[1] = tail;
	res[2] = error;
	record(d, OP_CONSUME, &max, sizeof(max), 0, res, sizeof(res));
}

static void op_take_loss(struct driver *d)
{
	/* Whatever the ioctl copies out; the count comes first. */
	unsigned char out[_IOC_SIZE(IOC_WATCH_QUEUE_TAKE_LOSS)] = { 0 };
	int err = ioctl(d->r.fd, IOC_WATCH_QUEUE_TAKE_LOSS, out) < 0 ? errno : 0;

	record(d, OP_TAKE_LOSS, NULL, 0, err, out, sizeof(out));
}

static void op_set_filter(struct driver *d, const void *blob, uint32_t len)
{
	unsigned char arg[4 + 8 + MAX_FILTERS * sizeof(struct watch_notification_type_filter)];
	uint32_t is_null = !blob;
	int err;

	err = ioctl(d->r.fd, IOC_WATCH_QUEUE_SET_FILTER, blob) < 0 ? errno : 0;
	memcpy(arg, &is_null, 4);
	if (blob)
		memcpy(arg + 4, blob, len);
	record(d, OP_SET_FILTER, arg, 4 + len, err, NULL, 0);
}

static void op_hostile_tail(struct driver *d, uint32_t kind, uint32_t v)
{
	uint32_t head = head_now(d), n = d->r.nr_slots, tail;
	static const int32_t edge[] = { -1, 0, 1, 2 };

	switch (kind) {
	case W_TAIL_AHEAD:
		tail = head + 1 + v % (1u << 31);
		break;
	case W_TAIL_BEHIND:
		tail = head - n - 1 - v % (1u << 31);
		break;
	case W_TAIL_META:
		tail = (head & ~d->r.mask) + 1 - n * (v % 3);
		break;
	case W_TAIL_EDGE:
		tail = head - n + edge[v % 4];
		break;
	default:
		tail = v;
	}
	if (!d->in_hostile) {
		d->in_hostile = true;
		d->head_at_hostile = head;
	}
	write_u32(d, kind, offsetof(struct watch_queue_ring_meta, tail), tail);
}

static void op_restore_tail(struct driver *d)
{
	if (!d->in_hostile) {
		record_why(d, OP_NOP, W_RESTORE_TAIL);
		return;
	}
	/* Records got in under a sane-looking hostile tail and may have
	 * overwritten unread ones: the consumer gives up and resynchronises.
	 */
	if (head_now(d) != d->head_at_hostile)
		d->consumer_tail = head_now(d);
	d->in_hostile = false;
	write_u32(d, W_RESTORE_TAIL, offsetof(struct watch_queue_ring_meta, tail),
		  d->consumer_tail);
}

static void op_scribble_head(struct driver *d, uint32_t v)
{
	if (!d->head_scribbled)
		d->real_head = head_now(d);
	d->head_scribbled = true;
	d->scribbled = v;
	write_u32(d, W_SCRIBBLE_HEAD, offsetof(struct watch_queue_ring_meta, head), v);
}

static void op_restore_head(struct driver *d)
{
	uint32_t now = head_now(d);

	/* A record that got in published the kernel's head over the scribble. */
	d->head_scribbled = false;
	write_u32(d, W_RESTORE_HEAD, offsetof(struct watch_queue_ring_meta, head),
		  now != d->scribbled ? now : d->real_head);
}

/* Scribble on slots the consumer has released, never on slot 1. */
static void op_scribble_free(struct driver *d, uint32_t pos, const unsigned char *data,
			     uint32_t len)
{
	uint32_t n = d->r.nr_slots, head = head_now(d);
	uint32_t free_slots = d->consumer_tail + n - head;
	uint32_t start, off, room;

	if (d->in_hostile || free_slots == 0 || free_slots > n) {
		record_why(d, OP_NOP, W_SCRIBBLE_FREE);
		return;
	}
	start = pos % (free_slots * SLOT);
	off = ((head + start / SLOT) & d->r.mask) * SLOT + start % SLOT;
	room = free_slots * SLOT - start;
	if (len > room)
		len = room;
	if (len > n * SLOT - off)
		len = n * SLOT - off;
	if (off < 8) {
		if (len > 8 - off)
			len = 8 - off;
	} else if (off < 16) {
		record_why(d, OP_NOP, W_SCRIBBLE_FREE);
		return;
	}
	write_bytes(d, W_SCRIBBLE_FREE, off, data, len);
}

/* --- generation ---------------------------------------------------------------- */

static double unit(struct driver *d)
{
	return (splitmix(&d->rng) >> 11) * (1.0 / 9007199254740992.0);
}

static uint32_t below(struct driver *d, uint32_t n)
{
	return splitmix(&d->rng) % n;
}

static void fill(struct driver *d, unsigned char *p, size_t len)
{
	while (len) {
		uint64_t w = splitmix(&d->rng);
		size_t k = len < 8 ? len : 8;

		memcpy(p, &w, k);
		p += k;
		len -= k;
	}
}

static void put_header(unsigned char *p, uint32_t type, uint32_t subtype, uint32_t info)
{
	struct watch_notification n = { .type = type, .subtype = subtype, .info = info };

	memcpy(p, &n, sizeof(n));
}

/*
 * A valid record: half of them KEY_NOTIFY, else of type 1..1023; any subtype
 * and info bits 8..31; bits 6..7 set one time in 16 (the ring clears them).
 */
static uint32_t gen_record(struct driver *d, const struct phase *ph, unsigned char *p,
			   uint32_t *src)
{
	uint64_t bits = splitmix(&d->rng);
	uint32_t nr = ph->lo + (bits & 0xff) % (ph->hi - ph->lo + 1);
	uint32_t type = bits & 0x100 ? WATCH_TYPE_KEY_NOTIFY : 1 + (bits >> 9 & 0x3ff) % 1023;
	uint32_t info = (uint32_t)(bits >> 19 & 0xffffff) << 8 | nr;

	if ((bits >> 43 & 0xf) == 0)
		info |= (uint32_t)(bits >> 47 & 3) << 6;
	put_header(p, type, bits >> 49 & 0xff, info);
	*src = below(d, POOL_SIZE);
	return nr * SLOT;
}

/* A record the injection ioctl must refuse: of type META, or of 0 slots. */
static uint32_t gen_bad_record(struct driver *d, unsigned char *p)
{
	if (unit(d) < 0.5)
		put_header(p, WATCH_TYPE_META, below(d, 256), 1);
	else
		put_header(p, 1, 0, (uint32_t)(splitmix(&d->rng) & 0x3ffffff) << 6);
	return SLOT;
}

static void gen_type_filter(struct driver *d, struct watch_notification_type_filter *f)
{
	/*
	 * Types 2..63 are avoided: the kernel knows WATCH_TYPE__NR types and
	 * drops filters for others; 64..1023 are unknown everywhere.
	 */
	static const uint32_t types[] = { 0, 1, 1, 1 };
	uint32_t pick = below(d, 5), mask = 0, i;

	f->type = pick < 4 ? types[pick] : 64 + below(d, 960);
	if (unit(d) < 0.3)
		mask = 1u << (7 + below(d, 25));
	f->info_filter = (uint32_t)splitmix(&d->rng) & mask;
	f->info_mask = mask;
	for (i = 0; i < 8; i++)
		f->subtype_filter[i] = (uint32_t)splitmix(&d->rng);
}

/* Builds a filter in @buf; returns its length, or 0 for "remove the filter". */
static uint32_t gen_filter(struct driver *d, unsigned char *buf)
{
	struct watch_notification_filter *wf = (void *)buf;
	struct watch_notification_type_filter *f = wf->filters;
	double roll = unit(d);
	uint32_t nr, i, bad;

	if (roll < 0.5)
		return 0;
	nr = 1 + below(d, 3);
	for (i = 0; i < nr; i++)
		gen_type_filter(d, &f[i]);
	wf->nr_filters = nr;
	wf->__reserved = 0;
	if (roll >= 0.9) {
		bad = below(d, 5);	/* each one is EINVAL */
		if (bad == 0) {
			wf->nr_filters = 0;
		} else if (bad == 1) {
			for (i = nr; i < nr * FILTER_MAX + 1; i++)
				f[i] = f[i % nr];
			wf->nr_filters = nr * FILTER_MAX + 1;
		} else if (bad == 2) {
			wf->__reserved = 1 + below(d, 0xffffffffu);
		} else if (bad == 3) {
			f[0].info_filter |= 0x100;
			f[0].info_mask &= ~0x100u;
		} else {
			f[0].info_filter = 0;
			f[0].info_mask = 1u << below(d, 7);
		}
	}
	return sizeof(*wf) + wf->nr_filters * sizeof(*f);
}

static bool more(struct driver *d)
{
	return d->index - 1 < d->nr_ops;	/* index 0 is the OPEN record */
}

static void inject_some(struct driver *d, const struct phase *ph, uint32_t count)
{
	unsigned char hdr[SLOT];
	uint32_t len, src;

	while (count--) {
		len = gen_record(d, ph, hdr, &src);
		if (more(d))
			op_inject(d, hdr, src, len);
	}
}

/* One random step; the random draws never depend on the ring's state. */
static void step(struct driver *d, const struct phase *ph)
{
	unsigned char buf[sizeof(struct watch_notification_filter) +
			  MAX_FILTERS * sizeof(struct watch_notification_type_filter)];
	double roll = unit(d);
	uint32_t len, kind, v, src;

	if (roll < 0.004) {
		len = gen_filter(d, buf);
		op_set_filter(d, len ? buf : NULL, len);
	} else if (roll < 0.02) {
		op_take_loss(d);
	} else if (roll < 0.022) {
		len = gen_bad_record(d, buf);
		op_inject(d, buf, 0, len);
	} else if (d->hostile && roll < 0.04) {
		kind = below(d, NR_HOSTILE_KINDS);
		v = (uint32_t)splitmix(&d->rng);
		op_hostile_tail(d, kind, v);
		inject_some(d, ph, 1 + below(d, 6));
		if (more(d))
			op_restore_tail(d);
	} else if (d->hostile && roll < 0.05) {
		op_scribble_head(d, (uint32_t)splitmix(&d->rng));
		inject_some(d, ph, below(d, 4));
		if (more(d))
			op_restore_head(d);
	} else if (d->hostile && roll < 0.07) {
		v = (uint32_t)splitmix(&d->rng);
		len = 1 + below(d, 200);
		fill(d, buf, len);
		op_scribble_free(d, v, buf, len);
	} else if (unit(d) < ph->consume_p) {
		op_consume(d, unit(d) < 0.5 ? 0 : 1 + below(d, 8));
	} else {
		len = gen_record(d, ph, buf, &src);
		op_inject(d, buf, src, len);
	}
}

/* Leave the ring sane, drain it and take the pending loss. */
static void finish(struct driver *d)
{
	if (d->in_hostile)
		op_restore_tail(d);
	if (d->head_scribbled)
		op_restore_head(d);
	op_consume(d, 0);
	op_take_loss(d);
	put32(d, OP_END);
	put32(d, d->index);
}

static void usage(void)
{
	fprintf(stderr, "usage: ring_diff_driver --seed S --name NAME --ops N --pages P "
		"[--hostile] --out FILE [--device PATH]\n");
	exit(1);
}

int main(int argc, char **argv)
{
	const char *name = NULL, *out = NULL, *device = DEV_PATH;
	unsigned long long seed = 0;
	unsigned int pages = 0;
	static struct driver d;
	unsigned char probe[SLOT];
	uint32_t page_size, name_len, block;
	const struct phase *ph;
	int i, ret;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--hostile"))
			d.hostile = true;
		else if (i + 1 >= argc)
			usage();
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--name"))
			name = argv[++i];
		else if (!strcmp(argv[i], "--ops"))
			d.nr_ops = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--pages"))
			pages = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--out"))
			out = argv[++i];
		else if (!strcmp(argv[i], "--device"))
			device = argv[++i];
		else
			usage();
	}
	if (!name || !out || !pages)
		usage();

	ret = ring_open(&d.r, device, pages);
	if (ret)
		return ret;
	/* A kernel without CONFIG_WATCH_QUEUE_TEST_INJECT cannot be driven. */
	put_header(probe, WATCH_TYPE_KEY_NOTIFY, 0, 1);
	if (ioctl(d.r.fd, IOC_WATCH_QUEUE_INJECT, probe) < 0 && errno == ENOTTY) {
		fprintf(stderr, "kernel lacks CONFIG_WATCH_QUEUE_TEST_INJECT\n");
		return KSFT_SKIP;
	}
	/* The probe's record is in the ring now: start again on a fresh one. */
	munmap(d.r.map, d.r.len);
	close(d.r.fd);
	free(d.r.shadow);
	ret = ring_open(&d.r, device, pages);
	if (ret)
		return ret;

	d.out = fopen(out, "wb");
	if (!d.out)
		die(out);
	setvbuf(d.out, NULL, _IOFBF, 1 << 20);
	/* The generator's seed: S, then the subtest's name (FNV-1a). */
	d.rng = seed;
	for (i = 0; name[i]; i++)
		d.rng = (d.rng ^ (unsigned char)name[i]) * 0x100000001b3ull;

	page_size = sysconf(_SC_PAGESIZE);
	name_len = strlen(name);
	put(&d, TRACE_MAGIC, 8);
	put32(&d, TRACE_VERSION);
	put32(&d, pages);
	put32(&d, page_size);
	put32(&d, d.hostile);
	put32(&d, d.nr_ops);
	put(&d, &seed, sizeof(seed));
	put32(&d, name_len);
	put(&d, name, name_len);
	fill(&d, d.pool, sizeof(d.pool));
	put32(&d, sizeof(d.pool));
	put(&d, d.pool, sizeof(d.pool));

	record(&d, OP_OPEN, NULL, 0, 0, NULL, 0);	/* the fresh mapping */
	while (more(&d)) {
		ph = &phases[below(&d, ARRAY_SIZE(phases))];
		for (block = 50 + below(&d, 351); block && more(&d); block--)
			step(&d, ph);
	}
	finish(&d);
	if (fclose(d.out))
		die(out);
	return 0;
}
