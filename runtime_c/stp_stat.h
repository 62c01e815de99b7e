/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_stat.h - statistics (the <<< operator), per-CPU scalar statistics,
 * @variance and histograms.
 *
 * A statistic always keeps count, sum, min and max. What else it keeps is
 * decided per global at translate time (struct stp_stat_spec, NULL for
 * nothing): a running variance when the script uses @variance on it, and
 * a linear or log histogram when it uses @hist_linear/@hist_log. Buckets
 * follow the struct, so a statistic's size depends on its spec
 * (stp_stat_size()).
 *
 * Histograms print exactly as SystemTap's do: a "value |---...--- count"
 * header, one row per bucket with '@' bars scaled to HIST_WIDTH, runs of
 * empty buckets beyond HIST_ELISION on each side of data elided to "~".
 */
#ifndef STP_STAT_H
#define STP_STAT_H

#ifndef STP_USER
#include <linux/slab.h>
#include <linux/percpu.h>
#endif

#ifndef HIST_WIDTH
#define HIST_WIDTH 50
#endif
#ifndef HIST_ELISION
#define HIST_ELISION 2
#endif
#define STP_HIST_LOG_BUCKETS 128
#define STP_HIST_LOG_BUCKET0 64

enum stp_hist_type {
	STP_HIST_NONE = 0,
	STP_HIST_LINEAR = 1,
	STP_HIST_LOG = 2,
};

struct stp_stat_spec {
	u8 hist;		/* enum stp_hist_type */
	bool variance;		/* keep avg_s/m2 (only if @variance is used) */
	int shift;		/* @variance(x, shift): fixed-point bits */
	stp_long start, interval;	/* linear histograms */
	int buckets;		/* incl. under- and overflow for linear */
};

struct stp_stat {
	stp_long count, sum, min, max;
	stp_long avg_s;		/* running mean << shift (Welford) */
	stp_long m2;		/* running sum of squared deviations << 2*shift */
	stp_long hist[];	/* spec->buckets counters */
};

/* A statistic with room for @nb buckets, for frames and stack copies. */
#define STP_STAT_DECL(name, nb) \
	union { struct stp_stat s; stp_long raw[sizeof(struct stp_stat) / sizeof(stp_long) + (nb) + 1]; } name

enum stp_agg {
	STP_AGG_COUNT = 0,
	STP_AGG_SUM,
	STP_AGG_MIN,
	STP_AGG_MAX,
	STP_AGG_AVG,
	STP_AGG_VARIANCE,
};

static inline int stp_stat_buckets(const struct stp_stat_spec *sp)
{
	return sp && sp->hist ? sp->buckets : 0;
}

static inline size_t stp_stat_size(const struct stp_stat_spec *sp)
{
	return sizeof(struct stp_stat) + stp_stat_buckets(sp) * sizeof(stp_long);
}

/*
 * Whole-statistic copy and clear. Not memcpy/memset: the kernel's
 * FORTIFY_SOURCE (rightly) warns about writes past sizeof(struct stp_stat)
 * into the flexible hist[] through a struct pointer.
 */
static inline void stp_stat_zero(const struct stp_stat_spec *sp, struct stp_stat *s)
{
	int i, nb = stp_stat_buckets(sp);

	s->count = s->sum = s->min = s->max = s->avg_s = s->m2 = 0;
	for (i = 0; i < nb; i++)
		s->hist[i] = 0;
}

static inline void stp_stat_copy(const struct stp_stat_spec *sp, struct stp_stat *dst,
				 const struct stp_stat *src)
{
	int i, nb = stp_stat_buckets(sp);

	dst->count = src->count;
	dst->sum = src->sum;
	dst->min = src->min;
	dst->max = src->max;
	dst->avg_s = src->avg_s;
	dst->m2 = src->m2;
	for (i = 0; i < nb; i++)
		dst->hist[i] = src->hist[i];
}

/* Log histogram bucket of @v: 64 for 0, 65.. for 1, 2-3, 4-7..., below 64
 * for negative values. */
