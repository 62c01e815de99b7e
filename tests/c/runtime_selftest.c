// SPDX-License-Identifier: GPL-2.0
/*
 * runtime_selftest.c - hand-written stand-in for pass-3 output, exercising
 * the runtime the way generated code does. Roughly this script:
 *
 *   global reads, pairs[100], rets, sizes, ticks
 *   probe begin { println("begin"); pairs[0, "begin"] = 1 }
 *   probe kernel.function("vfs_read") {
 *       reads[execname()]++; pairs[pid(), "vfs_read"] += 1; sizes <<< $count
 *       if (execname() == "stressdd") printf("vfs_read by ...\n", ...)
 *   }
 *   probe kernel.function("vfs_read").return { rets[execname()] <<< $return }
 *   probe timer.ms(50) { ticks++ }
 *   probe end {
 *       foreach (n in reads- limit 3) printf("reads %s %d\n", n, reads[n])
 *       ... pairs, @count(sizes), rets (pmap) sorted by @count ...
 *       try { x = 1 / 0 } catch (msg) { println("caught: ", msg) }
 *   }
 *   probe end { println(10 % 0) }      # uncaught: error, error probes run
 *   probe error { println("error probe ran") }
 */
#include "stp_runtime.h"

/* ---- globals ---- */
static DEFINE_RWLOCK(stpg_reads_lock);
static struct stp_map *stpg_reads;
static const struct stp_map_spec stpg_reads_spec = {
	.name = "reads", .nkeys = 1, .key_types = { STP_T_STRING },
	.value_type = STP_T_LONG,
};

static DEFINE_RWLOCK(stpg_pairs_lock);
static struct stp_map *stpg_pairs;
static const struct stp_map_spec stpg_pairs_spec = {
	.name = "pairs", .nkeys = 2, .key_types = { STP_T_LONG, STP_T_STRING },
	.value_type = STP_T_LONG, .max_entries = 100,
};

static DEFINE_RWLOCK(stpg_rets_lock);
static struct stp_pmap *stpg_rets;
static const struct stp_map_spec stpg_rets_spec = {
	.name = "rets", .nkeys = 1, .key_types = { STP_T_STRING },
	.value_type = STP_T_STATS,
};

static DEFINE_RWLOCK(stpg_sizes_lock);
static struct stp_pstat *stpg_sizes;

/* small[2] overflows with an error; %ring[2] replaces its oldest entry */
static DEFINE_RWLOCK(stpg_small_lock);
static struct stp_map *stpg_small;
static const struct stp_map_spec stpg_small_spec = {
	.name = "small", .nkeys = 1, .key_types = { STP_T_LONG },
	.value_type = STP_T_LONG, .max_entries = 2,
};
static struct stp_map *stpg_ring;
static const struct stp_map_spec stpg_ring_spec = {
	.name = "ring", .nkeys = 1, .key_types = { STP_T_LONG },
	.value_type = STP_T_STRING, .max_entries = 2, .wrap = true,
};

static DEFINE_RWLOCK(stpg_ticks_lock);
static stp_long stpg_ticks;

static int stpg_init_globals(void)
{
	stpg_reads = stp_map_new(&stpg_reads_spec);
	stpg_pairs = stp_map_new(&stpg_pairs_spec);
	stpg_rets = stp_pmap_new(&stpg_rets_spec);
	stpg_sizes = stp_pstat_new();
	stpg_small = stp_map_new(&stpg_small_spec);
	stpg_ring = stp_map_new(&stpg_ring_spec);
	if (!stpg_reads || !stpg_pairs || !stpg_rets || !stpg_sizes ||
	    !stpg_small || !stpg_ring)
		return -ENOMEM;
	return 0;
}

static void stpg_free_globals(void)
{
	stp_map_free(stpg_reads);
	stp_map_free(stpg_pairs);
	stp_pmap_free(stpg_rets);
	stp_pstat_free(stpg_sizes);
	stp_map_free(stpg_small);
	stp_map_free(stpg_ring);
}

