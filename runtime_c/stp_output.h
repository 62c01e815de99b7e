/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_output.h - per-context print buffers and the module's output ring.
 *
 * Handlers format into their context's buffer (c->out) and commit it as one
 * record at probe exit, so lines of concurrent handlers never interleave.
 * The ring is a plain byte ring of (struct stp_record_hdr + payload)
 * records under one spinlock. Writers may run in hardirq or NMI-like kprobe
 * context, so they only ever trylock (bounded) and drop the record on
 * failure; nothing here wakes anybody up: the reader polls.
 */
#ifndef STP_OUTPUT_H
#define STP_OUTPUT_H

#ifndef STP_USER
#include <linux/vmalloc.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>
#include <linux/smp.h>
#endif

/* Largest record we accept; the reader's bounce buffer holds at least one. */
#define STP_MAX_RECORD (sizeof(struct stp_record_hdr) + \
			STP_PRINT_BUF_LEN + 4 * MAXSTRINGLEN + 64)
#define STP_READ_CHUNK max_t(size_t, 65536, STP_MAX_RECORD)
/* Writer lock attempts before a record is dropped (never spin forever). */
#ifndef STP_RING_TRIES
#define STP_RING_TRIES 20000
#endif

struct stp_ring {
	spinlock_t lock;
	char *buf;		/* STP_BUFSIZE bytes, vmalloc'd */
	size_t head;		/* next byte to write */
	size_t tail;		/* next byte to read */
	size_t used;		/* bytes of whole records stored */
};

static struct stp_ring stp_ring = {
	.lock = __SPIN_LOCK_UNLOCKED(stp_ring.lock),
};
static char *stp_read_bounce;		/* STP_READ_CHUNK bytes */
static DEFINE_MUTEX(stp_read_mutex);	/* one reader at a time */

/* Scratch for stp_warn(), one per CPU; busy guards NMI-style reentry. */
struct stp_msgbuf {
	atomic_t busy;
	char buf[2 * MAXSTRINGLEN];
};
static struct stp_msgbuf *stp_msgbufs;	/* nr_cpu_ids entries */

struct stp_frag {
	const char *p;
	size_t len;
};

static void stp_ring_put(size_t *pos, const void *src, size_t n)
{
	size_t first = min_t(size_t, n, STP_BUFSIZE - *pos);

	memcpy(stp_ring.buf + *pos, src, first);
	if (n > first)
		memcpy(stp_ring.buf, (const char *)src + first, n - first);
	*pos += n;
	if (*pos >= STP_BUFSIZE)
		*pos -= STP_BUFSIZE;
}

static void stp_ring_get(size_t pos, void *dst, size_t n)
{
	size_t first = min_t(size_t, n, STP_BUFSIZE - pos);

	memcpy(dst, stp_ring.buf + pos, first);
	if (n > first)
		memcpy((char *)dst + first, stp_ring.buf, n - first);
}

/* Commit the concatenation of @frags as one record; false if dropped. */
static bool stp_ring_write(int channel, const struct stp_frag *frags,
			   int nfrags)
{
	struct stp_record_hdr hdr = { .channel = channel, .flags = 0 };
	unsigned long flags;
	size_t total = 0, need;
	int i, tries = 0;

	for (i = 0; i < nfrags; i++)
		total += frags[i].len;
	need = sizeof(hdr) + total;
	if (unlikely(!stp_ring.buf || need > STP_MAX_RECORD ||
		     need > STP_BUFSIZE))
		goto drop;
	hdr.len = (u32)total;

	while (!spin_trylock_irqsave(&stp_ring.lock, flags)) {
		if (++tries >= STP_RING_TRIES)
			goto drop;
		cpu_relax();
	}
	if (STP_BUFSIZE - stp_ring.used < need) {
		spin_unlock_irqrestore(&stp_ring.lock, flags);
		goto drop;
	}
	stp_ring_put(&stp_ring.head, &hdr, sizeof(hdr));
	for (i = 0; i < nfrags; i++)
		if (frags[i].len)
			stp_ring_put(&stp_ring.head, frags[i].p, frags[i].len);
	stp_ring.used += need;
	spin_unlock_irqrestore(&stp_ring.lock, flags);
	return true;
drop:
	atomic_inc(&stp_dropped_count);
	return false;
}

