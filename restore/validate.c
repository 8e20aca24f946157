/* Everything restore checks before it creates a process: a refusal here
 * costs nothing, a refusal half-way would leave a half-built process. */
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>

#include "restore/rst.h"
#include "restore/validate.h"

bool rst_dev_harmless(dev_t rdev)
{
	unsigned mi = minor(rdev);

	return major(rdev) == 1 && (mi == 3 || mi == 5 || mi == 7 || mi == 8 || mi == 9);
}

bool rst_fd_type_fits(const Ferry__Fd *f, mode_t mode)
{
	switch (f->kind) {
	case FERRY__FD_KIND__FD_REG:
		return S_ISREG(mode);
	case FERRY__FD_KIND__FD_DIR:
		return S_ISDIR(mode);
	case FERRY__FD_KIND__FD_CHR:
		return S_ISCHR(mode);
	default:
		return false;
	}
}

/* What a path names now, for a check of its kind before anything opens it
 * (stat, as open would follow it). */
static int kind_now(const char *what, const char *path, struct stat *st, struct ferr *err)
{
	if (stat(path, st) < 0)
		return ferr_sys(err, errno, "%s `%s`", what, path);
	return 0;
}

/* Mappings and the executable are regular files (or /dev/zero and its
 * kin): a FIFO or another device there would block or act when opened. */
static int mappable(const char *what, const char *path, struct ferr *err)
{
	struct stat st;
	int ret = kind_now(what, path, &st, err);

	if (ret)
		return ret;
	if (!S_ISREG(st.st_mode) && !(S_ISCHR(st.st_mode) && rst_dev_harmless(st.st_rdev)))
		return ferr_new(err, EACCES, "%s `%s` is neither a regular file nor a harmless device: "
				"ferry does not open it", what, path);
	return 0;
}

/* Is path still the file the dump saw? */
static int same_file(const char *what, const char *path, const Ferry__FileId *id, struct ferr *err)
{
	struct stat st;
	int64_t mtime;

	if (!path || !id)
		return 0;
	if (strstr(path, " (deleted)"))
		return ferr_new(err, ENOENT, "%s `%s` was already deleted when dumped: ferry cannot "
				"restore it", what, path);
	if (stat(path, &st) < 0)
		return ferr_sys(err, errno, "%s `%s`", what, path);
	mtime = (int64_t)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
	if (st.st_dev != id->dev || st.st_ino != id->ino)
		return ferr_new(err, ESTALE, "%s `%s` is another file than at dump time (inode %" PRIu64
				" then, %" PRIu64 " now)", what, path, id->ino, (uint64_t)st.st_ino);
	if ((id->has_size && (uint64_t)st.st_size != id->size) ||
	    (id->has_mtime_ns && mtime != id->mtime_ns))
		return ferr_new(err, ESTALE, "%s `%s` changed since the dump (size %" PRIu64 " then, %"
				PRIu64 " now%s)", what, path, id->size, (uint64_t)st.st_size,
				mtime != id->mtime_ns ? ", modified" : "");
	return 0;
}

int rst_validate(struct img_image *img, struct rst_check_report *rep, bool chain, struct ferr *err)
{
	Ferry__Process *proc = NULL;
	Ferry__Fd **fds = NULL;
	size_t nfds = 0;
	struct utsname u;
	char what[96];
	int ret;

	memset(rep, 0, sizeof(*rep));
	if (img->inv->kind != FERRY__DUMP_KIND__DUMP_FULL)
		return ferr_new(err, EINVAL, "%s is a pre-dump: restore the final dump of its chain",
				img->path);
	if (uname(&u) == 0 && strcmp(u.machine, img->inv->arch))
		return ferr_new(err, ENOEXEC, "%s was dumped on %s, this machine is %s", img->path,
				img->inv->arch, u.machine);
	if (img->page_size != (uint32_t)ferry_page_size())
		return ferr_new(err, ENOEXEC, "%s has %u-byte pages, this kernel %d", img->path,
				img->page_size, ferry_page_size());
	ret = chain ? img_verify(img, &rep->verify, err) : img_verify_one(img, &rep->verify, err);
	if (!ret)
		ret = img_read_fds(img, &fds, &nfds, err);
	for (size_t i = 0; !ret && i < img->nr_vmas; i++) {
		const Ferry__Vma *v = img->vmas[i];

		/* A memfd or deleted file the process also has open: mapped
		 * from the copy restore makes of it (restore/fdkind.c). */
		if (v->kind != FERRY__VMA_KIND__VMA_FILE || rst_fdkind_backing(fds, nfds, v))
			continue;
		snprintf(what, sizeof(what), "file mapped at 0x%" PRIx64 "-0x%" PRIx64, v->start, v->end);
		ret = same_file(what, v->path, v->file, err);
		if (!ret && v->path && !strstr(v->path, " (deleted)"))
			ret = mappable(what, v->path, err);
		if (ret)
			break;
		rep->files_checked++;
	}
	if (!ret)
		ret = img_read_process(img, &proc, err);
	if (!ret && proc->mm) {
		ret = same_file("executable", proc->mm->exe_path, proc->mm->exe_id, err);
		if (!ret && proc->mm->exe_path)
			ret = mappable("executable", proc->mm->exe_path, err);
		rep->files_checked += !ret;
	}
	for (size_t i = 0; !ret && i < nfds; i++) {
		struct stat st;

		if (!fds[i]->path || (fds[i]->kind != FERRY__FD_KIND__FD_REG &&
				      fds[i]->kind != FERRY__FD_KIND__FD_DIR &&
				      fds[i]->kind != FERRY__FD_KIND__FD_CHR))
			continue;
		snprintf(what, sizeof(what), "file of fd %u", fds[i]->fd);
		/* A FIFO where the image says file would hang the open. */
		ret = kind_now(what, fds[i]->path, &st, err);
		if (!ret && !rst_fd_type_fits(fds[i], st.st_mode))
			ret = ferr_new(err, EACCES, "%s `%s` is not the kind of file the image says "
				       "(a FIFO, socket or device where a file was): ferry does not "
				       "open it", what, fds[i]->path);
		if (ret || fds[i]->kind == FERRY__FD_KIND__FD_CHR)
			continue;
		ret = same_file(what, fds[i]->path, fds[i]->file, err);
		rep->files_checked += !ret;
	}
	img_free_entries(fds, nfds);
	if (proc)
		ferry__process__free_unpacked(proc, NULL);
	return ret;
}
