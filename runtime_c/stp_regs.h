/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_regs.h - function arguments and return values from pt_regs.
 */
#ifndef STP_REGS_H
#define STP_REGS_H

#ifndef STP_USER
#include <linux/ptrace.h>
#endif

/* 1-based integer argument @n at function entry (x86-64 SysV ABI). */
static __maybe_unused stp_long stp_arg_reg(struct pt_regs *regs, int n)
{
	if (!regs)
		return 0;
#if defined(CONFIG_X86_64)
	switch (n) {
	case 1:
		return (stp_long)regs->di;
	case 2:
		return (stp_long)regs->si;
	case 3:
		return (stp_long)regs->dx;
	case 4:
		return (stp_long)regs->cx;
	case 5:
		return (stp_long)regs->r8;
	case 6:
		return (stp_long)regs->r9;
	default:
		return 0;
	}
#elif defined(CONFIG_HAVE_REGS_AND_STACK_ACCESS_API)
	if (n < 1)
		return 0;
	return (stp_long)regs_get_kernel_argument(regs, n - 1);
#else
	return 0;
#endif
}

static __maybe_unused stp_long stp_return_value(struct pt_regs *regs)
{
	if (!regs)
		return 0;
	return (stp_long)regs_return_value(regs);
}

#endif /* STP_REGS_H */
