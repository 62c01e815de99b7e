/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stp_format.h - SystemTap's printf: the conversions and their quirks.
 *
 * printf/sprintf output must be byte-for-byte what SystemTap prints, in the
 * kernel and in the user-space build alike, so neither the kernel's
 * vsnprintf nor glibc's is used. The rules (SystemTap's runtime formatter):
 *
 *   %[flag][width|*][.prec|.*][h|l|ll|L]conv
 *   conv: d i u o x X p c s b m M %
 *   - integers: length qualifier as in C (generated code always passes
 *     64-bit values with "ll"); "0" pads with zeros even when a precision is
 *     given; "#" prefixes 0x/0X (hex) or 0 (octal) even for zero; "+" and
 *     " " only apply to %d/%i; %p is %#llx.
 *   - %c with "#" prints C escapes (\n, \t, \\, \', \ooo) for unprintables.
 *   - %s: precision limits the length; the "0" flag appends a NUL byte.
 *   - %b: the value's 1, 2, 4 or 8 (default) low bytes in host order; width
 *     and precision default to each other, padding is NUL bytes.
 *   - %m: precision (default 1) bytes of memory at the address; %M the same
 *     as hex digits. Unreadable memory is a runtime error.
 *   - a "*" width or precision takes an int argument; a negative width
 *     left-aligns.
 *
 * stp_vformat() writes at most size-1 bytes and a NUL (when size > 0) and
 * returns the length the whole output needs, like vsnprintf.
 */
#ifndef STP_FORMAT_H
#define STP_FORMAT_H

#ifndef STP_USER
#include <linux/ctype.h>
#include <linux/uaccess.h>
#endif

enum {
	STP_FMT_LEFT = 1,
	STP_FMT_PLUS = 2,
	STP_FMT_SPACE = 4,
	STP_FMT_SPECIAL = 8,
	STP_FMT_ZEROPAD = 16,
	STP_FMT_SIGN = 32,
	STP_FMT_LARGE = 64,
};

struct stp_fmt_out {
	char *buf;
	size_t size;		/* bytes available, including the NUL */
	size_t pos;		/* bytes produced so far (may exceed size) */
};

static inline void stp_fmt_put(struct stp_fmt_out *o, char ch)
{
	if (o->pos + 1 < o->size)
		o->buf[o->pos] = ch;
	o->pos++;
}

static inline void stp_fmt_fill(struct stp_fmt_out *o, char ch, int n)
{
	while (n-- > 0)
		stp_fmt_put(o, ch);
}

static void stp_fmt_number(struct stp_fmt_out *o, u64 num, int base, int width,
			   int precision, int flags)
{
	static const char lower[] = "0123456789abcdef";
	static const char upper[] = "0123456789ABCDEF";
	const char *digits = (flags & STP_FMT_LARGE) ? upper : lower;
	char tmp[66];
	char sign = 0;
	int n = 0;
	char pad;

	if (flags & STP_FMT_LEFT)
		flags &= ~STP_FMT_ZEROPAD;
	pad = (flags & STP_FMT_ZEROPAD) ? '0' : ' ';
	if (flags & STP_FMT_SIGN) {
		if ((s64)num < 0) {
			sign = '-';
			num = 0 - num;
			width--;
		} else if (flags & STP_FMT_PLUS) {
			sign = '+';
			width--;
		} else if (flags & STP_FMT_SPACE) {
			sign = ' ';
			width--;
		}
	}
	if (flags & STP_FMT_SPECIAL) {
		if (base == 16)
			width -= 2;
		else if (base == 8)
			width--;
	}
	if (num == 0)
		tmp[n++] = '0';
	while (num) {
		tmp[n++] = digits[num % base];
		num /= base;
	}
	if (n > precision)
		precision = n;
	width -= precision;
	if (!(flags & (STP_FMT_ZEROPAD | STP_FMT_LEFT)))
		stp_fmt_fill(o, ' ', width), width = 0;
	if (sign)
		stp_fmt_put(o, sign);
	if (flags & STP_FMT_SPECIAL) {
		if (base == 8) {
			stp_fmt_put(o, '0');
		} else if (base == 16) {
			stp_fmt_put(o, '0');
			stp_fmt_put(o, (flags & STP_FMT_LARGE) ? 'X' : 'x');
		}
	}
	if (!(flags & STP_FMT_LEFT))
		stp_fmt_fill(o, pad, width), width = 0;
	stp_fmt_fill(o, '0', precision - n);
	while (n-- > 0)
		stp_fmt_put(o, tmp[n]);
	stp_fmt_fill(o, ' ', width);
}

static int stp_fmt_char_size(unsigned char ch, int flags)
{
	if (!(flags & STP_FMT_SPECIAL))
		return 1;
	if (ch >= 0x20 && ch < 0x7f && ch != '\'' && ch != '\\')
		return 1;
	switch (ch) {
	case '\a': case '\b': case '\f': case '\n': case '\r': case '\t':
	case '\v': case '\'': case '\\':
		return 2;
	default:
		return 4;
	}
}

static void stp_fmt_char(struct stp_fmt_out *o, unsigned char ch, int width,
			 int flags)
{
	int size = stp_fmt_char_size(ch, flags);
	char esc = 0;

	if (!(flags & STP_FMT_LEFT))
		stp_fmt_fill(o, ' ', width - size);
	if (size == 1) {
		stp_fmt_put(o, (char)ch);
	} else {
		switch (ch) {
		case '\a': esc = 'a'; break;
		case '\b': esc = 'b'; break;
		case '\f': esc = 'f'; break;
		case '\n': esc = 'n'; break;
		case '\r': esc = 'r'; break;
		case '\t': esc = 't'; break;
		case '\v': esc = 'v'; break;
		case '\'': esc = '\''; break;
		case '\\': esc = '\\'; break;
		}
		stp_fmt_put(o, '\\');
		if (esc) {
			stp_fmt_put(o, esc);
		} else {
			stp_fmt_put(o, '0' + ((ch >> 6) & 3));
			stp_fmt_put(o, '0' + ((ch >> 3) & 7));
			stp_fmt_put(o, '0' + (ch & 7));
		}
	}
	if (flags & STP_FMT_LEFT)
		stp_fmt_fill(o, ' ', width - size);
}

static void stp_fmt_string(struct stp_fmt_out *o, const char *s, int width,
			   int precision, int flags)
{
	size_t len, i;

	if ((unsigned long)s < 4096)
		s = "<NULL>";
	len = strnlen(s, precision < 0 ? (size_t)-1 : (size_t)precision);
	if (!(flags & STP_FMT_LEFT))
		stp_fmt_fill(o, ' ', width - (int)len);
	for (i = 0; i < len; i++)
		stp_fmt_put(o, s[i]);
	if (flags & STP_FMT_LEFT)
		stp_fmt_fill(o, ' ', width - (int)len);
	if (flags & STP_FMT_ZEROPAD)
		stp_fmt_put(o, '\0');
}

static int stp_fmt_binary_prec(int p)
{
	return (p == 1 || p == 2 || p == 4 || p == 8) ? p : -1;
}

static void stp_fmt_binary(struct stp_fmt_out *o, s64 num, int width,
			   int precision, int flags)
{
	union { s64 q; u8 b[8]; } v;
	int i;

	precision = stp_fmt_binary_prec(precision);
	if (width < 0) {
		if (precision < 0)
			precision = 8;
		width = precision;
	} else if (precision < 0) {
		precision = stp_fmt_binary_prec(width);
		if (precision < 0)
			precision = 8;
	}
	/* Store the low @precision bytes as the CPU does (little-endian). */
	switch (precision) {
	case 1: v.q = 0; *(s8 *)v.b = (s8)num; break;
	case 2: v.q = 0; *(s16 *)v.b = (s16)num; break;
	case 4: v.q = 0; *(s32 *)v.b = (s32)num; break;
	default: v.q = num; break;
	}
	if (!(flags & STP_FMT_LEFT))
		stp_fmt_fill(o, '\0', width - precision);
	for (i = 0; i < precision; i++)
		stp_fmt_put(o, (char)v.b[i]);
	if (flags & STP_FMT_LEFT)
		stp_fmt_fill(o, '\0', width - precision);
}

/* false (and a script error) if the memory cannot be read. */
static bool stp_fmt_memory(struct stp_context *c, struct stp_fmt_out *o,
			   u64 addr, int width, int precision, char conv,
			   int flags)
{
	static const char hex[] = "0123456789abcdef";
	int len = precision > 0 ? precision : 1;
	int shown = conv == 'M' ? 2 * len : len;
	unsigned char chunk[64];
	int done = 0;

	if (!(flags & STP_FMT_LEFT))
		stp_fmt_fill(o, ' ', width - shown);
	while (done < len) {
		int n = min_t(int, len - done, (int)sizeof(chunk));
		int i;

		if (addr + done < 4096 ||
		    copy_from_kernel_nofault(chunk, (const void *)(uintptr_t)(addr + done), n)) {
			if (c)
				STP_ERRORF(c, "kernel read fault at 0x%016llx",
					   (unsigned long long)(addr + done));
			return false;
		}
		for (i = 0; i < n; i++) {
			if (conv == 'M') {
				stp_fmt_put(o, hex[chunk[i] >> 4]);
				stp_fmt_put(o, hex[chunk[i] & 15]);
			} else {
				stp_fmt_put(o, (char)chunk[i]);
			}
		}
		done += n;
	}
	if (flags & STP_FMT_LEFT)
		stp_fmt_fill(o, ' ', width - shown);
	return true;
}

/*
 * Format into @buf (at most @size bytes with the NUL). Returns the length
 * of the complete output, or -1 after a script error (%m fault) was set on
 * @c (which may be NULL outside a probe).
 */
static __maybe_unused int stp_vformat(struct stp_context *c, char *buf,
				      size_t size, const char *fmt, va_list ap)
{
	struct stp_fmt_out o = { .buf = buf, .size = size, .pos = 0 };

	for (; *fmt; fmt++) {
		int flags = 0, width = -1, precision = -1, qual = 0, base = 10;
		u64 num;

		if (*fmt != '%') {
			stp_fmt_put(&o, *fmt);
			continue;
		}
		for (;;) {
			fmt++;
			if (*fmt == '-')
				flags |= STP_FMT_LEFT;
			else if (*fmt == '+')
				flags |= STP_FMT_PLUS;
			else if (*fmt == ' ')
				flags |= STP_FMT_SPACE;
			else if (*fmt == '#')
				flags |= STP_FMT_SPECIAL;
			else if (*fmt == '0')
				flags |= STP_FMT_ZEROPAD;
			else
				break;
		}
		if (*fmt >= '0' && *fmt <= '9') {
			width = 0;
			while (*fmt >= '0' && *fmt <= '9')
				width = min(width * 10 + (*fmt++ - '0'), 1 << 20);
		} else if (*fmt == '*') {
			fmt++;
			width = va_arg(ap, int);
			if (width < 0) {
				width = width == INT_MIN ? INT_MAX : -width;
				flags |= STP_FMT_LEFT;
			}
			width = min(width, 1 << 20);
		}
		if (*fmt == '.') {
			fmt++;
			precision = 0;
			if (*fmt == '*') {
				fmt++;
				precision = va_arg(ap, int);
				if (precision < 0)
					precision = 0;
			} else {
				while (*fmt >= '0' && *fmt <= '9')
					precision = min(precision * 10 + (*fmt++ - '0'), 1 << 20);
			}
			precision = min(precision, 1 << 20);
		}
		if (*fmt == 'h' || *fmt == 'l' || *fmt == 'L') {
			qual = *fmt++;
			if (qual == 'l' && *fmt == 'l') {
				qual = 'L';
				fmt++;
			}
		}
		switch (*fmt) {
		case 'b':
			stp_fmt_binary(&o, va_arg(ap, s64), width, precision, flags);
			continue;
		case 's':
			stp_fmt_string(&o, va_arg(ap, const char *), width, precision,
				       flags);
			continue;
		case 'm':
		case 'M':
			if (!stp_fmt_memory(c, &o, (u64)va_arg(ap, s64), width,
					    precision, *fmt, flags))
				return -1;
			continue;
		case 'c':
			num = qual == 'L' ? (u64)va_arg(ap, s64) : (u64)va_arg(ap, int);
			stp_fmt_char(&o, (unsigned char)num, width, flags);
			continue;
		case '%':
			stp_fmt_put(&o, '%');
			continue;
		case 'X':
			flags |= STP_FMT_LARGE;
			fallthrough;
		case 'x':
			base = 16;
			break;
		case 'o':
			base = 8;
			break;
		case 'd':
		case 'i':
			flags |= STP_FMT_SIGN;
			break;
		case 'u':
			break;
		case 'p':
			qual = 'L';
			flags |= STP_FMT_SPECIAL;
			base = 16;
			break;
		case '\0':
			stp_fmt_put(&o, '%');
			fmt--;
			continue;
		default:
			stp_fmt_put(&o, '%');
			stp_fmt_put(&o, *fmt);
			continue;
		}
		if (qual == 'L') {
			num = (u64)va_arg(ap, s64);
		} else if (qual == 'l') {
			num = va_arg(ap, unsigned long);
			if (flags & STP_FMT_SIGN)
				num = (u64)(s64)(long)num;
		} else if (qual == 'h') {
			num = (unsigned short)va_arg(ap, int);
			if (flags & STP_FMT_SIGN)
				num = (u64)(s64)(short)num;
		} else {
			num = va_arg(ap, unsigned int);
			if (flags & STP_FMT_SIGN)
				num = (u64)(s64)(int)num;
		}
		stp_fmt_number(&o, num, base, width, precision, flags);
	}
	if (size)
		buf[min(o.pos, size - 1)] = '\0';
	return (int)min_t(size_t, o.pos, INT_MAX);
}

static __maybe_unused int stp_format(struct stp_context *c, char *buf,
				     size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = stp_vformat(c, buf, size, fmt, ap);
	va_end(ap);
	return n;
}

#endif /* STP_FORMAT_H */
