// SPDX-License-Identifier: GPL-2.0
/*
 * getppid_loop N ROUNDS - time N getppid() system calls, ROUNDS times, and
 * print the fastest round's nanoseconds per call (the least disturbed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000, i;
	int rounds = argc > 2 ? atoi(argv[2]) : 5, r;
	double best = -1;

	for (r = 0; r < rounds; r++) {
		double t0 = now_ns(), t;

		for (i = 0; i < n; i++)
			syscall(SYS_getppid);
		t = (now_ns() - t0) / n;
		if (best < 0 || t < best)
			best = t;
	}
	printf("ns_per_call %.1f\n", best);
	return 0;
}