/* ---- context frame: locals of every probe, never on the kernel stack ---- */
struct stpg_frame {
	struct stp_context base;
	union {
		struct {
			char name[MAXSTRINGLEN];
			union stp_key k[2];
		} kp;
		struct {
			union stp_key k[2];
			struct stp_stat st;
			stp_long x, n;
			char msg[MAXSTRINGLEN];
		} end;
	} u;
};

#define STPG_F(c) container_of(c, struct stpg_frame, base)

/* ---- probe handlers ---- */
static void stpg_probe_begin(struct stp_context *c)
{
	struct stpg_frame *f = STPG_F(c);

	stp_print_str(c, "begin\n");
	f->u.end.k[0].n = 0;
	f->u.end.k[1].s = "begin";
	c->last_stmt = "identifier 'pairs' at selftest.stp:2:34";
	stp_map_set_long(c, stpg_pairs, f->u.end.k, 1);
}

static void stpg_probe_kp(struct stp_context *c)
{
	struct stpg_frame *f = STPG_F(c);
	stp_long v;

	stp_strlcpy(f->u.kp.name, current->comm);
	f->u.kp.k[0].s = f->u.kp.name;
	v = stp_map_get_long(stpg_reads, f->u.kp.k);
	c->last_stmt = "identifier 'reads' at selftest.stp:4:5";
	if (!stp_map_set_long(c, stpg_reads, f->u.kp.k, v + 1))
		goto out;
	f->u.kp.k[0].n = task_tgid_nr(current);
	f->u.kp.k[1].s = "vfs_read";
	v = stp_map_get_long(stpg_pairs, f->u.kp.k);
	c->last_stmt = "identifier 'pairs' at selftest.stp:4:23";
	if (!stp_map_set_long(c, stpg_pairs, f->u.kp.k, v + 1))
		goto out;
	stp_pstat_add(stpg_sizes, stp_arg_reg(c->regs, 3));
	/* Concurrent output from several CPUs: lines must never interleave. */
	if (!strcmp(f->u.kp.name, "stressdd"))
		stp_printf(c, "vfs_read by %s on cpu %d count %lld\n",
			   f->u.kp.name, smp_processor_id(),
			   (long long)stp_arg_reg(c->regs, 3));
out:
	return;
}

static void stpg_probe_kret(struct stp_context *c)
{
	struct stpg_frame *f = STPG_F(c);

	stp_strlcpy(f->u.kp.name, current->comm);
	f->u.kp.k[0].s = f->u.kp.name;
	c->last_stmt = "identifier 'rets' at selftest.stp:7:5";
	stp_pmap_add(c, stpg_rets, f->u.kp.k, stp_return_value(c->regs));
}

static void stpg_probe_timer(struct stp_context *c)
{
	stpg_ticks++;
	if (stpg_ticks == 2)
		stp_printf(c, "tick %lld\n", (long long)stpg_ticks);
}

