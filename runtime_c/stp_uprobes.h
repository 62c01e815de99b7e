/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_uprobes.h - process("PATH").function(...) probes: inode uprobes and
 * uretprobes, and nofault reads of the probed process's memory.
 *
 * A uprobe is registered on (inode, file offset); pass 2 computed the
 * offset from the ELF, the inode is looked up here by path when the
 * session starts. The kernel puts the breakpoint into every mapping of
 * that file, present and future, so a program started after "start" is
 * probed too. Handlers run in the probed task's context, with that task's
 * user registers; stp_probe_enter disables preemption, so user memory is
 * only ever read with copy_from_user_nofault (a page that is not resident
 * is a script error, never a sleep or an oops).
 *
 * API differences:
 *   6.1:  int uprobe_register(inode, off, uc), uprobe_register_refctr(),
 *         void uprobe_unregister(inode, off, uc), synchronous;
 *   6.12: struct uprobe *uprobe_register(inode, off, ref_ctr_off, uc),
 *         uprobe_unregister_nosync(up, uc) then one uprobe_unregister_sync().
 */
#ifndef STP_UPROBES_H
#define STP_UPROBES_H

#include <linux/uprobes.h>
#include <linux/namei.h>
#include <linux/fs.h>
#include <linux/mm_types.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/vmalloc.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#define STP_UPROBE_HANDLE 1
#else
#define STP_UPROBE_HANDLE 0
#endif

struct stp_uprobe_desc {
	const struct stp_probe_desc *probe;
	const char *path;		/* file that holds the code */
	loff_t offset;			/* file offset of the probed instruction */
	loff_t ref_ctr_offset;		/* SDT semaphore, 0 = none */
	/* Only fire in processes running this executable (NULL = any). */
	const char *exe_path;
	pid_t pid;			/* process(PID): only its threads, 0 = any */
	bool is_return;
	bool optional;
	/*
	 * .return probes that read $params/@entry: the generated entry
	 * handler runs at @entry_offset (the .call point, after the prologue
	 * when @entry_bp) and saves data_size bytes, keyed by the task and
	 * the frame's CFA, which is the stack pointer after the return.
	 */
	const struct stp_probe_desc *entry;
	size_t data_size;
	loff_t entry_offset;
	bool entry_bp;			/* CFA = bp + 16, else sp + 8 */
	/* runtime-owned */
	struct uprobe_consumer uc;
	struct uprobe_consumer euc;	/* the entry handler's */
	struct inode *inode;
	struct inode *exe_inode;
#if STP_UPROBE_HANDLE
	struct uprobe *up;
	struct uprobe *eup;
#endif
	bool registered;
	bool entry_registered;
};

/* ---- user memory for $target chains ---- */

static __maybe_unused bool stp_utarget_fault(struct stp_context *c, u64 addr)
{
	STP_ERRORF(c, "user read fault at 0x%016llx", (unsigned long long)addr);
	return false;
}

/* *out = the @size-byte user integer at @addr, sign- or zero-extended. */
static __maybe_unused bool stp_utarget_read(struct stp_context *c, u64 addr,
					    int size, bool is_signed,
					    stp_long *out)
{
	union { u8 b; u16 h; u32 w; u64 q; s8 sb; s16 sh; s32 sw; } v;

	v.q = 0;
	if (addr < PAGE_SIZE ||
	    copy_from_user_nofault(&v, (const void __user *)(uintptr_t)addr,
				   size))
		return stp_utarget_fault(c, addr);
	switch (size) {
	case 1: *out = is_signed ? (stp_long)v.sb : (stp_long)v.b; break;
	case 2: *out = is_signed ? (stp_long)v.sh : (stp_long)v.h; break;
	case 4: *out = is_signed ? (stp_long)v.sw : (stp_long)v.w; break;
	default: *out = (stp_long)v.q; break;
	}
	return true;
}

/* A user bitfield: @nbytes at @addr, shifted right by @shift, @bits wide. */
static __maybe_unused bool stp_utarget_read_bits(struct stp_context *c,
						 u64 addr, int nbytes,
						 int shift, int bits,
						 bool is_signed,
						 stp_long *out)
{
	u64 v = 0;

	if (addr < PAGE_SIZE ||
	    copy_from_user_nofault(&v, (const void __user *)(uintptr_t)addr,
				   nbytes))
		return stp_utarget_fault(c, addr);
	*out = stp_bits_extract(v, shift, bits, is_signed);
	return true;
}

