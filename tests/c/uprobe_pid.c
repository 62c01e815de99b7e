/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Target of the process(PID) tests, built with `gcc -g`.
 *
 * usage: uprobe_pid pause  -> waits for a signal: a running process whose
 *                             PID a script names when it is translated
 *        uprobe_pid N      -> calls add() N times and exits
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int add(int a, int b)
{
	return a + b;
}

int main(int argc, char **argv)
{
	int i, n, total = 0;

	if (argc > 1 && !strcmp(argv[1], "pause")) {
		pause();
		return 0;
	}
	n = argc > 1 ? atoi(argv[1]) : 1;
	for (i = 0; i < n; i++)
		total = add(total, 1);
	return total == n ? 0 : 1;
}