static void stpg_probe_end0(struct stp_context *c)
{
	struct stpg_frame *f = STPG_F(c);
	struct stp_map_entry *e;
	struct stp_map *agg;
	int limit;

	stp_printf(c, "ticks>0 %d\n", stpg_ticks > 0);

	/* foreach (n in reads- limit 3) */
	stp_map_sort(stpg_reads, 0, -1, STP_AGG_COUNT);
	limit = 3;
	for (e = stp_map_first(stpg_reads); e && limit > 0;
	     e = stp_map_next(stpg_reads, e), limit--) {
		if (!stp_action(c, 1))
			goto out;
		stp_printf(c, "reads %s %lld\n",
			   stp_entry_key_str(stpg_reads, e, 0),
			   (long long)stp_entry_long(stpg_reads, e));
	}
	stp_printf(c, "reads size %d\n", stp_map_size(stpg_reads));

	/* foreach ([p, s] in pairs+) : by key 1 ascending */
	stp_map_sort(stpg_pairs, 1, 1, STP_AGG_COUNT);
	f->u.end.n = 0;
	for (e = stp_map_first(stpg_pairs); e; e = stp_map_next(stpg_pairs, e))
		f->u.end.n += stp_entry_long(stpg_pairs, e);
	e = stp_map_first(stpg_pairs);
	if (e)
		stp_printf(c, "pairs first [%lld,%s] total %lld size %d\n",
			   (long long)stp_entry_key_long(stpg_pairs, e, 0),
			   stp_entry_key_str(stpg_pairs, e, 1),
			   (long long)f->u.end.n, stp_map_size(stpg_pairs));
	f->u.end.k[0].n = 0;
	f->u.end.k[1].s = "begin";
	stp_printf(c, "pairs[0,begin]=%lld exists=%d\n",
		   (long long)stp_map_get_long(stpg_pairs, f->u.end.k),
		   stp_map_exists(stpg_pairs, f->u.end.k));
	stp_map_delete(stpg_pairs, f->u.end.k);
	stp_printf(c, "after delete exists=%d\n",
		   stp_map_exists(stpg_pairs, f->u.end.k));

	/* pstat */
	stp_pstat_get(stpg_sizes, &f->u.end.st);
	stp_printf(c, "sizes count>0 %d min<=max %d\n",
		   f->u.end.st.count > 0, f->u.end.st.min <= f->u.end.st.max);

	/* pmap: foreach (n in rets- limit 2) by @count */
	agg = stp_pmap_aggregate(stpg_rets);
	stp_map_sort(agg, 0, -1, STP_AGG_COUNT);
	limit = 2;
	for (e = stp_map_first(agg); e && limit > 0;
	     e = stp_map_next(agg, e), limit--) {
		const struct stp_stat *s = stp_entry_stat(agg, e);

		c->last_stmt = "operator '@avg' at selftest.stp:12:40";
		f->u.end.x = stp_stat_extract(c, NULL, s, STP_AGG_AVG);
		if (c->last_error)
			goto out;
		stp_printf(c, "rets %s count %lld avg %lld\n",
			   stp_entry_key_str(agg, e, 0), (long long)s->count,
			   (long long)f->u.end.x);
	}

	/* try { x = 1 / 0 } catch (msg) { println("caught: ", msg) } */
	c->last_stmt = "operator '/' at selftest.stp:14:15";
	f->u.end.x = stp_div(c, 1, 0);
	if (c->last_error) {
		stp_strlcpy(f->u.end.msg, c->last_error);
		c->last_error = NULL;
		stp_printf(c, "caught: %s\n", f->u.end.msg);
	}
	stp_printf(c, "div %lld mod %lld\n",
		   (long long)stp_div(c, S64_MIN, -1),
		   (long long)stp_mod(c, S64_MIN, -1));
	/* size limits: try { small[i] = i } catch; %ring keeps the newest */
	for (f->u.end.n = 1; f->u.end.n <= 3; f->u.end.n++) {
		f->u.end.k[0].n = f->u.end.n;
		stp_sprintf(f->u.end.msg, "v%lld", (long long)f->u.end.n);
		stp_map_set_str(c, stpg_ring, f->u.end.k, f->u.end.msg);
		if (!stp_map_set_long(c, stpg_small, f->u.end.k, f->u.end.n)) {
			stp_printf(c, "small caught: %s\n", c->last_error);
			c->last_error = NULL;
		}
	}
	stp_map_sort(stpg_ring, 1, -1, STP_AGG_COUNT);
	for (e = stp_map_first(stpg_ring); e; e = stp_map_next(stpg_ring, e))
		stp_printf(c, "ring[%lld]=%s\n",
			   (long long)stp_entry_key_long(stpg_ring, e, 0),
			   stp_entry_str(stpg_ring, e));
	stp_printf(c, "small size %d ring size %d\n",
		   stp_map_size(stpg_small), stp_map_size(stpg_ring));

	stp_strlcpy(f->u.end.msg, "ab");
	stp_strlcat(f->u.end.msg, f->u.end.msg);
	stp_print_str(c, f->u.end.msg);
	stp_print_char(c, ' ');
	stp_print_long(c, -42);
	stp_print_char(c, '\n');
out:
	return;
}

