/* /proc/PID/mountinfo, parsed (proc/mounts.h). proc(5): ID, parent ID,
 * major:minor, root, mount point, mount options, optional fields ended by
 * "-", filesystem type, source, superblock options. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "common/util.h"
#include "proc/mounts.h"

/* The next space-separated field of *s, its octal escapes (\040 and the
 * like, as the kernel writes space, tab, newline and backslash) undone. */
static char *field(const char **s)
{
	const char *p = *s, *end;
	char *out, *o;

	while (*p == ' ')
		p++;
	if (!*p || *p == '\n')
		return NULL;
	for (end = p; *end && *end != ' ' && *end != '\n'; end++)
		;
	out = malloc((size_t)(end - p) + 1);
	if (!out)
		return NULL;
	for (o = out; p < end; p++) {
		if (*p == '\\' && end - p >= 4 && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
		    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	*s = end;
	return out;
}

static unsigned long mount_flags(const char *opts)
{
	static const struct {
		const char *name;
		unsigned long flag;
	} known[] = {
		{ "ro", MS_RDONLY },         { "nosuid", MS_NOSUID },
		{ "nodev", MS_NODEV },       { "noexec", MS_NOEXEC },
		{ "noatime", MS_NOATIME },   { "nodiratime", MS_NODIRATIME },
		{ "relatime", MS_RELATIME }, { "strictatime", MS_STRICTATIME },
	};
	unsigned long flags = 0;
	const char *p = opts;

	while (*p) {
		size_t len = strcspn(p, ",");

		for (size_t i = 0; i < ARRAY_SIZE(known); i++)
			if (strlen(known[i].name) == len && !strncmp(p, known[i].name, len))
				flags |= known[i].flag;
		p += len;
		if (*p == ',')
			p++;
	}
	/* The kernel shows no atime word for strictatime. */
	if (!(flags & (MS_NOATIME | MS_RELATIME)))
		flags |= MS_STRICTATIME;
	return flags;
}

void mnt_info_free(struct mnt_info *m)
{
	free(m->root);
	free(m->point);
	free(m->fstype);
	free(m->source);
	free(m->super);
	memset(m, 0, sizeof(*m));
}

int mnt_parse_line(const char *line, struct mnt_info *m)
{
	const char *s = line;
	char *opts = NULL, *opt;
	int used = 0;

	memset(m, 0, sizeof(*m));
	if (sscanf(s, "%u %u %u:%u %n", &m->id, &m->parent, &m->major, &m->minor, &used) != 4 ||
	    !used)
		return -EINVAL;
	s += used;
	m->root = field(&s);
	m->point = field(&s);
	opts = field(&s);
	if (!m->root || !m->point || !opts)
		goto bad;
	m->flags = mount_flags(opts);
	free(opts);
	/* Optional fields (shared:N, master:N, ...) up to a lone "-". */
	for (;;) {
		opt = field(&s);
		if (!opt)
			goto bad;
		if (!strcmp(opt, "-")) {
			free(opt);
			break;
		}
		if (!strncmp(opt, "shared:", 7) || !strncmp(opt, "master:", 7))
			m->propagates = true;
		free(opt);
	}
	m->fstype = field(&s);
	m->source = field(&s);
	m->super = field(&s);
	/* root is a path, or for nsfs what the file is ("net:[4026532242]"). */
	if (!m->fstype || !m->source || !m->super || m->point[0] != '/')
		goto bad;
	return 0;
bad:
	mnt_info_free(m);
	return -EINVAL;
}

void mnt_table_free(struct mnt_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		mnt_info_free(&t->m[i]);
	free(t->m);
	t->m = NULL;
	t->n = 0;
}

int mnt_table_read(int procfd, struct mnt_table *t, struct ferr *err)
{
	int fd = openat(procfd, "mountinfo", O_RDONLY | O_CLOEXEC);
	cleanup_fclose FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	cleanup_free char *line = NULL;
	size_t cap = 0;

	memset(t, 0, sizeof(*t));
	if (!f) {
		if (fd >= 0)
			close(fd);
		return ferr_sys(err, errno, "mountinfo");
	}
	while (getline(&line, &cap, f) > 0) {
		struct mnt_info *m = realloc(t->m, (t->n + 1) * sizeof(*m));

		if (!m) {
			mnt_table_free(t);
			return ferr_sys(err, ENOMEM, "mountinfo");
		}
		t->m = m;
		if (mnt_parse_line(line, &t->m[t->n])) {
			mnt_table_free(t);
			return ferr_new(err, EIO, "mountinfo: a line ferry cannot read: %.200s", line);
		}
		t->n++;
	}
	if (ferror(f)) {
		mnt_table_free(t);
		return ferr_sys(err, EIO, "mountinfo");
	}
	return 0;
}

const struct mnt_info *mnt_by_id(const struct mnt_table *t, uint32_t id)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->m[i].id == id)
			return &t->m[i];
	return NULL;
}

bool mnt_path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (!strcmp(dir, "/"))
		return path[0] == '/';
	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

bool mnt_fresh_type(const char *t)
{
	static const char *const ok[] = { "proc", "sysfs", "tmpfs", "devpts", "mqueue",
					  "cgroup", "cgroup2" };

	for (size_t i = 0; t && i < ARRAY_SIZE(ok); i++)
		if (!strcmp(t, ok[i]))
			return true;
	return false;
}
