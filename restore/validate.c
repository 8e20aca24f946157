/* Everything restore checks before it creates a process: a refusal here
 * costs nothing, a refusal half-way would leave a half-built process. */
#include <fcntl.h>
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
static int kind_now(const struct rst_files *f, const char *what, const char *path,
		    struct stat *st, struct ferr *err)
{
	int ret = rst_view_stat(f->view, path, st);

	if (ret < 0)
		return ferr_sys(err, -ret, "%s `%s`", what, path);
	return ret ? 0 : 1; /* 1: on a mount the restore builds, not there yet */
}

/* Mappings and the executable are regular files (or /dev/zero and its
 * kin): a FIFO or another device there would block or act when opened. */
static int mappable(const struct rst_files *f, const char *what, const char *path,
		    struct ferr *err)
{
	struct stat st;
	int ret = kind_now(f, what, path, &st, err);

	if (ret)
		return ret < 0 ? ret : 0;
	if (!S_ISREG(st.st_mode) && !(S_ISCHR(st.st_mode) && rst_dev_harmless(st.st_rdev)))
		return ferr_new(err, EACCES, "%s `%s` is neither a regular file nor a harmless device: "
				"ferry does not open it", what, path);
	return 0;
}

/* A memfd or deleted file the process also has open (among fds) is mapped
 * from the copy restore makes of it (restore/fdkind.c): not checked here. */
static int check_mappings(struct img_image *img, Ferry__Fd *const *fds, size_t nfds,
			  struct rst_files *files, size_t *checked, struct ferr *err)
{
	char what[96];
	int ret;

	for (size_t i = 0; i < img->nr_vmas; i++) {
		const Ferry__Vma *v = img->vmas[i];

		if (v->kind != FERRY__VMA_KIND__VMA_FILE || rst_fdkind_backing(fds, nfds, v))
			continue;
		snprintf(what, sizeof(what), "file mapped at 0x%" PRIx64 "-0x%" PRIx64, v->start, v->end);
		ret = rst_file_check(files, what, v->path, v->file, 0, err);
		if (!ret && v->path && !strstr(v->path, " (deleted)"))
			ret = mappable(files, what, v->path, err);
		if (ret)
			return ret;
		(*checked)++;
	}
	return 0;
}

int rst_validate_mappings(struct img_image *img, struct rst_files *files, size_t *checked,
			  struct ferr *err)
{
	return check_mappings(img, NULL, 0, files, checked, err);
}

int rst_validate(struct img_image *img, struct rst_check_report *rep, bool chain,
		 struct rst_files *files, struct ferr *err)
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
	if (!ret)
		ret = check_mappings(img, fds, nfds, files, &rep->files_checked, err);
	if (!ret)
		ret = img_read_process(img, &proc, err);
	if (!ret && proc->mm) {
		ret = rst_file_check(files, "executable", proc->mm->exe_path, proc->mm->exe_id, 0,
				     err);
		if (!ret && proc->mm->exe_path)
			ret = mappable(files, "executable", proc->mm->exe_path, err);
		rep->files_checked += !ret;
	}
	for (size_t i = 0; !ret && i < nfds; i++) {
		struct stat st;

		/* A shell job's terminal is the restoring one (--shell-job);
		 * an --orphan-pts one is a new pair. */
		if (!fds[i]->path || fds[i]->tty || fds[i]->orphan_pty || (fds[i]->kind != FERRY__FD_KIND__FD_REG &&
				      fds[i]->kind != FERRY__FD_KIND__FD_DIR &&
				      fds[i]->kind != FERRY__FD_KIND__FD_CHR))
			continue;
		snprintf(what, sizeof(what), "file of fd %u", fds[i]->fd);
		/* An O_APPEND file (O_WRONLY or O_RDWR) may have been appended
		 * to by others since: what it had then must still be there. */
		ret = rst_file_check(files, what, fds[i]->path, fds[i]->file,
				     (fds[i]->flags & O_APPEND) ? RST_FILE_MAY_GROW : 0, err);
		rep->files_checked += !ret && fds[i]->file;
		/* A FIFO where the image says file would hang the open. */
		if (!ret && (ret = kind_now(files, what, fds[i]->path, &st, err)) == 1) {
			ret = 0;
			continue;
		}
		if (!ret && !rst_fd_type_fits(fds[i], st.st_mode))
			ret = ferr_new(err, EACCES, "%s `%s` is not the kind of file the image says "
				       "(a FIFO, socket or device where a file was): ferry does not "
				       "open it", what, fds[i]->path);
	}
	img_free_entries(fds, nfds);
	if (proc)
		ferry__process__free_unpacked(proc, NULL);
	return ret;
}
