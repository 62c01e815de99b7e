/* SPDX-License-Identifier: GPL-2.0 */
/*
 * process.thread.begin/.end target of tests/test_uprobes_boot.py: the
 * main thread starts N threads, each of which ends before main does.
 *
 * usage: uprobe_threads N
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *work(void *arg)
{
	return arg;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2;
	pthread_t t[16];
	int i;

	if (n > 16)
		n = 16;
	for (i = 0; i < n; i++)
		pthread_create(&t[i], NULL, work, NULL);
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	printf("joined %d\n", n);
	return 0;
}