static __maybe_unused void stp_print_flush(struct stp_context *c)
{
	struct stp_frag f;

	if (!c->out.len)
		return;
	f.p = c->out.buf;
	f.len = c->out.len;
	stp_ring_write(STP_CHAN_STDOUT, &f, 1);
	c->out.len = 0;
}

static void stp_out_append(struct stp_context *c, const char *s, size_t n)
{
	while (n) {
		size_t room = STP_PRINT_BUF_LEN - c->out.len;
		size_t k;

		if (!room) {
			/* Full mid-handler: commit what we have early. */
			stp_print_flush(c);
			continue;
		}
		k = min(n, room);
		memcpy(c->out.buf + c->out.len, s, k);
		c->out.len += k;
		s += k;
		n -= k;
	}
}

static __maybe_unused void stp_print_str(struct stp_context *c, const char *s)
{
	if (s)
		stp_out_append(c, s, strlen(s));
}

static __maybe_unused void stp_print_char(struct stp_context *c, int ch)
{
	char b = (char)ch;

	stp_out_append(c, &b, 1);
}

static __maybe_unused void stp_print_long(struct stp_context *c, stp_long v)
{
	char tmp[24];
	int n = scnprintf(tmp, sizeof(tmp), "%lld", (long long)v);

	stp_out_append(c, tmp, n);
}

/* printf(): SystemTap's formatter (stp_format.h) into the print buffer. */
static __maybe_unused void stp_printf(struct stp_context *c, const char *fmt, ...)
{
	size_t room = STP_PRINT_BUF_LEN - c->out.len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = stp_vformat(c, c->out.buf + c->out.len, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;		/* a %m fault: an error, and nothing printed */
	if ((size_t)n < room) {
		c->out.len += n;
		return;
	}
	/*
	 * Did not fit: the partial text is discarded (len unchanged), flush
	 * and format again into the empty buffer; a single item longer than
	 * the whole buffer is truncated.
	 */
	if (c->out.len) {
		stp_print_flush(c);
		va_start(ap, fmt);
		n = stp_vformat(c, c->out.buf, STP_PRINT_BUF_LEN, fmt, ap);
		va_end(ap);
	}
	if (n > 0)
		c->out.len = min_t(size_t, n, STP_PRINT_BUF_LEN - 1);
}

/* "<prefix><formatted>\n" on stderr, from any context. */
static __printf(2, 0) void stp_vmsg(const char *prefix, const char *fmt,
				    va_list ap)
{
	struct stp_frag f[3];
	struct stp_msgbuf *mb;
	int cpu = get_cpu();

	if (unlikely(!stp_msgbufs)) {
		atomic_inc(&stp_dropped_count);
		goto out;
	}
	mb = &stp_msgbufs[cpu];
	if (atomic_xchg(&mb->busy, 1)) {
		atomic_inc(&stp_dropped_count);
		goto out;
	}
	f[0].p = prefix;
	f[0].len = strlen(prefix);
	f[1].p = mb->buf;
	f[1].len = vscnprintf(mb->buf, sizeof(mb->buf), fmt, ap);
	f[2].p = "\n";
	f[2].len = 1;
	stp_ring_write(STP_CHAN_STDERR, f, 3);
	atomic_set(&mb->busy, 0);
out:
	put_cpu();
}

static __maybe_unused __printf(1, 2) void stp_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stp_vmsg("WARNING: ", fmt, ap);
	va_end(ap);
}

static __maybe_unused __printf(1, 2) void stp_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	stp_vmsg("ERROR: ", fmt, ap);
	va_end(ap);
}

/* Append to a MAXSTRINGLEN message; false once it is full (truncated). */
static bool stp_msg_cat(char *buf, size_t *pos, const char *s)
{
	size_t n;

	if (*pos >= MAXSTRINGLEN - 1)
		return false;
	n = strnlen(s, MAXSTRINGLEN);
	if (*pos + n > MAXSTRINGLEN - 1) {
		memcpy(buf + *pos, s, MAXSTRINGLEN - 1 - *pos);
		*pos = MAXSTRINGLEN - 1;
		return false;
	}
	memcpy(buf + *pos, s, n);
	*pos += n;
	return true;
}

