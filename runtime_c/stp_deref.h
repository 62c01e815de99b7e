/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_deref.h - reading kernel memory from probe handlers without oopsing.
 *
 * Every $p->a->b load, @cast member and kernel_string() goes through
 * copy_from_kernel_nofault(): a bad pointer becomes the script error
 * "kernel read fault at 0x... near <statement>", which try/catch can
 * catch, never a page fault in the kernel.
 */
#ifndef STP_DEREF_H
#define STP_DEREF_H

#include <linux/uaccess.h>

/*
 * A field of @bits bits at bit @shift of the little-endian word @v, sign
 * extended when @is_signed: one place for kernel ($var) and user ($uvar)
 * reads of bitfields and narrow integers.
 */
static inline stp_long stp_bits_extract(u64 v, int shift, int bits,
					bool is_signed)
{
	v >>= shift;
	if (bits < 64)
		v &= (1ULL << bits) - 1;
	if (is_signed && bits < 64 && (v & (1ULL << (bits - 1))))
		v |= ~((1ULL << bits) - 1);
	return (stp_long)v;
}

static __maybe_unused bool stp_kread_fault(struct stp_context *c, u64 addr)
{
	STP_ERRORF(c, "kernel read fault at 0x%016llx", (unsigned long long)addr);
	return false;
}

static __maybe_unused bool stp_kstring_fault(struct stp_context *c, u64 addr)
{
	STP_ERRORF(c, "kernel string copy fault at 0x%016llx",
		   (unsigned long long)addr);
	return false;
}

/* *out = the @size-byte integer at @addr, sign- or zero-extended. */
static __maybe_unused bool stp_kread(struct stp_context *c, u64 addr, int size,
				     bool is_signed, stp_long *out)
{
	union { u8 b; u16 h; u32 w; u64 q; s8 sb; s16 sh; s32 sw; } v;

	v.q = 0;
	if (addr < PAGE_SIZE ||
	    copy_from_kernel_nofault(&v, (const void *)(uintptr_t)addr, size))
		return stp_kread_fault(c, addr);
	switch (size) {
	case 1: *out = is_signed ? (stp_long)v.sb : (stp_long)v.b; break;
	case 2: *out = is_signed ? (stp_long)v.sh : (stp_long)v.h; break;
	case 4: *out = is_signed ? (stp_long)v.sw : (stp_long)v.w; break;
	default: *out = (stp_long)v.q; break;
	}
	return true;
}

/* A bitfield: @nbytes bytes at @addr, shifted right by @shift, @bits wide. */
static __maybe_unused bool stp_kread_bits(struct stp_context *c, u64 addr,
					  int nbytes, int shift, int bits,
					  bool is_signed, stp_long *out)
{
	u64 v = 0;

	if (addr < PAGE_SIZE ||
	    copy_from_kernel_nofault(&v, (const void *)(uintptr_t)addr, nbytes))
		return stp_kread_fault(c, addr);
	*out = stp_bits_extract(v, shift, bits, is_signed);
	return true;
}

/*
 * Copy the NUL-terminated string at @addr into @dst (at most @max bytes
 * including the NUL, and never more than MAXSTRINGLEN). The string is read
 * page piece by page piece (a piece within one page is mapped or not as a
 * whole), so a string is read with one or two copies. A fault before the
 * NUL is an error, as in SystemTap's kernel_string().
 * (strncpy_from_kernel_nofault is not exported to modules.)
 */
static __maybe_unused bool stp_kread_string(struct stp_context *c, char *dst,
					    u64 addr, long max)
{
	long done = 0;

	if (max <= 0 || max > MAXSTRINGLEN)
		max = MAXSTRINGLEN;
	dst[0] = '\0';
	if (addr < PAGE_SIZE)
		return stp_kstring_fault(c, addr);
	while (done < max - 1) {
		u64 at = addr + done;
		long chunk = min_t(long, max - 1 - done,
				   PAGE_SIZE - (at & (PAGE_SIZE - 1)));
		char *nul;

		if (copy_from_kernel_nofault(dst + done,
					     (const void *)(uintptr_t)at, chunk)) {
			dst[done] = '\0';
			return stp_kstring_fault(c, at);
		}
		nul = memchr(dst + done, '\0', chunk);
		if (nul)
			return true;
		done += chunk;
	}
	dst[max - 1] = '\0';
	return true;
}

#endif /* STP_DEREF_H */
