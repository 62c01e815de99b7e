/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_regex.h - =~ and !~ with DFAs compiled by pass 3 (codegen/regex_dfa.py),
 * and matched(n) / ngroups().
 *
 * A match is one pass over the subject through the "search" DFA: a table
 * lookup per byte, no allocation, no backtracking, bounded by MAXSTRINGLEN.
 * A successful match remembers the regex and a copy of the subject in the
 * context; matched(0) then finds the leftmost-longest match with the
 * "anchored" DFA, and matched(n) its groups with a small Pike VM (see
 * regex_dfa.py for the group semantics). The VM's threads live in the
 * context, sized by the generated code's largest program
 * (STP_RE_MAX_PROG instructions, STP_RE_MAX_CAPS capture slots).
 */
#ifndef STP_REGEX_H
#define STP_REGEX_H

enum stp_re_op {
	STP_RE_CHAR = 1,	/* x: index of a 256-bit set */
	STP_RE_SPLIT,		/* try x, then y */
	STP_RE_JMP,		/* go to x */
	STP_RE_SAVE,		/* capture slot x = position */
	STP_RE_BOL,		/* position 0 */
	STP_RE_EOL,		/* end of the subject */
	STP_RE_MATCH,
};

struct stp_re_inst {
	u8 op;
	u16 x, y;
};

struct stp_regex {
	const char *pattern;
	int nclasses;
	const u8 *classmap;		/* byte -> character class */
	const u16 *search;		/* [state][class]; state 0 is dead */
	const u8 *search_acc;		/* bit 0: matched here, bit 1: at the end */
	u16 search_start;
	const u16 *anch;
	const u8 *anch_acc;
	u16 anch_start_bol, anch_start_mid;
	int ngroups;			/* parenthesised groups */
	const struct stp_re_inst *prog;
	int nprog;
	const u32 (*sets)[8];
};

static __maybe_unused bool stp_regex_match(struct stp_context *c,
					   const struct stp_regex *re,
					   const char *s)
{
	const u8 *p = (const u8 *)s;
	u32 st = re->search_start;
	bool ok = re->search_acc[st] & 1;
	size_t i;

	for (i = 0; !ok && i < MAXSTRINGLEN && p[i]; i++) {
		st = re->search[st * re->nclasses + re->classmap[p[i]]];
		ok = re->search_acc[st] & 1;
	}
	if (!ok)
		ok = re->search_acc[st] & 2;
	c->match_re = re;
	c->match_ok = ok;
	if (ok)
		stp_strlcpy(c->match_subject, s);
	return ok;
}

/* The leftmost-longest match of @re in @s: [*ms, *me). */
static bool stp_regex_span(const struct stp_regex *re, const char *s,
			   int *ms, int *me)
{
	const u8 *p = (const u8 *)s;
	int n = (int)stp_strnlen(s);
	int start, i;

	for (start = 0; start <= n; start++) {
		u32 st = start == 0 ? re->anch_start_bol : re->anch_start_mid;
		int last = -1;

		if (re->anch_acc[st] & (start == n ? 2 : 1))
			last = start;
		for (i = start; i < n; i++) {
			st = re->anch[st * re->nclasses + re->classmap[p[i]]];
			if (!st)
				break;
			if (re->anch_acc[st] & (i + 1 == n ? 2 : 1))
				last = i + 1;
		}
		if (last >= 0) {
			*ms = start;
			*me = last;
			return true;
		}
	}
	return false;
}

#if STP_RE_MAX_PROG > 1
static inline bool stp_re_in_set(const struct stp_regex *re, int set, u8 b)
{
	return re->sets[set][b >> 5] & (1U << (b & 31));
}

/* Follow the zero-width instructions from @t, in priority order, adding
 * the threads that wait on a character (or match) to @list. */