/*
 * Report c->last_error as SystemTap does:
 *   ERROR: <msg> near <stmt>[ (called from <call site>)...] in probe <pp>
 * built in a MAXSTRINGLEN buffer (a long chain is cut there, and then the
 * probe point is left out). The buffer is the context's own, so reporting
 * cannot fail for lack of memory.
 */
static __maybe_unused void stp_softerror(struct stp_context *c)
{
	char *buf = c->report_buffer;
	const char *near[MAXNESTING + 2];
	struct stp_frag f[3];
	size_t pos = 0;
	int i, n = 0;
	bool full = false;

	if (c->last_stmt)
		near[n++] = c->last_stmt;
	for (i = min(c->error_depth, MAXNESTING) - 1; i >= 0; i--)
		if (c->call_site[i])
			near[n++] = c->call_site[i];
	full = !stp_msg_cat(buf, &pos, c->last_error ? c->last_error : "unknown error");
	for (i = 0; i < n && !full; i++) {
		full = !stp_msg_cat(buf, &pos, i == 0 ? " near " : " (called from ");
		if (!full)
			full = !stp_msg_cat(buf, &pos, near[i]);
		if (!full && i > 0)
			full = !stp_msg_cat(buf, &pos, ")");
	}
	if (n && !full && c->probe && c->probe->pp) {
		if (stp_msg_cat(buf, &pos, " in probe "))
			stp_msg_cat(buf, &pos, c->probe->pp);
	}
	f[0].p = "ERROR: ";
	f[0].len = 7;
	f[1].p = buf;
	f[1].len = pos;
	f[2].p = "\n";
	f[2].len = 1;
	stp_ring_write(STP_CHAN_STDERR, f, 3);
}

/* Process context, module init. */
static int stp_output_init(void)
{
	stp_ring.buf = vmalloc(STP_BUFSIZE);
	stp_read_bounce = vmalloc(STP_READ_CHUNK);
	stp_msgbufs = vzalloc(array_size(nr_cpu_ids,
					 sizeof(struct stp_msgbuf)));
	if (!stp_ring.buf || !stp_read_bounce || !stp_msgbufs)
		return -ENOMEM;
	stp_ring.head = 0;
	stp_ring.tail = 0;
	stp_ring.used = 0;
	return 0;
}

/* Process context, after every probe is gone and procfs is removed. */
static void stp_output_free(void)
{
	vfree(stp_ring.buf);
	stp_ring.buf = NULL;
	vfree(stp_read_bounce);
	stp_read_bounce = NULL;
	vfree(stp_msgbufs);
	stp_msgbufs = NULL;
}

/*
 * Read whole records into @ubuf. Records are moved to a bounce buffer under
 * the lock (short, bounded) and copied to user space after dropping it,
 * because copy_to_user may fault and sleep.
 */
static ssize_t stp_output_read(char __user *ubuf, size_t count)
{
	struct stp_record_hdr hdr;
	unsigned long flags;
	size_t limit = min_t(size_t, count, STP_READ_CHUNK);
	size_t copied = 0, rec;
	bool too_small = false;
	ssize_t ret;

	if (mutex_lock_interruptible(&stp_read_mutex))
		return -ERESTARTSYS;
	if (!stp_ring.buf || !stp_read_bounce) {
		mutex_unlock(&stp_read_mutex);
		return 0;
	}
	spin_lock_irqsave(&stp_ring.lock, flags);
	while (stp_ring.used >= sizeof(hdr)) {
		stp_ring_get(stp_ring.tail, &hdr, sizeof(hdr));
		rec = sizeof(hdr) + hdr.len;
		if (copied + rec > limit) {
			too_small = !copied;
			break;
		}
		stp_ring_get(stp_ring.tail, stp_read_bounce + copied, rec);
		stp_ring.tail += rec;
		if (stp_ring.tail >= STP_BUFSIZE)
			stp_ring.tail -= STP_BUFSIZE;
		stp_ring.used -= rec;
		copied += rec;
	}
	spin_unlock_irqrestore(&stp_ring.lock, flags);

	if (too_small)
		ret = -EINVAL;
	else if (copied && copy_to_user(ubuf, stp_read_bounce, copied))
		ret = -EFAULT;
	else
		ret = copied;
	mutex_unlock(&stp_read_mutex);
	return ret;
}

#endif /* STP_OUTPUT_H */
