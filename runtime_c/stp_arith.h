/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_arith.h - checked 64-bit division. Script errors must never become
 * kernel traps: x/0 is a script error and S64_MIN / -1 (which raises #DE on
 * x86) wraps like the other arithmetic does.
 */
#ifndef STP_ARITH_H
#define STP_ARITH_H

#ifndef STP_USER
#include <linux/math64.h>
#endif

static __maybe_unused stp_long stp_div(struct stp_context *c, stp_long a,
				       stp_long b)
{
	if (unlikely(b == 0)) {
		STP_ERROR(c, "division by 0");
		return 0;
	}
	if (unlikely(b == -1))
		return (stp_long)(0 - (u64)a);	/* wraps for S64_MIN */
	return div64_s64(a, b);
}

static __maybe_unused stp_long stp_mod(struct stp_context *c, stp_long a,
				       stp_long b)
{
	if (unlikely(b == 0)) {
		STP_ERROR(c, "division by 0");
		return 0;
	}
	if (unlikely(b == -1))
		return 0;
	return a - div64_s64(a, b) * b;
}

#endif /* STP_ARITH_H */