/*
 * The NUL-terminated user string at @addr into @dst (at most @max bytes
 * with the NUL), a page piece at a time ($$parms$ of a char *).
 */
static __maybe_unused bool stp_utarget_string(struct stp_context *c, char *dst,
					      u64 addr, long max)
{
	long done = 0;

	if (max <= 0 || max > MAXSTRINGLEN)
		max = MAXSTRINGLEN;
	dst[0] = '\0';
	if (addr < PAGE_SIZE)
		return stp_utarget_fault(c, addr);
	while (done < max - 1) {
		u64 at = addr + done;
		long chunk = min_t(long, max - 1 - done,
				   PAGE_SIZE - (at & (PAGE_SIZE - 1)));

		if (copy_from_user_nofault(dst + done,
					   (const void __user *)(uintptr_t)at,
					   chunk)) {
			dst[done] = '\0';
			return stp_utarget_fault(c, at);
		}
		if (memchr(dst + done, '\0', chunk))
			return true;
		done += chunk;
	}
	dst[max - 1] = '\0';
	return true;
}

/* ---- handlers ---- */

/*
 * Is the current task running the executable @want (NULL: any)? By
 * superblock and inode number, not by pointer: 9p without a cache can
 * give one file several struct inodes.
 */
static bool stp_current_exe_is(const struct inode *want)
{
	struct mm_struct *mm = current->mm;
	struct file *exe;
	bool ok;

	if (!want)
		return true;
	if (!mm)
		return false;
	rcu_read_lock();
	exe = rcu_dereference(mm->exe_file);
	ok = exe && file_inode(exe)->i_sb == want->i_sb &&
		file_inode(exe)->i_ino == want->i_ino;
	rcu_read_unlock();
	return ok;
}

/* process(PID) and process("PATH") filters together (0/NULL: any). */
static bool stp_current_is(const struct inode *want, pid_t pid)
{
	if (pid && task_tgid_nr(current) != pid)
		return false;
	return stp_current_exe_is(want);
}

static int stp_uprobe_handler(struct uprobe_consumer *uc, struct pt_regs *regs)
{
	struct stp_uprobe_desc *d = container_of(uc, struct stp_uprobe_desc, uc);
	struct stp_context *c;

	if (!stp_current_is(d->exe_inode, d->pid))
		return 0;
	c = stp_probe_enter(d->probe, STP_SESSION_RUNNING, regs);
	if (!c)
		return 0;
	d->probe->fn(c);
	stp_probe_exit(c);
	return 0;
}

/*
 * ---- values saved at entry for .return probes ----
 *
 * A set-associative table of STP_UENTRY_SLOTS slots (STP_UENTRY_WAYS per
 * bucket), keyed by (probe, task, pid, CFA), each with data_size bytes of
 * saved values. The entry handler fills a per-CPU scratch buffer, then
 * stores it (replacing the bucket's oldest slot when it is full: a frame
 * left by longjmp or an exit must not pin a slot); the return handler
 * takes its slot out. A return whose slot is gone is a runtime error.
 */
#ifndef STP_UENTRY_SLOTS
#define STP_UENTRY_SLOTS 1024
#endif
#define STP_UENTRY_WAYS 8
#define STP_UENTRY_BUCKETS (STP_UENTRY_SLOTS / STP_UENTRY_WAYS)

struct stp_uentry_slot {
	const struct stp_uprobe_desc *d;	/* NULL: free */
	struct task_struct *task;
	pid_t pid;
	bool failed;			/* the entry handler did not save */
	unsigned long cfa;
	u64 seq;
};

static struct stp_uentry_slot *stp_uentry_slots;
static char *stp_uentry_pool;
static size_t stp_uentry_size;
static u64 stp_uentry_seq;
static DEFINE_SPINLOCK(stp_uentry_lock);
static void __percpu *stp_uentry_scratch;
static DEFINE_PER_CPU(void *, stp_uentry_cur);

/* The running handler's saved values (codegen: entry_load/entry_save). */
static __maybe_unused void *stp_uentry_data(void)
{
	return __this_cpu_read(stp_uentry_cur);
}

static unsigned int stp_uentry_bucket(const struct stp_uprobe_desc *d,
				      unsigned long cfa)
{
	return hash_64((u64)(uintptr_t)current ^ (u64)(uintptr_t)d ^ cfa,
		       ilog2(STP_UENTRY_BUCKETS));
}

