/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_string.h - bounded string helpers. Every script string lives in a
 * MAXSTRINGLEN buffer; these never write past it, always NUL-terminate, and
 * tolerate overlapping arguments (s = s . s is legal in the language).
 */
#ifndef STP_STRING_H
#define STP_STRING_H

/* strnlen(s, MAXSTRINGLEN - 1) that compilers cannot second-guess: a
 * string literal shorter than the bound is fine (it stops at its NUL). */
static inline size_t stp_strnlen(const char *s)
{
	size_t n = 0;

	while (n < MAXSTRINGLEN - 1 && s[n])
		n++;
	return n;
}

static __maybe_unused void stp_strlcpy(char *dst, const char *src)
{
	size_t n;

	if (!src)
		src = "";
	n = stp_strnlen(src);
	memmove(dst, src, n);
	dst[n] = '\0';
}

static __maybe_unused void stp_strlcat(char *dst, const char *src)
{
	size_t len = stp_strnlen(dst);
	size_t n;

	if (!src)
		return;
	n = min_t(size_t, stp_strnlen(src), MAXSTRINGLEN - 1 - len);
	memmove(dst + len, src, n);
	dst[len + n] = '\0';
}

/*
 * sprintf() into a MAXSTRINGLEN buffer, with SystemTap's conversions
 * (stp_format.h). The generator must not pass @dst as one of the arguments;
 * it formats into a temporary and stp_strlcpy()s instead.
 */
static __maybe_unused void stp_sprintf(char *dst, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (stp_vformat(NULL, dst, MAXSTRINGLEN, fmt, ap) < 0)
		dst[0] = '\0';
	va_end(ap);
}

/* The same from a probe: a %m fault becomes the script error. */
static __maybe_unused void stp_csprintf(struct stp_context *c, char *dst,
					const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (stp_vformat(c, dst, MAXSTRINGLEN, fmt, ap) < 0)
		dst[0] = '\0';
	va_end(ap);
}

#endif /* STP_STRING_H */
