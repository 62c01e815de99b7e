/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_runtime.h - the C runtime compiled into every stapbuild module.
 *
 * This umbrella header is the contract between pass 3 (codegen/, which emits
 * C) and the runtime. Generated code includes it first, then defines its
 * globals, context frame, functions, probe handlers and the probe tables, and
 * finally includes "stp_module_main.h", which provides module_init/exit.
 *
 * Everything is one translation unit, so every runtime function is static;
 * unused helpers are marked __maybe_unused so that -Werror builds stay clean.
 *
 * Naming: every runtime symbol starts with stp_ (functions, types) or STP_
 * (macros). Generated symbols start with stpg_. Limits follow SystemTap's
 * names (MAXSTRINGLEN, MAXACTION, ...) so that -D overrides mean the same.
 *
 * User-space protocol (read by stapbuild/runner.py):
 *   /proc/stapbuild-<module>/ctl   read: "key=value\n" lines:
 *                                    state=<starting|running|error|stopping|stopped>
 *                                    exit_requested=<0|1>
 *                                    errors=N skipped=N dropped=N
 *                                  write: "start"  run begin probes, arm probes
 *                                         "stop"   disarm, run end/error probes,
 *                                                  emit the summary, -> stopped
 *   /proc/stapbuild-<module>/data  read (non-blocking): zero or more whole
 *                                  records, each struct stp_record_hdr then
 *                                  len payload bytes; 0 bytes when empty.
 */
#ifndef STP_RUNTIME_H
#define STP_RUNTIME_H

/* stap -t is a kernel-module option (stp_timing.h). */
#if defined(STP_TIMING) && defined(STP_USER)
#undef STP_TIMING
#endif

#ifdef STP_USER
/* The user-space build (stapbuild --runtime=user): see user/. */
#include "user/stp_user_kernel.h"
#else
#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/types.h>
#include <linux/kprobes.h>
#include <linux/hrtimer.h>
#include <linux/spinlock.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/string.h>
#endif

/* ---- limits (SystemTap's names and defaults; override with -D) ---- */
#ifndef MAXSTRINGLEN
#define MAXSTRINGLEN 512
#endif
#ifndef MAXACTION
#define MAXACTION 1000
#endif
#ifndef MAXACTION_INTERRUPTIBLE
#define MAXACTION_INTERRUPTIBLE (MAXACTION * 10)
#endif
#ifndef MAXMAPENTRIES
#define MAXMAPENTRIES 2048
#endif
#ifndef MAXERRORS
#define MAXERRORS 0
#endif
#ifndef INTERRUPTIBLE
#define INTERRUPTIBLE 1		/* 0: a reentrant (skipped) probe counts as skipped */
#endif
#ifndef MAXSKIPPED
#define MAXSKIPPED 100
#endif
#ifndef MAXTRYLOCK
#define MAXTRYLOCK 100
#endif
#ifndef TRYLOCKDELAY
#define TRYLOCKDELAY 10		/* microseconds */
#endif
#ifndef MAXNESTING
#define MAXNESTING 10
#endif
#ifndef STP_BUFSIZE
#define STP_BUFSIZE (1024 * 1024)	/* output ring, bytes */
#endif
#ifndef STP_PRINT_BUF_LEN
#define STP_PRINT_BUF_LEN 8192		/* per-context print buffer */
#endif
#ifndef KRETACTIVE
#define KRETACTIVE (max(15, 6 * (int)num_possible_cpus()))
#endif

typedef s64 stp_long;

/* ---- session state (SystemTap's numbering) ---- */
enum stp_session_state {
	STP_SESSION_UNINITIALIZED = 0,
	STP_SESSION_STARTING = 1,
	STP_SESSION_RUNNING = 2,
	STP_SESSION_ERROR = 3,
	STP_SESSION_STOPPING = 4,
	STP_SESSION_STOPPED = 5,
};

/* ---- output records ---- */
enum stp_channel {
	STP_CHAN_STDOUT = 1,	/* print, printf, log ... */
	STP_CHAN_STDERR = 2,	/* WARNING: / ERROR: messages */
};

struct stp_record_hdr {
	u32 len;		/* payload bytes that follow */
	u16 channel;		/* enum stp_channel */
	u16 flags;		/* reserved, 0 */
};

/* ---- probe context ---- */
struct stp_probe_desc;
struct stp_regex;

/*
 * Scratch for matched(n)'s Pike VM (stp_regex.h), sized by the generated
 * code to its largest regex program; tiny when the script has none.
 */
