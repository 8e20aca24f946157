/* START's typed commands as the words of a ferry command (typed.h): each
 * field becomes the option it stands for, so a typed job runs exactly what
 * the command line runs, its options checked by ferry's own parser. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/request.h"
#include "service/typed.h"

#define TYPED_WORDS 48

struct words {
	char *v[TYPED_WORDS];
	size_t n;
	bool bad;
	char *why;
	size_t len;
};

static void __attribute__((format(printf, 2, 3))) bad(struct words *w, const char *fmt, ...)
{
	va_list ap;

	if (w->bad)
		return;
	w->bad = true;
	va_start(ap, fmt);
	vsnprintf(w->why, w->len, fmt, ap);
	va_end(ap);
}

static void word(struct words *w, const char *s)
{
	if (w->bad)
		return;
	if (w->n == TYPED_WORDS || !(w->v[w->n] = strdup(s)))
		bad(w, "out of words");
	else
		w->n++;
}

/* An option with a string: absent (NULL) leaves it out; empty or too long
 * is refused, naming the field. */
static void opt_str(struct words *w, const char *opt, const char *field, const char *v)
{
	if (!v)
		return;
	if (!*v || strnlen(v, RPC_ARG_MAX) == RPC_ARG_MAX) {
		bad(w, "%s: %s", field, *v ? "too long" : "empty");
		return;
	}
	word(w, opt);
	word(w, v);
}

static void opt_u32(struct words *w, const char *opt, bool has, uint32_t v)
{
	char num[16];

	if (!has)
		return;
	snprintf(num, sizeof(num), "%u", v);
	word(w, opt);
	word(w, num);
}

static void flag(struct words *w, const char *opt, bool has, bool v)
{
	if (has && v)
		word(w, opt);
}

static void pid(struct words *w, const char *opt, uint32_t v)
{
	if (!v || v > (1u << 22))
		bad(w, "pid %u is no process ID", v);
	opt_u32(w, opt, true, v);
}

static void tls(struct words *w, const Ferry__Rpc__Tls *t)
{
	if (!t)
		return;
	opt_str(w, "--auth-key", "tls.auth_key", t->auth_key);
	opt_str(w, "--tls-cert", "tls.cert", t->cert);
	opt_str(w, "--tls-key", "tls.key", t->key);
	opt_str(w, "--tls-cacert", "tls.cacert", t->cacert);
}

static void dump(struct words *w, const Ferry__Rpc__Dump *d)
{
	word(w, d->has_pre_dump && d->pre_dump ? "pre-dump" : "dump");
	flag(w, "--tree=no", d->has_no_tree, d->no_tree);
	pid(w, "-t", d->pid);
	opt_str(w, "-D", "images_dir", d->images_dir);
	flag(w, "-R", d->has_leave_running, d->leave_running);
	flag(w, "--iterative", d->has_iterative, d->iterative);
	opt_str(w, "--prev-images-dir", "prev_images_dir", d->prev_images_dir);
	opt_str(w, "--track", "track", d->track);
	opt_u32(w, "--downtime-limit", d->has_downtime_limit_ms, d->downtime_limit_ms);
	opt_u32(w, "--max-rounds", d->has_max_rounds, d->max_rounds);
	flag(w, "--auto-converge", d->has_auto_converge, d->auto_converge);
	flag(w, "--shell-job", d->has_shell_job, d->shell_job);
	flag(w, "--file-locks", d->has_file_locks, d->file_locks);
	flag(w, "--skip-unsupported-fds", d->has_skip_unsupported_fds, d->skip_unsupported_fds);
}

static void restore(struct words *w, const Ferry__Rpc__Restore *r)
{
	word(w, "restore");
	opt_str(w, "-D", "images_dir", r->images_dir);
	flag(w, "-d", r->has_detach, r->detach);
	opt_str(w, "--pidfile", "pidfile", r->pidfile);
	flag(w, "--pid-ns", r->has_pid_ns, r->pid_ns);
	flag(w, "--shell-job", r->has_shell_job, r->shell_job);
	flag(w, "--require-same-pid", r->has_require_same_pid, r->require_same_pid);
	opt_str(w, "--root", "root", r->root);
	opt_str(w, "--file-validation", "file_validation", r->file_validation);
}

static void migrate(struct words *w, const Ferry__Rpc__Migrate *m)
{
	word(w, "migrate");
	pid(w, "-t", m->pid);
	opt_str(w, "--to", "to", m->to);
	tls(w, m->tls);
	opt_u32(w, "--downtime-limit", m->has_downtime_limit_ms, m->downtime_limit_ms);
	opt_u32(w, "--max-rounds", m->has_max_rounds, m->max_rounds);
	flag(w, "--auto-converge", m->has_auto_converge, m->auto_converge);
	flag(w, "--compress", m->has_compress, m->compress);
	opt_str(w, "--track", "track", m->track);
}

static void page_server(struct words *w, const Ferry__Rpc__PageServer *p)
{
	word(w, "page-server");
	opt_str(w, "-D", "images_dir", p->images_dir);
	opt_str(w, "--address", "address", p->address);
	if (p->has_port && (!p->port || p->port > 65535))
		bad(w, "port %u", p->port);
	opt_u32(w, "--port", p->has_port, p->port);
	tls(w, p->tls);
	flag(w, "--restore", p->has_restore, p->restore);
	flag(w, "--pid-ns", p->has_pid_ns, p->pid_ns);
	opt_str(w, "--pidfile", "pidfile", p->pidfile);
}

char **typed_argv(const Ferry__Rpc__Command *cmd, size_t *argc, char *why, size_t len)
{
	struct words w = { .why = why, .len = len };
	char **out;
	int n;

	if (!cmd) {
		snprintf(why, len, "START without a command");
		return NULL;
	}
	n = !!cmd->check + !!cmd->dump + !!cmd->restore + !!cmd->migrate + !!cmd->page_server;
	if (n != 1) {
		snprintf(why, len, "START takes exactly one command, not %d", n);
		return NULL;
	}
	if (cmd->check)
		word(&w, "check");
	else if (cmd->dump)
		dump(&w, cmd->dump);
	else if (cmd->restore)
		restore(&w, cmd->restore);
	else if (cmd->migrate)
		migrate(&w, cmd->migrate);
	else
		page_server(&w, cmd->page_server);
	out = w.bad ? NULL : calloc(w.n + 1, sizeof(*out));
	if (!out) {
		if (!w.bad)
			snprintf(why, len, "out of memory");
		typed_argv_free(w.v, w.n);
		return NULL;
	}
	memcpy(out, w.v, w.n * sizeof(*out));
	*argc = w.n;
	return out;
}

void typed_argv_free(char **argv, size_t argc)
{
	for (size_t i = 0; i < argc; i++)
		free(argv[i]);
}
