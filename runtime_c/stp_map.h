/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_map.h - associative arrays with preallocated capacity.
 *
 * All memory is allocated by stp_map_new() in process context; probe
 * handlers only move entries between the free list and the hash/ordered
 * lists, so no allocation ever happens in probe context. Locking is the
 * caller's job (the global's rwlock taken by stp_probe_enter): readers may
 * share a map, anything that changes it (including stp_map_sort) needs the
 * write lock.
 *
 * Each entry is a fixed-size slot: a header, then the keys (8 bytes for a
 * long, MAXSTRINGLEN for a string, stored inline), then the value.
 *
 * Order is SystemTap's: one list, new entries at its tail; a sort reorders
 * that list in place and the order persists (a later sort starts from it,
 * new entries still go to the tail); a full "%" array replaces the entry at
 * the head of the list. Sorting is SystemTap's too: a stable merge sort,
 * or, for "limit N" with N <= 30, its partial bubble/insertion sort that
 * only puts the first N in order (ties then come out as SystemTap's do).
 */
#ifndef STP_MAP_H
#define STP_MAP_H

#ifndef STP_USER
#include <linux/jhash.h>
#include <linux/list.h>
#include <linux/list_sort.h>
#include <linux/log2.h>
#include <linux/vmalloc.h>
#include <linux/slab.h>
#endif

#define STP_MAX_KEYS 9

enum stp_vtype {
	STP_T_LONG = 1,
	STP_T_STRING = 2,
	STP_T_STATS = 3,
};

struct stp_map_spec {
	const char *name;
	u8 nkeys;
	u8 key_types[STP_MAX_KEYS];
	u8 value_type;
	u32 max_entries;	/* 0 = MAXMAPENTRIES */
	bool wrap;		/* "%" arrays: full -> replace the oldest */
	const struct stp_stat_spec *stat;	/* statistics: histogram etc. */
};

union stp_key {
	stp_long n;
	const char *s;
};

struct stp_map_entry {
	struct hlist_node hnode;	/* hash bucket */
	struct list_head lnode;		/* iteration order, or the free list */
	u32 hash;
	u64 data[];			/* keys, then the value */
};

struct stp_map {
	const char *name;
	u8 nkeys;
	u8 key_types[STP_MAX_KEYS];
	u8 vtype;
	bool wrap;
	const struct stp_stat_spec *stat;
	u32 declared;			/* declared size, 0 = MAXMAPENTRIES */
	u32 capacity;
	u32 key_off[STP_MAX_KEYS];
	u32 val_off;
	u32 val_size;
	size_t entry_size;
	u32 nbuckets;			/* power of two */
	struct hlist_head *buckets;
	struct list_head order;		/* via lnode */
	struct list_head free;		/* via lnode */
	int size;
	void *pool;
	/* The entry last created or updated: a probe hit usually touches the
	 * same key as the one before (same process, same CPU), and comparing
	 * keys is cheaper than hashing them. NULL when unknown. */
	struct stp_map_entry *last;
};

static inline char *stp_edata(struct stp_map_entry *e)
{
	return (char *)e->data;
}

static inline stp_long *stp_ekey_long(struct stp_map *m,
				      struct stp_map_entry *e, int i)
{
	return (stp_long *)(stp_edata(e) + m->key_off[i]);
}

static inline char *stp_ekey_str(struct stp_map *m, struct stp_map_entry *e,
				 int i)
{
	return stp_edata(e) + m->key_off[i];
}

static inline void *stp_eval(struct stp_map *m, struct stp_map_entry *e)
{
	return stp_edata(e) + m->val_off;
}

static inline size_t stp_type_size(u8 type, const struct stp_stat_spec *sp)
{
	switch (type) {
	case STP_T_STRING:
		return ALIGN(MAXSTRINGLEN, 8);
	case STP_T_STATS:
		return ALIGN(stp_stat_size(sp), 8);
	default:
		return sizeof(stp_long);
	}
}

static __maybe_unused void stp_map_free(struct stp_map *m)
{
	if (!m)
		return;
	vfree(m->pool);
	vfree(m->buckets);
	kfree(m);
}

static __maybe_unused struct stp_map *stp_map_new(const struct stp_map_spec *spec)
{
	struct stp_map *m;
	size_t off = 0;
	u32 i;

	if (spec->nkeys < 1 || spec->nkeys > STP_MAX_KEYS)
		return NULL;
	m = kzalloc(sizeof(*m), GFP_KERNEL);
	if (!m)
		return NULL;
	m->name = spec->name;
	m->nkeys = spec->nkeys;
	m->vtype = spec->value_type;
	m->wrap = spec->wrap;
	m->stat = spec->stat;
	m->declared = spec->max_entries;
	m->capacity = spec->max_entries ? spec->max_entries : MAXMAPENTRIES;
	for (i = 0; i < m->nkeys; i++) {
		m->key_types[i] = spec->key_types[i];
		m->key_off[i] = off;
		off += stp_type_size(spec->key_types[i], NULL);
	}
	m->val_off = off;
	m->val_size = stp_type_size(m->vtype, m->stat);
	off += m->val_size;
	m->entry_size = ALIGN(sizeof(struct stp_map_entry) + off, 8);
	m->nbuckets = roundup_pow_of_two(max_t(u32, m->capacity, 16));
	m->buckets = vzalloc(array_size(m->nbuckets, sizeof(*m->buckets)));
	m->pool = vzalloc(array_size(m->capacity, m->entry_size));
	if (!m->buckets || !m->pool) {
		stp_map_free(m);
		return NULL;
	}
	INIT_LIST_HEAD(&m->order);
	INIT_LIST_HEAD(&m->free);
	for (i = 0; i < m->capacity; i++) {
		struct stp_map_entry *e = m->pool + (size_t)i * m->entry_size;

		list_add_tail(&e->lnode, &m->free);
	}
	return m;
}

static u32 stp_map_hash(struct stp_map *m, const union stp_key *k)
{
	u32 h = 0x73746170;	/* arbitrary seed */
	int i;

	for (i = 0; i < m->nkeys; i++) {
		if (m->key_types[i] == STP_T_STRING) {
			const char *s = k[i].s ? k[i].s : "";

			h = jhash(s, strnlen(s, MAXSTRINGLEN - 1), h);
		} else {
			u64 n = (u64)k[i].n;

			h = jhash_2words((u32)n, (u32)(n >> 32), h);
		}
	}
	return h;
}

/* Does @e's key column @i equal @k[i]? */
static bool stp_map_key_col_eq(struct stp_map *m, struct stp_map_entry *e,
			       const union stp_key *k, int i)
{
	if (m->key_types[i] == STP_T_STRING) {
		const char *s = k[i].s ? k[i].s : "";
		const char *st = stp_ekey_str(m, e, i);
		size_t n = strnlen(s, MAXSTRINGLEN - 1);

		/* Keys are stored truncated, so compare truncated. */
		return !memcmp(st, s, n) && !st[n];
	}
	return *stp_ekey_long(m, e, i) == k[i].n;
}

static bool stp_map_key_eq(struct stp_map *m, struct stp_map_entry *e,
			   const union stp_key *k)
{
	int i;

	for (i = 0; i < m->nkeys; i++)
		if (!stp_map_key_col_eq(m, e, k, i))
			return false;
	return true;
}

/* Key columns not in @wild (bit i set: column i is "*") all match. */
static bool stp_map_key_match(struct stp_map *m, struct stp_map_entry *e,
			      const union stp_key *k, u32 wild)
{
	int i;

	for (i = 0; i < m->nkeys; i++)
		if (!(wild & (1U << i)) && !stp_map_key_col_eq(m, e, k, i))
			return false;
	return true;
}

static struct stp_map_entry *stp_map_find(struct stp_map *m,
					  const union stp_key *k, u32 h)
{
	struct stp_map_entry *e;

	hlist_for_each_entry(e, &m->buckets[h & (m->nbuckets - 1)], hnode)
		if (e->hash == h && stp_map_key_eq(m, e, k))
			return e;
	return NULL;
}

static void stp_map_unlink(struct stp_map *m, struct stp_map_entry *e)
{
	if (m->last == e)
		m->last = NULL;
	hlist_del_init(&e->hnode);
	list_del(&e->lnode);
	list_add(&e->lnode, &m->free);
	m->size--;
}

/* New zero-valued entry for @k, or NULL when full (and not wrapping). */
static struct stp_map_entry *stp_map_insert(struct stp_map *m,
					    const union stp_key *k, u32 h)
{
	struct stp_map_entry *e;
	int i;

	if (list_empty(&m->free)) {
		if (!m->wrap || list_empty(&m->order))
			return NULL;
		/* SystemTap reuses the entry at the head of the list. */
		stp_map_unlink(m, list_first_entry(&m->order,
						   struct stp_map_entry,
						   lnode));
	}
	e = list_first_entry(&m->free, struct stp_map_entry, lnode);
	list_del(&e->lnode);
	for (i = 0; i < m->nkeys; i++) {
		if (m->key_types[i] == STP_T_STRING) {
			const char *s = k[i].s ? k[i].s : "";
			size_t n = strnlen(s, MAXSTRINGLEN - 1);
			char *st = stp_ekey_str(m, e, i);

			memmove(st, s, n);
			st[n] = '\0';
		} else {
			*stp_ekey_long(m, e, i) = k[i].n;
		}
	}
	memset(stp_eval(m, e), 0, m->val_size);
	e->hash = h;
	hlist_add_head(&e->hnode, &m->buckets[h & (m->nbuckets - 1)]);
	list_add_tail(&e->lnode, &m->order);
	m->size++;
	return e;
}

static void stp_map_overflow(struct stp_context *c, struct stp_map *m)
{
	if (m->declared)
		STP_ERRORF(c, "Array overflow, check size limit (%u)",
			   m->declared);
	else
		STP_ERROR(c, "Array overflow, check MAXMAPENTRIES");
}

static struct stp_map_entry *stp_map_get_or_add(struct stp_context *c,
						struct stp_map *m,
						const union stp_key *k)
{
	struct stp_map_entry *e = m->last;
	u32 h;

	if (e && stp_map_key_eq(m, e, k))
		return e;
	h = stp_map_hash(m, k);
	e = stp_map_find(m, k, h);
	if (!e) {
		e = stp_map_insert(m, k, h);
		if (!e) {
			stp_map_overflow(c, m);
			return NULL;
		}
	}
	m->last = e;		/* writers only: they hold the map exclusively */
	return e;
}

/* Lookup without creating: the last entry first, then the hash. */
static inline struct stp_map_entry *stp_map_lookup(struct stp_map *m,
						   const union stp_key *k)
{
	struct stp_map_entry *e = READ_ONCE(m->last);

	if (e && stp_map_key_eq(m, e, k))
		return e;
	return stp_map_find(m, k, stp_map_hash(m, k));
}

static __maybe_unused void stp_map_clear(struct stp_map *m)
{
	struct stp_map_entry *e, *tmp;

	list_for_each_entry_safe(e, tmp, &m->order, lnode)
		stp_map_unlink(m, e);
	m->size = 0;
	m->last = NULL;
}

static __maybe_unused int stp_map_size(struct stp_map *m)
{
	return m->size;
}

static __maybe_unused bool stp_map_exists(struct stp_map *m,
					  const union stp_key *k)
{
	return stp_map_lookup(m, k) != NULL;
}

/* [k1, *, k3] in A */
static __maybe_unused bool stp_map_exists_matching(struct stp_map *m,
						   const union stp_key *k,
						   u32 wild)
{
	struct stp_map_entry *e;

	list_for_each_entry(e, &m->order, lnode)
		if (stp_map_key_match(m, e, k, wild))
			return true;
	return false;
}

static __maybe_unused stp_long stp_map_get_long(struct stp_map *m,
						const union stp_key *k)
{
	struct stp_map_entry *e = stp_map_lookup(m, k);

	if (!e || m->vtype != STP_T_LONG)
		return 0;
	return *(stp_long *)stp_eval(m, e);
}

static __maybe_unused void stp_map_get_str(struct stp_map *m,
					   const union stp_key *k, char *out)
{
	struct stp_map_entry *e = stp_map_lookup(m, k);

	if (!e || m->vtype != STP_T_STRING)
		out[0] = '\0';
	else
		stp_strlcpy(out, stp_eval(m, e));
}

/* Copy a statistic out (@out has room for the map's buckets). */
static __maybe_unused bool stp_map_get_stat(struct stp_map *m,
					    const union stp_key *k,
					    struct stp_stat *out)
{
	struct stp_map_entry *e = stp_map_find(m, k, stp_map_hash(m, k));

	if (!e || m->vtype != STP_T_STATS) {
		stp_stat_zero(m->stat, out);
		return false;
	}
	stp_stat_copy(m->stat, out, stp_eval(m, e));
	return true;
}

static __maybe_unused bool stp_map_set_long(struct stp_context *c,
					    struct stp_map *m,
					    const union stp_key *k, stp_long v)
{
	struct stp_map_entry *e;

	if (WARN_ON_ONCE(m->vtype != STP_T_LONG))
		return false;
	e = stp_map_get_or_add(c, m, k);
	if (!e)
		return false;
	*(stp_long *)stp_eval(m, e) = v;
	return true;
}

static __maybe_unused bool stp_map_set_str(struct stp_context *c,
					   struct stp_map *m,
					   const union stp_key *k,
					   const char *v)
{
	struct stp_map_entry *e;

	if (WARN_ON_ONCE(m->vtype != STP_T_STRING))
		return false;
	e = stp_map_get_or_add(c, m, k);
	if (!e)
		return false;
	stp_strlcpy(stp_eval(m, e), v);
	return true;
}

static __maybe_unused bool stp_map_add_stat(struct stp_context *c,
					    struct stp_map *m,
					    const union stp_key *k, stp_long v)
{
	struct stp_map_entry *e;

	if (WARN_ON_ONCE(m->vtype != STP_T_STATS))
		return false;
	e = stp_map_get_or_add(c, m, k);
	if (!e)
		return false;
	stp_stat_add(m->stat, stp_eval(m, e), v);
	return true;
}

static __maybe_unused void stp_map_delete(struct stp_map *m,
					  const union stp_key *k)
{
	struct stp_map_entry *e = stp_map_find(m, k, stp_map_hash(m, k));

	if (e)
		stp_map_unlink(m, e);
}

/* delete A[k1, *, k3] */
static __maybe_unused void stp_map_delete_matching(struct stp_map *m,
						   const union stp_key *k,
						   u32 wild)
{
	struct stp_map_entry *e, *tmp;

	list_for_each_entry_safe(e, tmp, &m->order, lnode)
		if (stp_map_key_match(m, e, k, wild))
			stp_map_unlink(m, e);
}

/* ---- iteration ---- */

struct stp_sort_ctx {
	struct stp_map *m;
	int column;
	int dir;
	int agg;
};

static inline int stp_cmp_long(stp_long a, stp_long b)
{
	return (a > b) - (a < b);
}

/* > 0: @a belongs after @b in the requested order. */
static int stp_map_cmp_entries(const struct stp_sort_ctx *x,
			       struct stp_map_entry *a,
			       struct stp_map_entry *b)
{
	struct stp_map *m = x->m;
	int r;

	if (x->column == 0) {
		switch (m->vtype) {
		case STP_T_STRING:
			r = strcmp(stp_eval(m, a), stp_eval(m, b));
			break;
		case STP_T_STATS:
			r = stp_cmp_long(stp_stat_value(m->stat, stp_eval(m, a), x->agg),
					 stp_stat_value(m->stat, stp_eval(m, b), x->agg));
			break;
		default:
			r = stp_cmp_long(*(stp_long *)stp_eval(m, a),
					 *(stp_long *)stp_eval(m, b));
			break;
		}
	} else {
		int i = x->column - 1;

		if (m->key_types[i] == STP_T_STRING)
			r = strcmp(stp_ekey_str(m, a, i), stp_ekey_str(m, b, i));
		else
			r = stp_cmp_long(*stp_ekey_long(m, a, i),
					 *stp_ekey_long(m, b, i));
	}
	return x->dir < 0 ? -r : r;
}

static int stp_map_cmp(void *priv, const struct list_head *la,
		       const struct list_head *lb)
{
	return stp_map_cmp_entries(priv,
				   list_entry(la, struct stp_map_entry, lnode),
				   list_entry(lb, struct stp_map_entry, lnode));
}

/*
 * Sort the whole map by key @column (1-based) or by value (0), @dir +1
 * ascending or -1 descending; statistics sort by @agg. Stable: ties keep
 * the current order. list_sort() allocates nothing.
 */
static __maybe_unused void stp_map_sort(struct stp_map *m, int column,
					int dir, int agg)
{
	struct stp_sort_ctx x = { .m = m, .column = column, .dir = dir,
				  .agg = agg };

	if (dir == 0 || column < 0 || column > m->nkeys || m->size < 2)
		return;
	list_sort(&x, &m->order, stp_map_cmp);
}

/*
 * foreach (... limit n): SystemTap puts only the first n in order, with a
 * bubble sort of the first n and an insertion pass for the rest (for
 * 1 <= n <= 30; otherwise a full sort).
 */
static __maybe_unused void stp_map_sortn(struct stp_map *m, stp_long n,
					 int column, int dir, int agg)
{
	struct stp_sort_ctx x = { .m = m, .column = column, .dir = dir,
				  .agg = agg };
	struct list_head *head = &m->order, *a, *b, *cur, *last, *next;
	int num, swaps = 1;

	if (n <= 0 || n > 30) {
		stp_map_sort(m, column, dir, agg);
		return;
	}
	if (dir == 0 || column < 0 || column > m->nkeys || list_empty(head))
		return;
#define STP_OUT_OF_ORDER(p, q) \
	(stp_map_cmp_entries(&x, list_entry(p, struct stp_map_entry, lnode), \
			     list_entry(q, struct stp_map_entry, lnode)) > 0)
	a = head->next;
	while (swaps) {
		num = (int)n;
		swaps = 0;
		a = head->next;
		cur = a->next->next;
		while (a->next != head && --num > 0) {
			b = a->next;
			if (STP_OUT_OF_ORDER(a, b)) {
				swaps++;
				list_del(a);
				list_add(a, b);		/* a now after b */
			}
			a = cur->prev;
			cur = cur->next;
		}
	}
	/* Everything after the first n: bring the better ones in. */
	last = a;
	a = a->next;
	while (a != head) {
		next = a->next;
		cur = last;
		while (cur != head && STP_OUT_OF_ORDER(cur, a))
			cur = cur->prev;
		if (cur != last) {
			list_del(a);
			list_add(a, cur);
			last = last->prev;
		}
		a = next;
	}
#undef STP_OUT_OF_ORDER
}

static __maybe_unused struct stp_map_entry *stp_map_first(struct stp_map *m)
{
	return list_first_entry_or_null(&m->order, struct stp_map_entry,
					lnode);
}

static __maybe_unused struct stp_map_entry *stp_map_next(struct stp_map *m,
						       struct stp_map_entry *e)
{
	if (list_is_last(&e->lnode, &m->order))
		return NULL;
	return list_next_entry(e, lnode);
}

static __maybe_unused stp_long stp_entry_key_long(struct stp_map *m,
						  struct stp_map_entry *e,
						  int i)
{
	return *stp_ekey_long(m, e, i);
}

static __maybe_unused const char *stp_entry_key_str(struct stp_map *m,
						    struct stp_map_entry *e,
						    int i)
{
	return stp_ekey_str(m, e, i);
}

static __maybe_unused stp_long stp_entry_long(struct stp_map *m,
					      struct stp_map_entry *e)
{
	return *(stp_long *)stp_eval(m, e);
}

static __maybe_unused const char *stp_entry_str(struct stp_map *m,
						struct stp_map_entry *e)
{
	return stp_eval(m, e);
}

static __maybe_unused const struct stp_stat *stp_entry_stat(struct stp_map *m,
							    struct stp_map_entry *e)
{
	return stp_eval(m, e);
}

/* ---- per-CPU maps of statistics ---- */

struct stp_pmap {
	struct stp_map **cpu;	/* nr_cpu_ids slots, possible CPUs filled */
	struct stp_map *agg;	/* merged view, rebuilt by aggregate */
};

static __maybe_unused void stp_pmap_free(struct stp_pmap *pm)
{
	int cpu;

	if (!pm)
		return;
	if (pm->cpu) {
		for_each_possible_cpu(cpu)
			stp_map_free(pm->cpu[cpu]);
		kfree(pm->cpu);
	}
	stp_map_free(pm->agg);
	kfree(pm);
}

static __maybe_unused struct stp_pmap *stp_pmap_new(const struct stp_map_spec *spec)
{
	struct stp_pmap *pm = kzalloc(sizeof(*pm), GFP_KERNEL);
	int cpu;

	if (!pm)
		return NULL;
	pm->cpu = kcalloc(nr_cpu_ids, sizeof(*pm->cpu), GFP_KERNEL);
	if (!pm->cpu)
		goto fail;
	for_each_possible_cpu(cpu) {
		pm->cpu[cpu] = stp_map_new(spec);
		if (!pm->cpu[cpu])
			goto fail;
	}
	pm->agg = stp_map_new(spec);
	if (!pm->agg)
		goto fail;
	return pm;
fail:
	stp_pmap_free(pm);
	return NULL;
}

static __maybe_unused void stp_pmap_clear(struct stp_pmap *pm)
{
	int cpu;

	for_each_possible_cpu(cpu)
		stp_map_clear(pm->cpu[cpu]);
	stp_map_clear(pm->agg);
}

static __maybe_unused bool stp_pmap_add(struct stp_context *c,
					struct stp_pmap *pm,
					const union stp_key *k, stp_long v)
{
	return stp_map_add_stat(c, pm->cpu[smp_processor_id()], k, v);
}

/*
 * Merge every CPU's map into pm->agg (caller holds the write lock). When
 * the CPUs hold more distinct keys than the aggregate can (the size limit),
 * the error is SystemTap's "aggregation overflow in NAME" and NULL is
 * returned; without a context (c == NULL) the extra keys are left out.
 */
static __maybe_unused struct stp_map *stp_pmap_agg(struct stp_context *c,
						   struct stp_pmap *pm)
{
	struct stp_map *agg = pm->agg;
	union stp_key k[STP_MAX_KEYS];
	int cpu, i;

	stp_map_clear(agg);
	for_each_possible_cpu(cpu) {
		struct stp_map *m = pm->cpu[cpu];
		struct stp_map_entry *e, *ae;

		list_for_each_entry(e, &m->order, lnode) {
			for (i = 0; i < m->nkeys; i++) {
				if (m->key_types[i] == STP_T_STRING)
					k[i].s = stp_ekey_str(m, e, i);
				else
					k[i].n = *stp_ekey_long(m, e, i);
			}
			/* Same spec, same hash function: reuse e->hash. */
			ae = stp_map_find(agg, k, e->hash);
			if (!ae)
				ae = stp_map_insert(agg, k, e->hash);
			if (!ae) {
				if (c) {
					STP_ERRORF(c, "aggregation overflow in %s",
						   agg->name);
					return NULL;
				}
				continue;
			}
			stp_stat_merge(m->stat, stp_eval(agg, ae), stp_eval(m, e));
		}
	}
	return agg;
}

static __maybe_unused struct stp_map *stp_pmap_aggregate(struct stp_pmap *pm)
{
	return stp_pmap_agg(NULL, pm);
}

/* One key's statistic over all CPUs, without building the aggregate. */
static __maybe_unused bool stp_pmap_get_stat(struct stp_pmap *pm,
					     const union stp_key *k,
					     struct stp_stat *out)
{
	struct stp_map *m0 = pm->cpu[0];
	u32 h = stp_map_hash(m0, k);
	bool found = false;
	int cpu;

	stp_stat_zero(m0->stat, out);
	for_each_possible_cpu(cpu) {
		struct stp_map *m = pm->cpu[cpu];
		struct stp_map_entry *e = stp_map_find(m, k, h);

		if (e) {
			stp_stat_merge(m->stat, out, stp_eval(m, e));
			found = true;
		}
	}
	return found;
}

static __maybe_unused bool stp_pmap_exists(struct stp_pmap *pm,
					   const union stp_key *k)
{
	u32 h = stp_map_hash(pm->cpu[0], k);
	int cpu;

	for_each_possible_cpu(cpu)
		if (stp_map_find(pm->cpu[cpu], k, h))
			return true;
	return false;
}

static __maybe_unused bool stp_pmap_exists_matching(struct stp_pmap *pm,
						    const union stp_key *k,
						    u32 wild)
{
	int cpu;

	for_each_possible_cpu(cpu)
		if (stp_map_exists_matching(pm->cpu[cpu], k, wild))
			return true;
	return false;
}

static __maybe_unused void stp_pmap_delete(struct stp_pmap *pm,
					   const union stp_key *k)
{
	int cpu;

	for_each_possible_cpu(cpu)
		stp_map_delete(pm->cpu[cpu], k);
	stp_map_delete(pm->agg, k);
}

static __maybe_unused void stp_pmap_delete_matching(struct stp_pmap *pm,
						    const union stp_key *k,
						    u32 wild)
{
	int cpu;

	for_each_possible_cpu(cpu)
		stp_map_delete_matching(pm->cpu[cpu], k, wild);
	stp_map_delete_matching(pm->agg, k, wild);
}

#endif /* STP_MAP_H */