static inline int stp_hist_log_bucket(stp_long v)
{
	u64 m;
	int b;

	if (v == 0)
		return STP_HIST_LOG_BUCKET0;
	m = v < 0 ? 0 - (u64)v : (u64)v;
	b = 64 - __builtin_clzll(m);		/* 1..64 */
	b = STP_HIST_LOG_BUCKET0 + b;		/* 65..128 */
	if (v < 0)
		b = STP_HIST_LOG_BUCKETS - b;
	if (b >= STP_HIST_LOG_BUCKETS)
		b = STP_HIST_LOG_BUCKETS - 1;
	if (b < 0)
		b = 0;
	return b;
}

/* The smallest value of log bucket @b, as printed in the value column. */
static inline stp_long stp_hist_log_value(int b)
{
	if (b == STP_HIST_LOG_BUCKET0)
		return 0;
	if (b < STP_HIST_LOG_BUCKET0)
		return (stp_long)((s64)0x8000000000000000LL >> b);
	return (stp_long)(1ULL << (b - STP_HIST_LOG_BUCKET0 - 1));
}

static __maybe_unused void stp_stat_add(const struct stp_stat_spec *sp,
					struct stp_stat *s, stp_long v)
{
	if (s->count == 0) {
		s->count = 1;
		s->sum = s->min = s->max = v;
		if (sp && sp->variance) {
			s->avg_s = (stp_long)((u64)v << sp->shift);
			s->m2 = 0;
		}
	} else {
		s->count++;
		s->sum += v;
		if (v > s->max)
			s->max = v;
		if (v < s->min)
			s->min = v;
		if (sp && sp->variance) {
			stp_long vs = (stp_long)((u64)v << sp->shift);
			stp_long delta = vs - s->avg_s;

			s->avg_s += div64_s64(delta, s->count);
			s->m2 += delta * (vs - s->avg_s);
		}
	}
	if (!sp || !sp->hist)
		return;
	if (sp->hist == STP_HIST_LOG) {
		s->hist[stp_hist_log_bucket(v)]++;
	} else {
		stp_long b;

		if (v < sp->start) {
			b = 0;
		} else {
			b = (stp_long)div64_u64((u64)(v - sp->start), (u64)sp->interval) + 1;
			if (b >= sp->buckets - 1)
				b = sp->buckets - 1;
		}
		s->hist[b]++;
	}
}

/* dst += src (statistics of two CPUs): Chan et al.'s parallel variance. */
static __maybe_unused void stp_stat_merge(const struct stp_stat_spec *sp,
					  struct stp_stat *dst,
					  const struct stp_stat *src)
{
	int i, nb = stp_stat_buckets(sp);

	if (src->count == 0)
		return;
	if (dst->count == 0) {
		stp_stat_copy(sp, dst, src);
		return;
	}
	if (sp && sp->variance) {
		stp_long n = dst->count + src->count;
		stp_long delta = src->avg_s - dst->avg_s;

		dst->m2 += src->m2 + div64_s64(delta * dst->count, n) * delta * src->count;
		dst->avg_s += div64_s64(delta * src->count, n);
	}
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	for (i = 0; i < nb; i++)
		dst->hist[i] += src->hist[i];
}

/* Value of @agg without error reporting (empty -> 0); used for sorting. */
static stp_long stp_stat_value(const struct stp_stat_spec *sp,
			       const struct stp_stat *s, int agg)
{
	switch (agg) {
	case STP_AGG_COUNT:
		return s->count;
	case STP_AGG_SUM:
		return s->sum;
	case STP_AGG_MIN:
		return s->count ? s->min : 0;
	case STP_AGG_MAX:
		return s->count ? s->max : 0;
	case STP_AGG_AVG:
		return s->count ? div64_s64(s->sum, s->count) : 0;
	case STP_AGG_VARIANCE:
		if (!sp || !sp->variance || s->count < 2)
			return 0;
		return div64_s64(s->m2, s->count - 1) >> (2 * sp->shift);
	}
	return 0;
}

