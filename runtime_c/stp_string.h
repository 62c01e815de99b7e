/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_string.h - bounded string helpers. Every script string lives in a
 * MAXSTRINGLEN buffer; these never write past it, always NUL-terminate, and
 * tolerate overlapping arguments (s = s . s is legal in the language).
 */
#ifndef STP_STRING_H
#define STP_STRING_H

static __maybe_unused void stp_strlcpy(char *dst, const char *src)
{
	size_t n;

	if (!src)
		src = "";
	n = strnlen(src, MAXSTRINGLEN - 1);
	memmove(dst, src, n);
	dst[n] = '\0';
}

static __maybe_unused void stp_strlcat(char *dst, const char *src)
{
	size_t len = strnlen(dst, MAXSTRINGLEN - 1);
	size_t n;

	if (!src)
		return;
	n = min_t(size_t, strnlen(src, MAXSTRINGLEN - 1),
		  MAXSTRINGLEN - 1 - len);
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
