/* Process and mapping state beyond registers and memory: madvise flags of
 * each VMA, THP disable, child subreaper, no_new_privs, pdeathsig, seccomp,
 * interval and POSIX timers. Read from the frozen target by proc/pstate.c,
 * set again by restore/pstate.c. */
#ifndef FERRY_PROC_PSTATE_H
#define FERRY_PROC_PSTATE_H

#include <stdint.h>
#include <stdio.h>

#include "proc/inject.h"
#include "proc/target.h"
#include "proto/images.pb-c.h"

/* Vma.madv: ferry's own bits for the VmFlags madvise sets (smaps names). */
#define VMA_MADV_SEQUENTIAL  (1u << 0)  /* sr: MADV_SEQUENTIAL */
#define VMA_MADV_RANDOM      (1u << 1)  /* rr: MADV_RANDOM */
#define VMA_MADV_DONTFORK    (1u << 2)  /* dc: MADV_DONTFORK */
#define VMA_MADV_DONTDUMP    (1u << 3)  /* dd: MADV_DONTDUMP */
#define VMA_MADV_HUGEPAGE    (1u << 4)  /* hg: MADV_HUGEPAGE */
#define VMA_MADV_NOHUGEPAGE  (1u << 5)  /* nh: MADV_NOHUGEPAGE */
#define VMA_MADV_WIPEONFORK  (1u << 6)  /* wf: MADV_WIPEONFORK */
#define VMA_MADV_MERGEABLE   (1u << 7)  /* mg: MADV_MERGEABLE */
#define VMA_MADV_ALL         0xffu

/* The madvise(2) advice and the smaps name of bit i (i < 8). */
int pstate_madv_advice(unsigned bit);
const char *pstate_madv_name(unsigned bit);

struct vma_madv {
	uint64_t start, end;
	uint32_t madv;
};

struct madv_list {
	struct vma_madv *v;
	size_t n, cap;
};

void madv_list_free(struct madv_list *l);
/* The flags of the VMA that starts at start, 0 if none is listed. */
uint32_t madv_list_find(const struct madv_list *l, uint64_t start);

/* Parse /proc/PID/smaps as f gives it into l (ascending). */
int __must_check pstate_parse_smaps(FILE *f, struct madv_list *l, struct ferr *err);

/* From outside a frozen target: smaps VmFlags into *madv, /proc/PID/timers,
 * and per thread no_new_privs and seccomp (mode, filters by ptrace). */
int __must_check pstate_collect_outside(struct target *t, Ferry__Process *p,
					Ferry__Thread **th, struct madv_list *madv,
					struct ferr *err);
/* By injection, with in (main thread, scratch page mapped): THP disable,
 * subreaper, interval timers, each POSIX timer's times, and every thread's
 * pdeathsig. */
int __must_check pstate_collect_inject(struct target *t, struct inj *in, uint64_t syscall_ip,
				       Ferry__Process *p, Ferry__Thread **th, struct ferr *err);

#endif