static bool stp_uentry_match(const struct stp_uentry_slot *s,
			     const struct stp_uprobe_desc *d, unsigned long cfa)
{
	return s->d == d && s->task == current && s->pid == current->pid &&
		s->cfa == cfa;
}

static void stp_uentry_store(const struct stp_uprobe_desc *d,
			     unsigned long cfa, const void *data, bool failed)
{
	unsigned int b = stp_uentry_bucket(d, cfa), i, k = 0;
	struct stp_uentry_slot *s, *pick = NULL;
	unsigned long flags;

	spin_lock_irqsave(&stp_uentry_lock, flags);
	for (i = 0; i < STP_UENTRY_WAYS; i++) {
		s = &stp_uentry_slots[b * STP_UENTRY_WAYS + i];
		if (stp_uentry_match(s, d, cfa) || !s->d) {
			pick = s;
			k = i;
			if (s->d)
				break;
		} else if (!pick || (pick->d && s->seq < pick->seq)) {
			pick = s;
			k = i;
		}
	}
	pick->d = d;
	pick->task = current;
	pick->pid = current->pid;
	pick->cfa = cfa;
	pick->failed = failed;
	pick->seq = ++stp_uentry_seq;
	if (!failed)
		memcpy(stp_uentry_pool + (size_t)(b * STP_UENTRY_WAYS + k) *
		       stp_uentry_size, data, d->data_size);
	spin_unlock_irqrestore(&stp_uentry_lock, flags);
}

/*
 * Take the slot of the frame at @cfa out (copied to @data unless NULL):
 * 1: found, 0: its entry handler did not save, -1: no slot.
 */
static int stp_uentry_take(const struct stp_uprobe_desc *d, unsigned long cfa,
			   void *data)
{
	unsigned int b = stp_uentry_bucket(d, cfa), i;
	unsigned long flags;
	int rc = -1;

	spin_lock_irqsave(&stp_uentry_lock, flags);
	for (i = 0; i < STP_UENTRY_WAYS; i++) {
		struct stp_uentry_slot *s =
			&stp_uentry_slots[b * STP_UENTRY_WAYS + i];

		if (!stp_uentry_match(s, d, cfa))
			continue;
		rc = s->failed ? 0 : 1;
		if (rc && data)
			memcpy(data, stp_uentry_pool + (size_t)(b * STP_UENTRY_WAYS + i) *
			       stp_uentry_size, d->data_size);
		s->d = NULL;
		break;
	}
	spin_unlock_irqrestore(&stp_uentry_lock, flags);
	return rc;
}

static int stp_uentry_handler(struct uprobe_consumer *uc, struct pt_regs *regs)
{
	struct stp_uprobe_desc *d = container_of(uc, struct stp_uprobe_desc, euc);
	unsigned long cfa = d->entry_bp ? regs->bp + 16 : regs->sp + 8;
	struct stp_context *c;
	void *buf;
	bool failed;

	if (!stp_current_is(d->exe_inode, d->pid))
		return 0;
	c = stp_probe_enter(d->entry, STP_SESSION_RUNNING, regs);
	if (!c) {
		/* skipped: its return is skipped too, without an error */
		stp_uentry_store(d, cfa, NULL, true);
		return 0;
	}
	buf = this_cpu_ptr(stp_uentry_scratch);
	__this_cpu_write(stp_uentry_cur, buf);
	d->entry->fn(c);
	failed = c->last_error != NULL;
	stp_uentry_store(d, cfa, buf, failed);
	__this_cpu_write(stp_uentry_cur, NULL);
	stp_probe_exit(c);
	return 0;
}

static int stp_uretprobe_handler(struct uprobe_consumer *uc,
				 unsigned long func, struct pt_regs *regs)
{
	struct stp_uprobe_desc *d = container_of(uc, struct stp_uprobe_desc, uc);
	struct stp_context *c;
	void *buf;
	int rc;

	if (!d->entry)
		return stp_uprobe_handler(uc, regs);
	if (!stp_current_is(d->exe_inode, d->pid))
		return 0;
	c = stp_probe_enter(d->probe, STP_SESSION_RUNNING, regs);
	buf = c ? this_cpu_ptr(stp_uentry_scratch) : NULL;
	/* after the return, sp is the frame's CFA */
	rc = stp_uentry_take(d, regs->sp, buf);
	if (!c)
		return 0;
	if (rc < 0) {
		STP_ERRORF(c, "no values saved at the entry of this call (more than %d calls pending; raise -D STP_UENTRY_SLOTS)",
			   STP_UENTRY_SLOTS);
	} else if (rc > 0) {
		__this_cpu_write(stp_uentry_cur, buf);
		d->probe->fn(c);
		__this_cpu_write(stp_uentry_cur, NULL);
	}
	stp_probe_exit(c);
	return 0;
}

