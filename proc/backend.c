/* Backend tables: the one place that says what each backend needs. */
#include <stdio.h>
#include <string.h>

#include "proc/backend.h"

static const struct backend_desc layouts[] = {
	{ "procmap", "PROCMAP_QUERY ioctl, covering-or-next walk", 1, { KD_PROCMAP_QUERY } },
	{ "maps", "parse /proc/PID/maps text", 0, { 0 } },
};

static const struct backend_desc pages[] = {
	{ "pagemap-scan", "PAGEMAP_SCAN ioctl: populated ranges", 1, { KD_PAGEMAP_SCAN } },
	{ "pagemap", "read /proc/PID/pagemap entries", 1, { KD_PROC_PAGEMAP } },
};

static const struct backend_desc trackers[] = {
	{ "uffd-wp", "userfaultfd async write-protect + PAGEMAP_SCAN", 4,
	  { KD_UFFD_WP_ASYNC, KD_PAGEMAP_SCAN, KD_PTRACE, KD_PIDFD_GETFD } },
	{ "soft-dirty", "clear_refs 4 + pagemap bit 55", 1, { KD_SOFT_DIRTY } },
	{ "hash", "compare per-page hashes between rounds", 1, { KD_PROCESS_VM_READV } },
};

static const struct backend_desc readers[] = {
	{ "process-vm-readv", "process_vm_readv into a bounded buffer", 1, { KD_PROCESS_VM_READV } },
	{ "vmsplice", "injected pipe2+vmsplice, splice out (target frozen)", 2,
	  { KD_PTRACE, KD_PIDFD_GETFD } },
	{ "process-vmsplice", "process_vmsplice(2) into a pipe", 1, { KD_PROCESS_VMSPLICE } },
};

static const struct backend_desc sinks[] = {
	{ "file", "image files with write(2)", 0, { 0 } },
	{ "io-uring", "image files through io_uring", 3,
	  { KD_IO_URING, KD_IO_URING_WRITE, KD_IO_URING_SPLICE } },
	{ "page-server", "TCP to a ferry page server", 0, { 0 } },
};

const struct backend_family backend_families[] = {
	{ "layout", "--layout", layouts, sizeof(layouts) / sizeof(layouts[0]) },
	{ "pages", "--pages", pages, sizeof(pages) / sizeof(pages[0]) },
	{ "tracker", "--track", trackers, sizeof(trackers) / sizeof(trackers[0]) },
	{ "reader", "--reader", readers, sizeof(readers) / sizeof(readers[0]) },
	{ "sink", "--sink", sinks, sizeof(sinks) / sizeof(sinks[0]) },
};
const size_t backend_nr_families = sizeof(backend_families) / sizeof(backend_families[0]);

bool backend_usable(const struct backend_desc *b, const struct kerndat *kd)
{
	for (int i = 0; i < b->nr_needs; i++)
		if (!kd_has(kd, b->needs[i]))
			return false;
	return true;
}

const struct backend_desc *backend_auto(const struct backend_family *f, const struct kerndat *kd)
{
	for (size_t i = 0; i < f->n; i++)
		if (backend_usable(&f->list[i], kd))
			return &f->list[i];
	return NULL;
}

const struct backend_family *backend_family(const char *name)
{
	for (size_t i = 0; i < backend_nr_families; i++)
		if (strcmp(backend_families[i].name, name) == 0)
			return &backend_families[i];
	return NULL;
}

const struct backend_desc *backend_choose(const struct backend_family *f, const char *choice,
					  const struct kerndat *kd, char *err, size_t errlen)
{
	const struct backend_desc *b;

	if (!choice || strcmp(choice, "auto") == 0) {
		b = backend_auto(f, kd);
		if (!b)
			snprintf(err, errlen, "no %s backend works on this kernel (see `ferry check`)",
				 f->name);
		return b;
	}
	for (size_t i = 0; i < f->n; i++) {
		b = &f->list[i];
		if (strcmp(b->name, choice))
			continue;
		for (int k = 0; k < b->nr_needs; k++) {
			if (!kd_has(kd, b->needs[k])) {
				snprintf(err, errlen, "%s %s needs %s, which this kernel lacks (%s)",
					 f->option, b->name, kd_features[b->needs[k]].key,
					 kd->note[b->needs[k]]);
				return NULL;
			}
		}
		return b;
	}
	snprintf(err, errlen, "%s: unknown %s `%s`", f->option, f->name, choice);
	return NULL;
}
