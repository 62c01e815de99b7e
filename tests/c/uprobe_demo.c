/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Target of tests/test_uprobes*.py: functions with integer, pointer and
 * struct parameters, built with `gcc -g` (no optimisation, so the
 * parameters live in frame slots after the prologue), calls to malloc
 * through libc, and a forked child for process.begin/.end.
 *
 * usage: uprobe_demo N   -> calls add(i, 10 * i) for i in 1..N, then
 *                           point_sum() on a struct and fact(4) (which
 *                           recurses), then forks a child that mallocs
 *                           and exits with status 3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct point {
	long x;
	int y;
	const char *label;
};

int add(int a, int b)
{
	return a + b;
}

long point_sum(struct point *p, int scale)
{
	return (p->x + p->y) * scale;
}

long fact(int n)
{
	return n <= 1 ? 1 : n * fact(n - 1);
}

const char *greet(const char *who)
{
	return strlen(who) > 3 ? "long" : "short";
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;
	/* On the stack, so the page is resident when a probe reads it. */
	char label[] = "origin";
	struct point pt = { 40, 2, label };
	long total = 0;
	pid_t child;
	int i, status = 0;

	for (i = 1; i <= n; i++)
		total += add(i, 10 * i);
	total += point_sum(&pt, 3);
	if (fact(4) != 24)
		return 1;
	printf("%s total=%ld\n", greet("stapbuild"), total);
	fflush(stdout);
	child = fork();
	if (child == 0) {
		char *buf = malloc(4242);

		if (buf)
			memset(buf, 1, 4242);
		free(buf);
		_exit(3);
	}
	if (child > 0)
		waitpid(child, &status, 0);
	printf("child status=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
