/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_stat.h - statistics (the <<< operator) and per-CPU scalar statistics.
 */
#ifndef STP_STAT_H
#define STP_STAT_H

#include <linux/slab.h>

struct stp_stat {
	stp_long count, sum, min, max;
};

enum stp_agg {
	STP_AGG_COUNT = 0,
	STP_AGG_SUM,
	STP_AGG_MIN,
	STP_AGG_MAX,
	STP_AGG_AVG,
};

static __maybe_unused void stp_stat_add(struct stp_stat *s, stp_long v)
{
	if (s->count == 0) {
		s->min = v;
		s->max = v;
	} else {
		if (v < s->min)
			s->min = v;
		if (v > s->max)
			s->max = v;
	}
	s->count++;
	s->sum += v;
}

static __maybe_unused void stp_stat_merge(struct stp_stat *dst,
					  const struct stp_stat *src)
{
	if (src->count == 0)
		return;
	if (dst->count == 0) {
		*dst = *src;
		return;
	}
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* Value of @agg without error reporting (empty -> 0); used for sorting. */
static stp_long stp_stat_value(const struct stp_stat *s, int agg)
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
	}
	return 0;
}

static __maybe_unused stp_long stp_stat_extract(struct stp_context *c,
						const struct stp_stat *s,
						int agg)
{
	if (agg != STP_AGG_COUNT && s->count == 0) {
		STP_ERROR(c, "empty aggregate");
		return 0;
	}
	return stp_stat_value(s, agg);
}

/* A scalar statistic with one slot per CPU, so <<< needs no shared lock. */
struct stp_pstat {
	struct stp_stat __percpu *cpu;
};

static __maybe_unused struct stp_pstat *stp_pstat_new(void)
{
	struct stp_pstat *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return NULL;
	p->cpu = alloc_percpu(struct stp_stat);
	if (!p->cpu) {
		kfree(p);
		return NULL;
	}
	return p;
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
	stp_stat_add(this_cpu_ptr(p->cpu), v);
}

static __maybe_unused void stp_pstat_get(struct stp_pstat *p,
					 struct stp_stat *out)
{
	int cpu;

	memset(out, 0, sizeof(*out));
	for_each_possible_cpu(cpu)
		stp_stat_merge(out, per_cpu_ptr(p->cpu, cpu));
}

static __maybe_unused void stp_pstat_clear(struct stp_pstat *p)
{
	int cpu;

	for_each_possible_cpu(cpu)
		memset(per_cpu_ptr(p->cpu, cpu), 0, sizeof(struct stp_stat));
}

#endif /* STP_STAT_H */