static void stpg_probe_end1(struct stp_context *c)
{
	struct stpg_frame *f = STPG_F(c);

	c->last_stmt = "operator '%' at selftest.stp:16:23";
	f->u.end.x = stp_mod(c, 10, 0);
	if (c->last_error)
		goto out;
	stp_print_long(c, f->u.end.x);
	stp_print_char(c, '\n');
out:
	return;
}

static void stpg_probe_error(struct stp_context *c)
{
	stp_print_str(c, "error probe ran\n");
}

/* ---- probe tables ---- */
static const struct stp_lock_req stpg_locks_begin[] = {
	{ &stpg_pairs_lock, true },
};
static const struct stp_lock_req stpg_locks_kp[] = {
	{ &stpg_reads_lock, true },
	{ &stpg_pairs_lock, true },
	{ &stpg_sizes_lock, false },
};
static const struct stp_lock_req stpg_locks_kret[] = {
	{ &stpg_rets_lock, false },
};
static const struct stp_lock_req stpg_locks_timer[] = {
	{ &stpg_ticks_lock, true },
};
static const struct stp_lock_req stpg_locks_end0[] = {
	{ &stpg_reads_lock, true },
	{ &stpg_pairs_lock, true },
	{ &stpg_rets_lock, true },
	{ &stpg_sizes_lock, true },
	{ &stpg_small_lock, true },
	{ &stpg_ticks_lock, false },
};

static const struct stp_probe_desc stpg_begin[] = {
	{ .pp = "begin", .fn = stpg_probe_begin, .locks = stpg_locks_begin,
	  .nlocks = ARRAY_SIZE(stpg_locks_begin) },
};
static const struct stp_probe_desc stpg_end[] = {
	{ .pp = "end", .fn = stpg_probe_end0, .locks = stpg_locks_end0,
	  .nlocks = ARRAY_SIZE(stpg_locks_end0) },
	{ .pp = "end", .fn = stpg_probe_end1 },
};
static const struct stp_probe_desc stpg_error[] = {
	{ .pp = "error", .fn = stpg_probe_error },
};
static const struct stp_probe_desc stpg_probe_kp_desc = {
	.pp = "kernel.function(\"vfs_read@fs/read_write.c:450\")",
	.fn = stpg_probe_kp, .locks = stpg_locks_kp,
	.nlocks = ARRAY_SIZE(stpg_locks_kp),
};
static const struct stp_probe_desc stpg_probe_kret_desc = {
	.pp = "kernel.function(\"vfs_read@fs/read_write.c:450\").return",
	.fn = stpg_probe_kret, .locks = stpg_locks_kret,
	.nlocks = ARRAY_SIZE(stpg_locks_kret),
};
static const struct stp_probe_desc stpg_probe_timer_desc = {
	.pp = "timer.ms(50)", .fn = stpg_probe_timer,
	.locks = stpg_locks_timer, .nlocks = ARRAY_SIZE(stpg_locks_timer),
};

static struct stp_kprobe_desc stpg_kprobes[] = {
	{ .probe = &stpg_probe_kp_desc, .symbol = "vfs_read" },
	{ .probe = &stpg_probe_kret_desc, .symbol = "vfs_read",
	  .is_return = true },
};
static struct stp_timer_desc stpg_timers[] = {
	{ .probe = &stpg_probe_timer_desc, .interval_ns = 50000000ULL },
};

static struct stp_module_desc stp_module = {
	.begin = stpg_begin, .nbegin = ARRAY_SIZE(stpg_begin),
	.end = stpg_end, .nend = ARRAY_SIZE(stpg_end),
	.error = stpg_error, .nerror = ARRAY_SIZE(stpg_error),
	.kprobes = stpg_kprobes, .nkprobes = ARRAY_SIZE(stpg_kprobes),
	.timers = stpg_timers, .ntimers = ARRAY_SIZE(stpg_timers),
	.context_size = sizeof(struct stpg_frame),
	.init_globals = stpg_init_globals,
	.free_globals = stpg_free_globals,
};

#include "stp_module_main.h"
