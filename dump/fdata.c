/* Files that exist only in the process (a memfd, a file deleted while open)
 * are saved by value: read through /proc/PID/fd/N, which opens the same
 * file whatever its name, and copied into fdata.img. And which fds share an
 * open file description (dump_note_descs). */
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dump/dump.h"
#include "dump/fdata.h"
#include "proc/fds.h"

int dump_fd_data(struct target *t, struct img_writer *w, Ferry__Fd *f, struct ferr *err)
{
	cleanup_close int src = -1;
	char link[32];
	int ret;

	if (!f->data)
		return 0;
	snprintf(link, sizeof(link), "fd/%u", f->fd);
	src = openat(t->procfd, link, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (src < 0)
		return ferr_sys(err, errno, "open fd %u of process %d (%s) to save its contents",
				f->fd, t->pid, f->path ? f->path : "?");
	ret = img_write_fdata(w, src, f->data->size, &f->data->offset, err);
	if (ret)
		return ferr_wrap(err, "contents of fd %u of process %d (%s)", f->fd, t->pid,
				 f->path ? f->path : "?");
	return 0;
}

/* Candidates are the fds of the same file (device and inode) only, so the
 * kcmp calls stay few whatever the number of fds. */
int dump_note_descs(struct dump_descs *d, const struct target *t, struct fd_list *l,
		    struct ferr *err)
{
	for (size_t i = 0; i < l->n; i++) {
		Ferry__Fd *f = l->fds[i];
		struct dump_desc_seen *n;
		uint64_t desc = 0;

		if (f->kind != FERRY__FD_KIND__FD_REG || !f->file)
			continue;
		for (size_t k = 0; k < d->n && !desc; k++) {
			const struct dump_desc_seen *s = &d->v[k];

			if (s->dev == f->file->dev && s->ino == f->file->ino &&
			    syscall(SYS_kcmp, s->pid, t->pid, KCMP_FILE, s->fd, f->fd) == 0)
				desc = s->desc;
		}
		n = realloc(d->v, (d->n + 1) * sizeof(*n));
		if (!n)
			return ferr_sys(err, ENOMEM, "open file descriptions");
		d->v = n;
		d->v[d->n++] = (struct dump_desc_seen){ t->pid, f->fd, f->file->dev, f->file->ino,
						       desc ? desc : ++d->last };
		f->has_desc = true;
		f->desc = d->v[d->n - 1].desc;
	}
	return 0;
}

void dump_descs_free(struct dump_descs *d)
{
	free(d->v);
	memset(d, 0, sizeof(*d));
}