static int stp_uentry_alloc(struct stp_module_desc *m)
{
	size_t size = 0;
	int i;

	for (i = 0; i < m->nuprobes; i++)
		if (m->uprobes[i].entry)
			size = max(size, ALIGN(max_t(size_t, m->uprobes[i].data_size, 8), 8));
	if (!size)
		return 0;
	stp_uentry_size = size;
	stp_uentry_seq = 0;
	stp_uentry_slots = vzalloc(array_size(STP_UENTRY_SLOTS,
					      sizeof(*stp_uentry_slots)));
	stp_uentry_pool = vzalloc(array_size(STP_UENTRY_SLOTS, size));
	stp_uentry_scratch = __alloc_percpu(size, 8);
	if (!stp_uentry_slots || !stp_uentry_pool || !stp_uentry_scratch)
		return -ENOMEM;
	return 0;
}

static void stp_uentry_free(void)
{
	vfree(stp_uentry_slots);
	vfree(stp_uentry_pool);
	free_percpu(stp_uentry_scratch);
	stp_uentry_slots = NULL;
	stp_uentry_pool = NULL;
	stp_uentry_scratch = NULL;
}

/* ---- arming ---- */

/*
 * The inode behind @path (a reference the caller drops with iput). On an
 * overlay (the guests' /tmp) the code is mapped from the real, lower
 * inode, which is what a uprobe is registered on (@real), while execve's
 * mm->exe_file is the overlay's file, which the exe filter compares with.
 */
static struct inode *stp_uprobe_inode(const char *path, bool real, int *rc)
{
	struct path p;
	struct inode *inode;

	*rc = kern_path(path, LOOKUP_FOLLOW, &p);
	if (*rc)
		return NULL;
	inode = igrab(real ? d_real_inode(p.dentry) : d_inode(p.dentry));
	path_put(&p);
	if (!inode)
		*rc = -ENOENT;
	return inode;
}

static int stp_uprobe_register_one(struct stp_uprobe_desc *d)
{
	int rc;

	d->inode = stp_uprobe_inode(d->path, true, &rc);
	if (!d->inode)
		return rc;
	if (d->exe_path) {
		d->exe_inode = stp_uprobe_inode(d->exe_path, false, &rc);
		if (!d->exe_inode)
			goto fail;
	}
	if (d->entry) {
		/*
		 * The entry half first, a plain uprobe at the .call point: a
		 * call that the uretprobe sees has its values saved.
		 */
		memset(&d->euc, 0, sizeof(d->euc));
		d->euc.handler = stp_uentry_handler;
#if STP_UPROBE_HANDLE
		d->eup = uprobe_register(d->inode, d->entry_offset, 0, &d->euc);
		rc = IS_ERR(d->eup) ? PTR_ERR(d->eup) : 0;
		if (rc)
			d->eup = NULL;
#else
		rc = uprobe_register(d->inode, d->entry_offset, &d->euc);
#endif
		if (rc)
			goto fail;
		d->entry_registered = true;
	}
	memset(&d->uc, 0, sizeof(d->uc));
	if (d->is_return)
		d->uc.ret_handler = stp_uretprobe_handler;
	else
		d->uc.handler = stp_uprobe_handler;
#if STP_UPROBE_HANDLE
	d->up = uprobe_register(d->inode, d->offset, d->ref_ctr_offset, &d->uc);
	rc = IS_ERR(d->up) ? PTR_ERR(d->up) : 0;
	if (rc)
		d->up = NULL;
#else
	rc = d->ref_ctr_offset ?
		uprobe_register_refctr(d->inode, d->offset, d->ref_ctr_offset,
				       &d->uc) :
		uprobe_register(d->inode, d->offset, &d->uc);
#endif
	if (rc == 0)
		return 0;
	if (d->entry_registered) {
#if STP_UPROBE_HANDLE
		uprobe_unregister_nosync(d->eup, &d->euc);
		uprobe_unregister_sync();
		d->eup = NULL;
#else
		uprobe_unregister(d->inode, d->entry_offset, &d->euc);
#endif
		d->entry_registered = false;
	}
fail:
	if (d->exe_inode)
		iput(d->exe_inode);
	d->exe_inode = NULL;
	iput(d->inode);
	d->inode = NULL;
	return rc;
}