static void stp_re_add(struct stp_re_scratch *w, const struct stp_regex *re,
		       struct stp_re_thread *list, int *n,
		       const struct stp_re_thread *t0, int pos, int len)
{
	int sp = 0;

	w->stack[sp++] = *t0;
	while (sp > 0) {
		struct stp_re_thread t = w->stack[--sp];
		const struct stp_re_inst *in;

		if (t.pc >= re->nprog || w->mark[t.pc] == w->gen)
			continue;
		w->mark[t.pc] = w->gen;
		in = &re->prog[t.pc];
		switch (in->op) {
		case STP_RE_JMP:
			t.pc = in->x;
			w->stack[sp++] = t;
			break;
		case STP_RE_SPLIT:
			/* y below x on the stack: x is followed first. */
			w->stack[sp] = t;
			w->stack[sp++].pc = in->y;
			t.pc = in->x;
			w->stack[sp++] = t;
			break;
		case STP_RE_SAVE:
			if (in->x < STP_RE_MAX_CAPS)
				t.cap[in->x] = (s16)pos;
			t.pc++;
			w->stack[sp++] = t;
			break;
		case STP_RE_BOL:
			if (pos == 0) {
				t.pc++;
				w->stack[sp++] = t;
			}
			break;
		case STP_RE_EOL:
			if (pos == len) {
				t.pc++;
				w->stack[sp++] = t;
			}
			break;
		default:	/* CHAR, MATCH */
			list[(*n)++] = t;
			break;
		}
	}
}

/* Groups of the match [ms, me) of @s: caps[2i], caps[2i+1] or -1. */
static bool stp_re_groups(struct stp_re_scratch *w, const struct stp_regex *re,
			  const char *s, int ms, int me, s16 *caps)
{
	const u8 *p = (const u8 *)s;
	int len = (int)stp_strnlen(s);
	struct stp_re_thread t;
	int n = 0, nn, i, pos, cur = 0;

	if (re->nprog > STP_RE_MAX_PROG)
		return false;
	memset(&t, 0xff, sizeof(t));
	t.pc = 0;
	w->gen++;
	stp_re_add(w, re, w->list[cur], &n, &t, ms, len);
	for (pos = ms; n > 0; pos++) {
		if (pos == me) {
			for (i = 0; i < n; i++) {
				if (re->prog[w->list[cur][i].pc].op == STP_RE_MATCH) {
					memcpy(caps, w->list[cur][i].cap,
					       sizeof(w->list[cur][i].cap));
					return true;
				}
			}
			return false;
		}
		w->gen++;
		nn = 0;
		for (i = 0; i < n; i++) {
			struct stp_re_thread *th = &w->list[cur][i];
			const struct stp_re_inst *in = &re->prog[th->pc];

			if (in->op != STP_RE_CHAR || !stp_re_in_set(re, in->x, p[pos]))
				continue;
			t = *th;
			t.pc++;
			stp_re_add(w, re, w->list[1 - cur], &nn, &t, pos + 1, len);
		}
		cur = 1 - cur;
		n = nn;
	}
	return false;
}
#endif

/* matched(n): the n-th group of the last successful =~ (0: whole match). */
static __maybe_unused void stp_regex_matched(struct stp_context *c, stp_long n,
					     char *out)
{
	const struct stp_regex *re = c->match_re;
	int ms, me, a = -1, b = -1;

	out[0] = '\0';
	if (!re || !c->match_ok) {
		STP_ERRORF(c, "Attempted to get subexpression %lld from failed match",
			   (long long)n);
		return;
	}
	if (n < 0 || n > re->ngroups) {
		STP_ERRORF(c, "Attempted to get nonexistent subexpression %lld",
			   (long long)n);
		return;
	}
	if (!stp_regex_span(re, c->match_subject, &ms, &me))
		return;
	if (n == 0) {
		a = ms;
		b = me;
	}
#if STP_RE_MAX_PROG > 1
	else if (2 * n + 1 < STP_RE_MAX_CAPS) {
		s16 caps[STP_RE_MAX_CAPS];

		if (stp_re_groups(&c->re_scratch, re, c->match_subject, ms, me, caps)) {
			a = caps[2 * n];
			b = caps[2 * n + 1];
		}
	}
#endif
	if (a < 0 || b < a)
		return;
	memcpy(out, c->match_subject + a, b - a);
	out[b - a] = '\0';
}

/* ngroups(): groups of the last successful =~, counting the whole match. */
static __maybe_unused stp_long stp_regex_ngroups(struct stp_context *c)
{
	const struct stp_regex *re = c->match_re;

	if (!re || !c->match_ok) {
		STP_ERROR(c, "Attempted to get number of subexpressions from failed match");
		return 0;
	}
	return re->ngroups + 1;
}

#endif /* STP_REGEX_H */
