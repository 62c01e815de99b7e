/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_timing.h - stap -t: per-probe hit counts and cycles (STP_TIMING).
 *
 * Each probe gets a per-CPU struct stp_timing (generated code defines
 * them, the probe's descriptor points at its own). The probe epilogue adds
 * one sample: the cycles from the end of the prologue to the epilogue, so
 * the handler body with its output flush. Per-CPU, updated with preemption
 * off: no lock and no atomic on the hot path. The report is printed when
 * the session stops, after the end probes, as SystemTap prints it:
 *
 *   ----- probe hit report:
 *   PP, (FILE:LINE:COL), hits: N, cycles: MINmin/AVGavg/MAXmax, variance: V, from: ORIGIN, index: I
 *
 * Only probes that were hit are listed. Without STP_TIMING everything here
 * compiles to nothing. The user-space build (STP_USER) has no per-CPU data
 * and no cycle counter to speak of: -t is a kernel-module option.
 */
#ifndef STP_TIMING_H
#define STP_TIMING_H

#if defined(STP_TIMING) && defined(STP_USER)
#undef STP_TIMING
#endif

#ifdef STP_TIMING
#include <linux/timex.h>
#include <linux/math64.h>

struct stp_timing {
	u64 hits;
	u64 sum;
	u64 sumsq;
	u64 min;
	u64 max;
};

#define STP_TIMING_DESC(name) , .timing = &name
#define STP_TIMING_DEFINE(name) static DEFINE_PER_CPU(struct stp_timing, name);
#define STP_TIMING_START(v) cycles_t v = get_cycles()
#define STP_TIMING_END(t, v) stp_timing_add(t, (u64)(get_cycles() - (v)))

/* Preemption is off (probe context): this CPU's slot is ours alone. */
static __always_inline void stp_timing_add(struct stp_timing __percpu *pt, u64 cycles)
{
	struct stp_timing *t = this_cpu_ptr(pt);

	if (!t->hits || cycles < t->min)
		t->min = cycles;
	if (cycles > t->max)
		t->max = cycles;
	t->hits++;
	t->sum += cycles;
	t->sumsq += cycles * cycles;
}

static void stp_timing_line(const char *text, size_t len)
{
	struct stp_frag f = { .p = text, .len = len };

	stp_ring_write(STP_CHAN_STDOUT, &f, 1);
}

/* Process context, probes disarmed: the per-CPU slots are quiet. */
static __maybe_unused void stp_timing_print(struct stp_timing __percpu *pt, const char *pp,
					    const char *loc, const char *from, int index)
{
	struct stp_timing all = { 0 };
	char line[2 * MAXSTRINGLEN];
	u64 avg, var = 0;
	int cpu, n;

	for_each_possible_cpu(cpu) {
		struct stp_timing *t = per_cpu_ptr(pt, cpu);

		if (!t->hits)
			continue;
		if (!all.hits || t->min < all.min)
			all.min = t->min;
		if (t->max > all.max)
			all.max = t->max;
		all.hits += t->hits;
		all.sum += t->sum;
		all.sumsq += t->sumsq;
	}
	if (!all.hits)
		return;
	avg = div64_u64(all.sum, all.hits);
	/* Sample variance, (sum of squares - n * mean^2) / (n - 1). */
	if (all.hits > 1 && all.sumsq >= avg * all.sum)
		var = div64_u64(all.sumsq - avg * all.sum, all.hits - 1);
	n = scnprintf(line, sizeof(line),
		      "%s, (%s), hits: %llu, cycles: %llumin/%lluavg/%llumax, variance: %llu,%s, index: %d\n",
		      pp, loc, all.hits, all.min, avg, all.max, var, from, index);
	stp_timing_line(line, n);
}

static __maybe_unused void stp_timing_header(void)
{
	static const char head[] = "----- probe hit report: \n";

	stp_timing_line(head, sizeof(head) - 1);
}

#else
#define STP_TIMING_DESC(name)
#define STP_TIMING_DEFINE(name)
#define STP_TIMING_START(v) do { } while (0)
#define STP_TIMING_END(t, v) do { } while (0)
#endif

#endif /* STP_TIMING_H */