static __maybe_unused void stp_arm_uprobes(struct stp_module_desc *m)
{
	int i, rc;

	rc = stp_uentry_alloc(m);
	if (rc) {
		stp_warn("process .return probes: no memory for the values saved at entry (rc %d)",
			 rc);
		stp_session_fail();
		return;
	}
	for (i = 0; i < m->nuprobes; i++) {
		struct stp_uprobe_desc *d = &m->uprobes[i];

		if (stp_session_get() != STP_SESSION_RUNNING)
			return;
		rc = stp_uprobe_register_one(d);
		if (rc == 0) {
			d->registered = true;
		} else if (!d->optional) {
			stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
				 d->probe->pp, rc);
			stp_session_fail();
			return;
		}
	}
}

/* On return no uprobe handler of ours runs or can start. */
static __maybe_unused void stp_disarm_uprobes(struct stp_module_desc *m)
{
	int i, n = 0;

	for (i = 0; i < m->nuprobes; i++) {
		struct stp_uprobe_desc *d = &m->uprobes[i];

		if (!d->registered)
			continue;
#if STP_UPROBE_HANDLE
		uprobe_unregister_nosync(d->up, &d->uc);
		if (d->entry_registered)
			uprobe_unregister_nosync(d->eup, &d->euc);
#else
		uprobe_unregister(d->inode, d->offset, &d->uc);
		if (d->entry_registered)
			uprobe_unregister(d->inode, d->entry_offset, &d->euc);
#endif
		n++;
	}
#if STP_UPROBE_HANDLE
	if (n)
		uprobe_unregister_sync();
#endif
	for (i = 0; i < m->nuprobes; i++) {
		struct stp_uprobe_desc *d = &m->uprobes[i];

		if (!d->registered)
			continue;
		if (d->exe_inode)
			iput(d->exe_inode);
		iput(d->inode);
		d->exe_inode = NULL;
		d->inode = NULL;
		d->registered = false;
		d->entry_registered = false;
	}
	stp_uentry_free();
}

/*
 * ---- process.begin / .end / .thread.begin / .thread.end ----
 *
 * begin: a kretprobe on schedule_tail(), the first kernel function a new
 * task runs (from ret_from_fork), so the handler runs in the *new* task
 * and pid()/execname() describe it, as in SystemTap; at its return the
 * runqueue lock is released. process("PATH").begin also fires when a
 * task execs PATH (sched_process_exec, in the exec'ing task).
 * end: a kprobe on acct_collect(exitcode, group_dead), which do_exit()
 * calls in the exiting task with the result of its own
 * atomic_dec_and_test(&signal->live): exactly one thread per process is
 * the group's last (re-reading signal->live later races with threads
 * exiting at the same time, and two of them could both see 0). It runs
 * before exit_mm(), so current->mm, and the exe that process("PATH").end
 * compares, are still there.
 * syscall[.return]: the raw_syscalls sys_enter/sys_exit tracepoints, in
 * the calling task, with its user registers as the probe's registers.
 * Kernel threads are never reported.
 */
enum {
	STP_PROC_BEGIN,
	STP_PROC_END,
	STP_PROC_THREAD_BEGIN,
	STP_PROC_THREAD_END,
	STP_PROC_SYSCALL,		/* raw_syscalls:sys_enter */
	STP_PROC_SYSCALL_RETURN,	/* raw_syscalls:sys_exit */
};

/*
 * process.syscall: the running handler's system call number and return
 * value ($syscall, $return); $argN are read from its user registers.
 */
static DEFINE_PER_CPU(long, stp_sc_nr);
static DEFINE_PER_CPU(long, stp_sc_ret);

static __maybe_unused long stp_syscall_nr(void)
{
	return __this_cpu_read(stp_sc_nr);
}

static __maybe_unused long stp_syscall_ret(void)
{
	return __this_cpu_read(stp_sc_ret);
}

struct stp_proc_desc {
	const struct stp_probe_desc *probe;
	const char *exe_path;		/* process("PATH").begin, else NULL */
	pid_t pid;			/* process(PID).begin, else 0 */
	int kind;
	/* runtime-owned */
	struct inode *exe_inode;
};

