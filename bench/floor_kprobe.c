// SPDX-License-Identifier: GPL-2.0
/*
 * floor_kprobe - the cheapest useful probe: a kprobe on one function whose
 * pre-handler only counts hits (a per-CPU counter). bench_overhead.py
 * measures our modules against it. The symbol is a module parameter.
 */
#include <linux/module.h>
#include <linux/kprobes.h>
#include <linux/percpu.h>

static char *symbol = "__x64_sys_getppid";
module_param(symbol, charp, 0444);

static DEFINE_PER_CPU(unsigned long, floor_hits);

static int floor_pre(struct kprobe *kp, struct pt_regs *regs)
{
	this_cpu_inc(floor_hits);
	return 0;
}

static struct kprobe floor_kp = {
	.pre_handler = floor_pre,
};

static int __init floor_init(void)
{
	floor_kp.symbol_name = symbol;
	return register_kprobe(&floor_kp);
}

static void __exit floor_exit(void)
{
	unsigned long total = 0;
	int cpu;

	unregister_kprobe(&floor_kp);
	for_each_possible_cpu(cpu)
		total += per_cpu(floor_hits, cpu);
	pr_info("floor_kprobe: %lu hits on %s\n", total, symbol);
}

module_init(floor_init);
module_exit(floor_exit);
MODULE_LICENSE("GPL");
