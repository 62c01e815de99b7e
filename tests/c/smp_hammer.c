// SPDX-License-Identifier: GPL-2.0
/*
 * smp_hammer - PROCS processes x THREADS threads each make CALLS getppid()
 * syscalls, at the same time on every CPU. Used by tests/test_boot_smp.py
 * to check that one global array and one statistic updated from all CPUs
 * end up with exact totals.
 *
 *   smp_hammer PROCS THREADS CALLS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long calls;

static void *worker(void *arg)
{
	long i;

	(void)arg;
	for (i = 0; i < calls; i++)
		syscall(SYS_getppid);
	return NULL;
}

int main(int argc, char **argv)
{
	int procs, threads, p, t;

	if (argc != 4)
		return 2;
	procs = atoi(argv[1]);
	threads = atoi(argv[2]);
	calls = atol(argv[3]);
	for (p = 0; p < procs; p++) {
		if (fork() == 0) {
			pthread_t tid[64];

			for (t = 0; t < threads && t < 64; t++)
				pthread_create(&tid[t], NULL, worker, NULL);
			for (t = 0; t < threads && t < 64; t++)
				pthread_join(tid[t], NULL);
			_exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	return 0;
}