static struct stp_module_desc *stp_proc_module;
static struct kretprobe stp_proc_rp;
static bool stp_proc_rp_registered;
static struct tracepoint *stp_proc_tp_exec;
static bool stp_proc_exec_registered;
static struct tracepoint *stp_proc_tp_sys_enter, *stp_proc_tp_sys_exit;
static bool stp_proc_sys_enter_registered, stp_proc_sys_exit_registered;
static struct kprobe stp_proc_kp_exit;
static bool stp_proc_exit_kp_registered;

/* Where a lifecycle event is reported from. */
enum {
	STP_HOOK_ANY,		/* fork, acct_collect, raw_syscalls */
	STP_HOOK_EXEC,		/* sched_process_exec: PATH probes only */
	STP_HOOK_EXIT_MM,	/* acct_collect of a group's last thread: PATH probes only */
};

static void stp_proc_fire_regs(int kind, int hook, struct pt_regs *regs,
			       long nr, long ret)
{
	struct stp_module_desc *m = READ_ONCE(stp_proc_module);
	int i;

	if (!m || (current->flags & PF_KTHREAD))
		return;
	for (i = 0; i < m->nprocs; i++) {
		const struct stp_proc_desc *d = &m->procs[i];
		struct stp_context *c;

		if (d->kind != kind)
			continue;
		if (hook != STP_HOOK_ANY ? !d->exe_inode :
		    kind == STP_PROC_END && d->exe_inode)
			continue;
		if (!stp_current_is(d->exe_inode, d->pid))
			continue;
		c = stp_probe_enter(d->probe, STP_SESSION_RUNNING, regs);
		if (!c)
			continue;
		/* preemption is off from here to stp_probe_exit */
		__this_cpu_write(stp_sc_nr, nr);
		__this_cpu_write(stp_sc_ret, ret);
		d->probe->fn(c);
		stp_probe_exit(c);
	}
}

static void stp_proc_fire(int kind, int hook)
{
	stp_proc_fire_regs(kind, hook, NULL, 0, 0);
}

static void stp_proc_sys_enter(void *data, struct pt_regs *regs, long id)
{
	stp_proc_fire_regs(STP_PROC_SYSCALL, STP_HOOK_ANY, regs, id, 0);
}

static void stp_proc_sys_exit(void *data, struct pt_regs *regs, long ret)
{
	stp_proc_fire_regs(STP_PROC_SYSCALL_RETURN, STP_HOOK_ANY, regs,
			   regs->orig_ax, ret);
}

static int stp_proc_fork_ret(struct kretprobe_instance *ri,
			     struct pt_regs *regs)
{
	stp_proc_fire(thread_group_leader(current) ? STP_PROC_BEGIN :
		      STP_PROC_THREAD_BEGIN, STP_HOOK_ANY);
	return 0;
}

static void stp_proc_exec(void *data, struct task_struct *p, pid_t old_pid,
			  struct linux_binprm *bprm)
{
	stp_proc_fire(STP_PROC_BEGIN, STP_HOOK_EXEC);
}

/* acct_collect(long exitcode, int group_dead): group_dead is the 2nd argument. */
static int stp_proc_acct_collect(struct kprobe *kp, struct pt_regs *regs)
{
	bool group_dead = (int)regs->si != 0;

	stp_proc_fire(group_dead ? STP_PROC_END : STP_PROC_THREAD_END,
		      STP_HOOK_ANY);
	if (group_dead)
		stp_proc_fire(STP_PROC_END, STP_HOOK_EXIT_MM);
	return 0;
}

static void stp_proc_find_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "sched_process_exec"))
		stp_proc_tp_exec = tp;
	else if (!strcmp(tp->name, "sys_enter"))
		stp_proc_tp_sys_enter = tp;
	else if (!strcmp(tp->name, "sys_exit"))
		stp_proc_tp_sys_exit = tp;
}

