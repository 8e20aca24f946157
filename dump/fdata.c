/* Files that exist only in the process (a memfd, a file deleted while open)
 * are saved by value: read through /proc/PID/fd/N, which opens the same
 * file whatever its name, and copied into fdata.img. */
#include <fcntl.h>
#include <stdio.h>

#include "dump/fdata.h"

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