#ifndef STP_RE_MAX_PROG
#define STP_RE_MAX_PROG 1
#endif
#ifndef STP_RE_MAX_CAPS
#define STP_RE_MAX_CAPS 2
#endif
struct stp_re_thread {
	u16 pc;
	s16 cap[STP_RE_MAX_CAPS];
};
struct stp_re_scratch {
	struct stp_re_thread list[2][STP_RE_MAX_PROG];
	struct stp_re_thread stack[2 * STP_RE_MAX_PROG + 2];
	u32 mark[STP_RE_MAX_PROG];
	u32 gen;
};

struct stp_print_buf {
	size_t len;
	char buf[STP_PRINT_BUF_LEN];
};

/*
 * One per CPU. Generated code extends it: its frame struct starts with a
 * struct stp_context member named "base", and stp_module.context_size says
 * how large the whole thing is. Locals live there, not on the kernel stack.
 */
struct stp_context {
	atomic_t busy;
	const struct stp_probe_desc *probe;
	struct pt_regs *regs;		/* NULL for begin/end/timer probes */
	struct kretprobe_instance *ri;	/* set in .return probes */
	const char *last_error;		/* non-NULL once a runtime error happened */
	const char *last_stmt;		/* "operator '/' at FILE:L:C" */
	long actionremaining;
	int nesting;			/* 0 in the probe body, +1 per call */
	int error_depth;		/* nesting where last_error was raised */
	/*
	 * call_site[i]: the statement of frame i that called frame i+1 (the
	 * caller's last_stmt, saved on entry). An error reports
	 * "near <innermost statement> (called from <call site>)..." up to
	 * the probe body, as SystemTap does.
	 */
	const char *call_site[MAXNESTING + 1];
	char error_buffer[MAXSTRINGLEN];
	char report_buffer[MAXSTRINGLEN];	/* stp_softerror's message */
	/* the last =~: what matched() and ngroups() look at */
	const struct stp_regex *match_re;
	bool match_ok;
	/* $value of a procfs probe: the file's buffer while its probe runs */
	char *procfs_value;
	size_t procfs_size;
	char match_subject[MAXSTRINGLEN];
	struct stp_re_scratch re_scratch;
	struct stp_print_buf out;
#ifdef STP_TIMING
	cycles_t timing_start;		/* stap -t: when the prologue ended */
#endif
};

typedef void (*stp_probe_fn)(struct stp_context *c);

/* A global that a handler touches, and how: taken in stp_probe_enter. */
struct stp_lock_req {
	rwlock_t *lock;
	bool write;
};

struct stp_probe_desc {
	const char *pp;			/* pp(): the probe point, as SystemTap prints it */
	stp_probe_fn fn;
	const struct stp_lock_req *locks;	/* sorted by lock address */
	int nlocks;
#ifdef STP_TIMING
	struct stp_timing __percpu *timing;	/* stap -t (stp_timing.h) */
#endif
};

struct stp_kprobe_desc {
	const struct stp_probe_desc *probe;
	const char *symbol;
	unsigned long offset;
	bool is_return;
	bool optional;			/* "?" : failure to register is not an error */
	int maxactive;			/* 0 = KRETACTIVE */
	/* .return probes that read values at entry (@entry, $params) */
	const struct stp_probe_desc *entry;	/* run by the entry handler */
	size_t data_size;		/* bytes of kretprobe_instance data */
	/*
	 * Generated handlers that call the probe directly (no indirect call
	 * to the handler body; gcc inlines it). NULL: the generic ones.
	 */
	int (*pre)(struct kprobe *kp, struct pt_regs *regs);
	int (*ret)(struct kretprobe_instance *ri, struct pt_regs *regs);
	/*
	 * .callee probes: run only when the return address is in the caller,
	 * [caller_lo, caller_hi) at link time; anchor - anchor_link is the
	 * kernel's KASLR shift. caller_hi == 0: no such filter.
	 */
	unsigned long caller_lo, caller_hi;
	unsigned long anchor, anchor_link;
	/* runtime-owned */
	struct kprobe kp;
	struct kretprobe rp;
	bool registered;
};

struct stp_uprobe_desc;
struct stp_proc_desc;
struct stp_timer_desc;
struct stp_cpu_timer {
	struct hrtimer timer;
	struct stp_timer_desc *t;
};