static __maybe_unused void stp_arm_procs(struct stp_module_desc *m)
{
	bool begin = false, exec = false, end = false, sys = false,
		sysret = false, exit_mm = false;
	int i, rc = 0;

	if (!m->nprocs)
		return;
	for (i = 0; i < m->nprocs; i++) {
		struct stp_proc_desc *d = &m->procs[i];

		if (d->exe_path) {
			d->exe_inode = stp_uprobe_inode(d->exe_path, false, &rc);
			if (!d->exe_inode) {
				stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
					 d->probe->pp, rc);
				goto fail;
			}
			if (d->kind == STP_PROC_BEGIN)
				exec = true;
			else if (d->kind == STP_PROC_END)
				exit_mm = true;
		}
		if (d->kind == STP_PROC_BEGIN || d->kind == STP_PROC_THREAD_BEGIN)
			begin = true;
		else if (d->kind == STP_PROC_SYSCALL)
			sys = true;
		else if (d->kind == STP_PROC_SYSCALL_RETURN)
			sysret = true;
		else if (d->kind != STP_PROC_END || !d->exe_inode)
			end = true;
	}
	WRITE_ONCE(stp_proc_module, m);
	for_each_kernel_tracepoint(stp_proc_find_tp, NULL);
	if (begin) {
		memset(&stp_proc_rp, 0, sizeof(stp_proc_rp));
		stp_proc_rp.kp.symbol_name = "schedule_tail";
		stp_proc_rp.handler = stp_proc_fork_ret;
		/* one instance per task between fork and its first return */
		stp_proc_rp.maxactive = 4 * num_possible_cpus() + 16;
		rc = register_kretprobe(&stp_proc_rp);
		if (rc)
			goto warn;
		stp_proc_rp_registered = true;
	}
	if (exec) {
		rc = stp_proc_tp_exec ?
			tracepoint_probe_register(stp_proc_tp_exec,
						  (void *)stp_proc_exec, NULL) :
			-ENOENT;
		if (rc)
			goto warn;
		stp_proc_exec_registered = true;
	}
	if (end || exit_mm) {
		memset(&stp_proc_kp_exit, 0, sizeof(stp_proc_kp_exit));
		stp_proc_kp_exit.symbol_name = "acct_collect";
		stp_proc_kp_exit.pre_handler = stp_proc_acct_collect;
		rc = register_kprobe(&stp_proc_kp_exit);
		if (rc)
			goto warn;
		stp_proc_exit_kp_registered = true;
	}
	if (sys) {
		rc = stp_proc_tp_sys_enter ?
			tracepoint_probe_register(stp_proc_tp_sys_enter,
						  (void *)stp_proc_sys_enter, NULL) :
			-ENOENT;
		if (rc)
			goto warn;
		stp_proc_sys_enter_registered = true;
	}
	if (sysret) {
		rc = stp_proc_tp_sys_exit ?
			tracepoint_probe_register(stp_proc_tp_sys_exit,
						  (void *)stp_proc_sys_exit, NULL) :
			-ENOENT;
		if (rc)
			goto warn;
		stp_proc_sys_exit_registered = true;
	}
	return;
warn:
	stp_warn("probe %s registration error [man warning::pass5] (rc %d)",
		 m->procs[0].probe->pp, rc);
fail:
	stp_session_fail();
}

/* On return no lifecycle handler of ours runs or can start. */
static __maybe_unused void stp_disarm_procs(struct stp_module_desc *m)
{
	int i;
	bool tp = stp_proc_exec_registered ||
		stp_proc_sys_enter_registered || stp_proc_sys_exit_registered;

	if (stp_proc_exec_registered)
		tracepoint_probe_unregister(stp_proc_tp_exec,
					    (void *)stp_proc_exec, NULL);
	if (stp_proc_sys_enter_registered)
		tracepoint_probe_unregister(stp_proc_tp_sys_enter,
					    (void *)stp_proc_sys_enter, NULL);
	if (stp_proc_sys_exit_registered)
		tracepoint_probe_unregister(stp_proc_tp_sys_exit,
					    (void *)stp_proc_sys_exit, NULL);
	stp_proc_exec_registered = false;
	stp_proc_sys_enter_registered = false;
	stp_proc_sys_exit_registered = false;
	if (tp)
		tracepoint_synchronize_unregister();
	if (stp_proc_exit_kp_registered)
		unregister_kprobe(&stp_proc_kp_exit);
	stp_proc_exit_kp_registered = false;
	if (stp_proc_rp_registered)
		unregister_kretprobe(&stp_proc_rp);
	stp_proc_rp_registered = false;
	WRITE_ONCE(stp_proc_module, NULL);
	for (i = 0; i < m->nprocs; i++) {
		if (m->procs[i].exe_inode)
			iput(m->procs[i].exe_inode);
		m->procs[i].exe_inode = NULL;
	}
}

#endif /* STP_UPROBES_H */
