/* SPDX-License-Identifier: GPL-2.0 */
/*
 * USDT target of tests/test_uprobes*.py: markers from <sys/sdt.h>
 * (Debian's systemtap-sdt-dev), "done" guarded by its semaphore.
 *
 * usage: uprobe_sdt N  -> N "tick" markers (i, i * i, name), then one
 *                         "done" marker with the total.
 */
#include <stdio.h>
#include <stdlib.h>
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

/*
 * With _SDT_HAS_SEMAPHORES every marker names one; the kernel counts the
 * attached probes in it (uprobe ref_ctr_offset), so the program can skip
 * work nobody watches: "done" only fires while a probe is attached.
 */
unsigned short demo_tick_semaphore __attribute__((unused, section(".probes")));
unsigned short demo_done_semaphore __attribute__((unused, section(".probes")));

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 3;
	long total = 0;
	/* On the stack, so the page is resident when a probe reads it. */
	char name[] = "tick";
	int i;

	for (i = 1; i <= n; i++) {
		total += (long)i * i;
		DTRACE_PROBE3(demo, tick, i, (long)i * i, (char *)name);
	}
	if (demo_done_semaphore)
		STAP_PROBE2(demo, done, total, demo_done_semaphore);
	printf("total=%ld semaphore=%d\n", total, demo_done_semaphore);
	return 0;
}