struct stp_timer_desc {
	const struct stp_probe_desc *probe;
	u64 interval_ns;
	u64 randomize_ns;
	bool per_cpu;			/* timer.profile: one timer on each CPU */
	/* runtime-owned */
	struct hrtimer timer;
	struct stp_cpu_timer __percpu *cpu_timers;
	bool armed;
};

/* procfs("path").read / .write: /proc/systemtap/MODULE/path */
struct stp_procfs_desc {
	const char *path;
	const struct stp_probe_desc *read;	/* fills $value */
	const struct stp_probe_desc *write;	/* gets $value */
	size_t bufsize;			/* .maxsize(N), else MAXSTRINGLEN */
	/* runtime-owned */
	struct mutex lock;
	char *buf;
	size_t len;
	bool created;
};

struct stp_module_desc {
	const struct stp_probe_desc *begin;	/* already in run order */
	int nbegin;
	const struct stp_probe_desc *end;
	int nend;
	const struct stp_probe_desc *error;
	int nerror;
	struct stp_kprobe_desc *kprobes;
	int nkprobes;
	struct stp_timer_desc *timers;
	int ntimers;
	struct stp_tp_desc *tracepoints;	/* kernel.trace (stp_tracepoint.h) */
	int ntracepoints;
	struct stp_procfs_desc *procfs;
	int nprocfs;
	struct stp_uprobe_desc *uprobes;	/* process(...) (stp_uprobes.h) */
	int nuprobes;
	struct stp_proc_desc *procs;	/* process.begin/.end (stp_uprobes.h) */
	int nprocs;
	size_t context_size;		/* sizeof the generated frame */
	int (*init_globals)(void);	/* allocate maps and stats; 0 or -errno */
	void (*free_globals)(void);
};

/* ---- errors and action budget, used by generated code ---- */
/* Record a runtime error; the handler then unwinds to its "out" label. */
#define STP_ERROR(c, msg) ((c)->last_error = (msg))
#define STP_ERRORF(c, fmt, ...) do { \
	snprintf((c)->error_buffer, MAXSTRINGLEN, fmt, ##__VA_ARGS__); \
	(c)->last_error = (c)->error_buffer; } while (0)
/* Charge n statements; false (and an error) when MAXACTION is used up. */
static inline bool stp_action(struct stp_context *c, long n)
{
	c->actionremaining -= n;
	if (unlikely(c->actionremaining <= 0)) {
		STP_ERROR(c, "MAXACTION exceeded");
		return false;
	}
	return true;
}

/*
 * Function frames. Entry saves the caller's statement (the call site) so
 * that an error deeper down can name it; a successful return restores it.
 * An error leaves the callee's statement in last_stmt and records how deep
 * it happened, for stp_softerror()'s "(called from ...)" chain.
 */
static inline bool stp_fn_enter(struct stp_context *c)
{
	if (unlikely(c->nesting + 1 > MAXNESTING)) {
		STP_ERROR(c, "MAXNESTING exceeded");
		return false;
	}
	c->call_site[c->nesting] = c->last_stmt;
	c->nesting++;
	c->last_stmt = NULL;
	return true;
}

static inline void stp_fn_exit(struct stp_context *c)
{
	if (likely(!c->last_error))
		c->last_stmt = c->call_site[c->nesting - 1];
	else if (c->error_depth < c->nesting)
		c->error_depth = c->nesting;
	c->nesting--;
}

/* try { } catch: the error is handled, forget where it came from. */
static inline void stp_catch(struct stp_context *c)
{
	c->last_error = NULL;
	c->last_stmt = NULL;
	c->error_depth = 0;
}

/* ---- the rest of the API, implemented in the included files ---- */
/* session:  stp_request_exit(), stp_session_get()                          */
/* output:   stp_print_str/char/long, stp_printf, stp_print_flush,
 *           stp_warn, stp_softerror                                        */
/* strings:  stp_strlcpy, stp_strlcat, stp_sprintf                         */
/* arith:    stp_div, stp_mod                                               */
/* maps:     stp_map_* and stp_pmap_*, stats: stp_stat_*, stp_pstat_*      */
/* regs:     stp_arg_reg, stp_return_value                                 */
#include "stp_session.h"
#include "stp_format.h"
#include "stp_output.h"
#include "stp_string.h"
#include "stp_regex.h"
#include "stp_arith.h"
#include "stp_stat.h"
#include "stp_map.h"
#include "stp_regs.h"
#include "stp_timing.h"
#include "stp_context.h"
#include "stp_probes.h"

#endif /* STP_RUNTIME_H */