static __maybe_unused stp_long stp_stat_extract(struct stp_context *c,
						const struct stp_stat_spec *sp,
						const struct stp_stat *s,
						int agg)
{
	if (agg != STP_AGG_COUNT && s->count == 0) {
		STP_ERROR(c, "empty aggregate");
		return 0;
	}
	return stp_stat_value(sp, s, agg);
}

/* @hist_*(x)[i] */
static __maybe_unused stp_long stp_stat_bucket(struct stp_context *c,
					       const struct stp_stat_spec *sp,
					       const struct stp_stat *s,
					       stp_long i)
{
	if (i < 0 || i >= stp_stat_buckets(sp)) {
		STP_ERROR(c, "histogram index out of range");
		return 0;
	}
	return s->hist[i];
}

static int stp_needed_space(stp_long v)
{
	int space = 0;
	u64 t;

	if (v == 0)
		return 1;
	if (v < 0) {
		space++;
		t = 0 - (u64)v;
	} else {
		t = (u64)v;
	}
	while (t) {
		t /= 10;
		space++;
	}
	return space;
}

/* print(@hist_linear(...)) / print(@hist_log(...)) */
static __maybe_unused void stp_stat_print_histogram(struct stp_context *c,
						     const struct stp_stat_spec *sp,
						     const struct stp_stat *s)
{
	int i, j, nb = stp_stat_buckets(sp);
	int low = -1, high = 0, under = 0, over = 0, eliding = 0;
	int val_space, cnt_space;
	stp_long valmax = 0, val;
	u64 scale, v;

	if (!nb)
		return;
	if (s->count == 0) {
		STP_ERROR(c, "empty aggregate");
		return;
	}
	for (i = 0; i < nb; i++) {
		if (s->hist[i] > 0 && low == -1)
			low = i;
		if (s->hist[i] > 0)
			high = i;
		if (s->hist[i] > valmax)
			valmax = s->hist[i];
	}
	/* Up to two empty buckets of margin on each side of the data. */
	for (i = 0; i < 2; i++) {
		if (sp->hist == STP_HIST_LOG) {
			if (low != STP_HIST_LOG_BUCKET0 && low > 0)
				low--;
		} else if (low > 0) {
			low--;
		}
		if (high < nb - 1)
			high++;
	}
	if (sp->hist == STP_HIST_LINEAR) {
		if (low == 0 && s->hist[0] == 0)
			low++;
		if (high == nb - 1 && s->hist[high] == 0)
			high--;
		if (low == 0)
			under = 1;
		if (high == nb - 1)
			over = 1;
	}
	scale = valmax <= HIST_WIDTH ? 1 : div64_u64((u64)valmax + HIST_WIDTH - 1, HIST_WIDTH);
	cnt_space = stp_needed_space(valmax);
	if (sp->hist == STP_HIST_LINEAR)
		val_space = max(stp_needed_space(sp->start) + under,
				stp_needed_space(sp->start + sp->interval * high) + over);
	else
		val_space = max(stp_needed_space(stp_hist_log_value(high)),
				stp_needed_space(stp_hist_log_value(low)));
	val_space = max(val_space, 5);

	stp_printf(c, "%*s |", val_space, "value");
	for (j = 0; j < HIST_WIDTH; j++)
		stp_print_char(c, '-');
	stp_print_str(c, " count\n");
	for (i = low; i <= high; i++) {
		const char *prefix = "";

		if ((long)HIST_ELISION >= 0) {
			int k, elide = 1;
			int max_elide = min_t(long, HIST_ELISION, nb);
			int lo = low, hi = high;

			if (i - max_elide > lo)
				lo = i - max_elide;
			if (i + max_elide < hi)
				hi = i + max_elide;
			for (k = lo; k <= hi; k++)
				if (s->hist[k] != 0)
					elide = 0;
			if (elide) {
				eliding = 1;
				continue;
			}
			if (eliding) {
				stp_printf(c, "%*s ~\n", val_space, "");
				eliding = 0;
			}
		}
		if (sp->hist == STP_HIST_LINEAR) {
			if (i == 0) {
				val = sp->start;
				prefix = "<";
			} else if (i == nb - 1) {
				val = sp->start + (stp_long)(i - 2) * sp->interval;
				prefix = ">";
			} else {
				val = sp->start + (stp_long)(i - 1) * sp->interval;
			}
		} else {
			val = stp_hist_log_value(i);
		}
		stp_printf(c, "%*s%lld |", val_space - stp_needed_space(val), prefix,
			   (long long)val);
		v = div64_u64((u64)s->hist[i], scale);
		for (j = 0; j < (int)v; j++)
			stp_print_char(c, '@');
		stp_printf(c, "%*lld\n", (int)(HIST_WIDTH - v + 1 + cnt_space),
			   (long long)s->hist[i]);
	}
	stp_print_char(c, '\n');
}

/*
 * Per-CPU counters: a long global that probes only add to (x++, x += e)
 * while begin/end/error probes, which never overlap them, read the total
 * and set it (codegen/translate.py decides). An add is this_cpu_add.
 */
#ifdef STP_USER
#define STP_PCOUNTER_DEFINE(name) static stp_long name
#define STP_PCOUNTER_ADD(name, v) ((name) = (stp_long)((u64)(name) + (u64)(v)))
#define STP_PCOUNTER_READ(name) (name)
#define STP_PCOUNTER_SET(name, v) ((name) = (v))
#else
#define STP_PCOUNTER_DEFINE(name) static DEFINE_PER_CPU(u64, name)
#define STP_PCOUNTER_ADD(name, v) this_cpu_add(name, (u64)(v))
#define STP_PCOUNTER_READ(name) ({ \
	u64 __sum = 0; int __cpu; \
	for_each_possible_cpu(__cpu) \
		__sum += per_cpu(name, __cpu); \
	(stp_long)__sum; })
#define STP_PCOUNTER_SET(name, v) do { \
	stp_long __v = (v); int __cpu; \
	for_each_possible_cpu(__cpu) \
		per_cpu(name, __cpu) = 0; \
	per_cpu(name, 0) = (u64)__v; } while (0)
#endif

/* A scalar statistic with one slot per CPU, so <<< needs no shared lock. */
struct stp_pstat {
	const struct stp_stat_spec *spec;
	size_t size;
	void __percpu *cpu;
};

static __maybe_unused struct stp_pstat *stp_pstat_new_spec(const struct stp_stat_spec *sp)
{
	struct stp_pstat *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return NULL;
	p->spec = sp;
	p->size = ALIGN(stp_stat_size(sp), sizeof(stp_long));
#ifdef STP_USER
	p->cpu = calloc(1, p->size);
#else
	p->cpu = __alloc_percpu(p->size, sizeof(stp_long));
#endif
	if (!p->cpu) {
		kfree(p);
		return NULL;
	}
	return p;
}

static __maybe_unused struct stp_pstat *stp_pstat_new(void)
{
	return stp_pstat_new_spec(NULL);
}

static inline struct stp_stat *stp_pstat_cpu(struct stp_pstat *p, int cpu)
{
	return (struct stp_stat *)per_cpu_ptr(p->cpu, cpu);
}

static __maybe_unused void stp_pstat_free(struct stp_pstat *p)
{
	if (!p)
		return;
	free_percpu(p->cpu);
	kfree(p);
}

static __maybe_unused void stp_pstat_add(struct stp_pstat *p, stp_long v)
{
	stp_stat_add(p->spec, (struct stp_stat *)this_cpu_ptr(p->cpu), v);
}

/* Merge every CPU's slot into @out (room for the spec's buckets). */
static __maybe_unused void stp_pstat_get(struct stp_pstat *p,
					 struct stp_stat *out)
{
	int cpu;

	stp_stat_zero(p->spec, out);
	for_each_possible_cpu(cpu)
		stp_stat_merge(p->spec, out, stp_pstat_cpu(p, cpu));
}

static __maybe_unused void stp_pstat_clear(struct stp_pstat *p)
{
	int cpu;

	for_each_possible_cpu(cpu)
		stp_stat_zero(p->spec, stp_pstat_cpu(p, cpu));
}

#endif /* STP_STAT_H */
