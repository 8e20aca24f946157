/* Credentials of a restored process. The image says what they were; the
 * caller decides what they may be: a restore never gives the process a
 * uid, gid, group or capability its caller could not give itself. They are
 * checked before anything is created, set first as filesystem credentials
 * (so that every file the process gets is opened as the process, not as
 * ferry), and set whole in every thread at the end. */
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "restore/rst.h"

#define CAPS_ALL (~0ULL >> (63 - CAP_LAST_CAP))

static const char *const cap_names[] = {
	"chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
	"setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
	"net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
	"sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
	"sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
	"audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
	"block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
};

/* The image's sets; one it leaves out is empty, never "as ferry's". */
void rst_creds_caps(const Ferry__Creds *c, struct rst_caps *out)
{
	out->eff = c->has_cap_eff ? c->cap_eff & CAPS_ALL : 0;
	out->prm = c->has_cap_prm ? c->cap_prm & CAPS_ALL : 0;
	out->inh = c->has_cap_inh ? c->cap_inh & CAPS_ALL : 0;
	out->amb = c->has_cap_amb ? c->cap_amb & CAPS_ALL : 0;
	out->bnd = c->has_cap_bnd ? c->cap_bnd & CAPS_ALL : CAPS_ALL;
}

int rst_caller_get(struct rst_caller *who, struct ferr *err)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	int n;

	memset(who, 0, sizeof(*who));
	if (getresuid(&who->uid[0], &who->uid[1], &who->uid[2]) ||
	    getresgid(&who->gid[0], &who->gid[1], &who->gid[2]))
		return ferr_sys(err, errno, "the caller's uids and gids");
	n = getgroups(0, NULL);
	if (n < 0)
		return ferr_sys(err, errno, "the caller's groups");
	who->groups = calloc((size_t)n + 1, sizeof(gid_t));
	if (!who->groups)
		return ferr_sys(err, ENOMEM, "the caller's groups");
	n = getgroups(n, who->groups);
	if (n < 0)
		return ferr_sys(err, errno, "the caller's groups");
	who->ngroups = (size_t)n;
	if (syscall(SYS_capget, &h, d))
		return ferr_sys(err, errno, "the caller's capabilities (capget)");
	who->caps.eff = (d[0].effective | (uint64_t)d[1].effective << 32) & CAPS_ALL;
	who->caps.prm = (d[0].permitted | (uint64_t)d[1].permitted << 32) & CAPS_ALL;
	who->caps.inh = (d[0].inheritable | (uint64_t)d[1].inheritable << 32) & CAPS_ALL;
	who->caps.bnd = 0;
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_READ, cap) > 0)
			who->caps.bnd |= 1ULL << cap;
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
			who->caps.amb |= 1ULL << cap;
	return 0;
}

void rst_caller_free(struct rst_caller *who)
{
	free(who->groups);
	who->groups = NULL;
}

/* A capability the caller can use: effective, permitted and in its bound. */
static uint64_t usable(const struct rst_caller *who)
{
	return who->caps.eff & who->caps.prm & who->caps.bnd;
}

static bool has_id(const uint32_t *set, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == id)
			return true;
	return false;
}

static int cmp_gid(const void *a, const void *b)
{
	gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;

	return (x > y) - (x < y);
}

static void describe_caps(uint64_t caps, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int cap = 0; cap <= CAP_LAST_CAP && off + 1 < len; cap++)
		if (caps & (1ULL << cap))
			off += (size_t)snprintf(buf + off, len - off, "%scap_%s", off ? "," : "",
						cap < (int)ARRAY_SIZE(cap_names) ? cap_names[cap] : "?");
}

int rst_creds_check(const Ferry__Creds *c, const struct rst_caller *who, struct ferr *err)
{
	static const char *const which[] = { "real", "effective", "saved", "filesystem" };
	uint64_t can = usable(who), want, missing;
	cleanup_free gid_t *mine = NULL;
	struct rst_caps ic;
	char names[512];

	if (c->n_uid != 4 || c->n_gid != 4)
		return ferr_new(err, EBADMSG, "the image's credentials do not hold 4 uids and 4 gids");
	for (int i = 0; i < 4 && !(can & (1ULL << CAP_SETUID)); i++)
		if (!has_id(who->uid, 3, c->uid[i]))
			return ferr_new(err, EPERM, "the image asks for %s uid %u; the caller (uid %u) "
					"may not give it: that needs CAP_SETUID", which[i], c->uid[i],
					who->uid[1]);
	for (int i = 0; i < 4 && !(can & (1ULL << CAP_SETGID)); i++)
		if (!has_id(who->gid, 3, c->gid[i]))
			return ferr_new(err, EPERM, "the image asks for %s gid %u; the caller (gid %u) "
					"may not give it: that needs CAP_SETGID", which[i], c->gid[i],
					who->gid[1]);
	if (!(can & (1ULL << CAP_SETGID)) && c->n_groups) {
		/* Sorted once, then each group found by bisection. */
		mine = malloc((who->ngroups + 1) * sizeof(*mine));
		if (!mine)
			return ferr_sys(err, ENOMEM, "groups");
		if (who->ngroups) {
			memcpy(mine, who->groups, who->ngroups * sizeof(*mine));
			qsort(mine, who->ngroups, sizeof(*mine), cmp_gid);
		}
		for (size_t i = 0; i < c->n_groups; i++) {
			gid_t g = c->groups[i];

			if (!bsearch(&g, mine, who->ngroups, sizeof(*mine), cmp_gid))
				return ferr_new(err, EPERM, "the image asks for supplementary group %u; "
						"the caller is not in it and lacks CAP_SETGID", g);
		}
	}
	rst_creds_caps(c, &ic);
	/* Inheritable bits the caller already has are no grant. */
	want = ic.eff | ic.prm | ic.amb | (ic.inh & ~who->caps.inh);
	missing = want & ~can;
	if (missing) {
		describe_caps(missing, names, sizeof(names));
		return ferr_new(err, EPERM, "the image asks for capabilities the caller does not "
				"hold (effective, permitted and in its bounding set): %s", names);
	}
	return 0;
}

bool rst_creds_are_callers(const Ferry__Creds *c, const struct rst_caller *who)
{
	struct rst_caps ic;

	if (c->n_uid != 4 || c->n_gid != 4 || c->n_groups != who->ngroups)
		return false;
	for (int i = 0; i < 3; i++)
		if (c->uid[i] != who->uid[i] || c->gid[i] != who->gid[i])
			return false;
	if (c->uid[3] != who->uid[1] || c->gid[3] != who->gid[1])
		return false;
	for (size_t i = 0; i < who->ngroups; i++)
		if (c->groups[i] != who->groups[i])
			return false;
	rst_creds_caps(c, &ic);
	return ic.eff == who->caps.eff && ic.prm == who->caps.prm && ic.inh == who->caps.inh &&
	       ic.amb == who->caps.amb && (ic.bnd & who->caps.bnd) == who->caps.bnd;
}

static bool groups_are_callers(const Ferry__Creds *c, const struct rst_caller *who)
{
	if (c->n_groups != who->ngroups)
		return false;
	for (size_t i = 0; i < who->ngroups; i++)
		if (c->groups[i] != who->groups[i])
			return false;
	return true;
}

/* ---- filesystem credentials, before anything is opened -------------------- */

_Static_assert(sizeof(gid_t) == sizeof(uint32_t), "gid_t is 32 bits");

/* Raw syscalls: this runs in the clone3 child of a threaded ferry, where
 * glibc's setgroups would signal threads that do not exist here. setfsuid
 * reports nothing: asking again with -1 (never valid) reads it back. */
int rst_creds_fs_self(const struct rst *r, struct ferr *err)
{
	const Ferry__Creds *c = r->proc->creds;

	if (!c || rst_creds_are_callers(c, &r->caller))
		return 0;
	if (!groups_are_callers(c, &r->caller) &&
	    syscall(SYS_setgroups, c->n_groups, (const gid_t *)c->groups) < 0)
		return ferr_sys(err, errno, "setgroups to the image's %zu groups", c->n_groups);
	syscall(SYS_setfsgid, c->gid[3]);
	if ((uint32_t)syscall(SYS_setfsgid, -1) != c->gid[3])
		return ferr_new(err, EPERM, "filesystem gid %u was not taken", c->gid[3]);
	syscall(SYS_setfsuid, c->uid[3]);
	if ((uint32_t)syscall(SYS_setfsuid, -1) != c->uid[3])
		return ferr_new(err, EPERM, "filesystem uid %u was not taken", c->uid[3]);
	return 0;
}

/* The same by injection into the main thread (a warm restore's child,
 * which opens its fds only at the end). */
int rst_creds_fs_inject(struct rst *r, struct ferr *err)
{
	const Ferry__Creds *c = r->proc->creds;
	uint64_t at = 0;
	long rv;
	int ret = 0;

	if (!c || rst_creds_are_callers(c, &r->caller))
		return 0;
	if (c->n_groups > RST_GROUPS_MAX)
		return ferr_new(err, E2BIG, "%zu supplementary groups, ferry restores at most %d",
				c->n_groups, RST_GROUPS_MAX);
	if (!groups_are_callers(c, &r->caller)) {
		ret = rst_scratch_put(r, 0, c->groups, c->n_groups * sizeof(gid_t), &at, err);
		if (!ret)
			ret = rst_sys(&r->th[0], "setgroups", &rv, err, __NR_setgroups, c->n_groups, at,
				      0, 0, 0, 0);
	}
	if (!ret)
		ret = rst_sys(&r->th[0], "setfsgid", &rv, err, __NR_setfsgid, c->gid[3], 0, 0, 0, 0, 0);
	if (!ret)
		ret = rst_sys(&r->th[0], "setfsuid", &rv, err, __NR_setfsuid, c->uid[3], 0, 0, 0, 0, 0);
	if (!ret)
		ret = rst_sys(&r->th[0], "setfsuid", &rv, err, __NR_setfsuid, (uint64_t)-1, 0, 0, 0, 0,
			      0);
	if (!ret && (uint32_t)rv != c->uid[3])
		ret = ferr_new(err, EPERM, "filesystem uid %u was not taken", c->uid[3]);
	return ret;
}

/* ---- setting them, in every thread at the end ----------------------------- */

static int thread_creds(struct rst *r, struct rst_thread *t, const Ferry__Creds *c,
			struct ferr *err)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	uint64_t at = 0, hat = 0;
	gid_t groups[RST_GROUPS_MAX];
	struct rst_caps ic;
	long rv;
	int ret = 0;

	if (c->n_groups > ARRAY_SIZE(groups))
		return ferr_new(err, E2BIG, "%zu supplementary groups, ferry restores at most %zu",
				c->n_groups, ARRAY_SIZE(groups));
	rst_creds_caps(c, &ic);
	for (int cap = 0; cap <= CAP_LAST_CAP && !ret; cap++)
		if (!(ic.bnd & (1ULL << cap)) && (r->caller.caps.bnd & (1ULL << cap)))
			ret = rst_sys(t, "drop from the bounding set", &rv, err, __NR_prctl,
				      PR_CAPBSET_DROP, (uint64_t)cap, 0, 0, 0, 0);
	for (size_t i = 0; i < c->n_groups; i++)
		groups[i] = c->groups[i];
	/* Without CAP_SETGID the caller's own groups stay as they are. */
	if (!ret && !groups_are_callers(c, &r->caller)) {
		ret = rst_scratch_put(r, 0, groups, c->n_groups * sizeof(gid_t), &at, err);
		if (!ret)
			ret = rst_sys(t, "setgroups", &rv, err, __NR_setgroups, c->n_groups, at, 0, 0,
				      0, 0);
	}
	if (!ret)
		ret = rst_sys(t, "setresgid", &rv, err, __NR_setresgid, c->gid[0], c->gid[1],
			      c->gid[2], 0, 0, 0);
	if (!ret)
		ret = rst_sys(t, "setfsgid", &rv, err, __NR_setfsgid, c->gid[3], 0, 0, 0, 0, 0);
	if (!ret)
		ret = rst_sys(t, "keep capabilities", &rv, err, __NR_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0, 0);
	if (!ret)
		ret = rst_sys(t, "setresuid", &rv, err, __NR_setresuid, c->uid[0], c->uid[1],
			      c->uid[2], 0, 0, 0);
	if (!ret)
		ret = rst_sys(t, "setfsuid", &rv, err, __NR_setfsuid, c->uid[3], 0, 0, 0, 0, 0);
	/* Always: sets the image leaves out are emptied, not kept from ferry. */
	if (!ret) {
		d[0].effective = (uint32_t)ic.eff;
		d[1].effective = (uint32_t)(ic.eff >> 32);
		d[0].permitted = (uint32_t)ic.prm;
		d[1].permitted = (uint32_t)(ic.prm >> 32);
		d[0].inheritable = (uint32_t)ic.inh;
		d[1].inheritable = (uint32_t)(ic.inh >> 32);
		ret = rst_scratch_put(r, 0, &h, sizeof(h), &hat, err);
		if (!ret)
			ret = rst_scratch_put(r, 64, d, sizeof(d), &at, err);
		if (!ret)
			ret = rst_sys(t, "capset", &rv, err, __NR_capset, hat, at, 0, 0, 0, 0);
	}
	if (!ret)
		ret = rst_sys(t, "clear keep-capabilities", &rv, err, __NR_prctl, PR_SET_KEEPCAPS, 0, 0,
			      0, 0, 0);
	if (!ret)
		ret = rst_sys(t, "clear the ambient set", &rv, err, __NR_prctl, PR_CAP_AMBIENT,
			      PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0);
	for (int cap = 0; cap <= CAP_LAST_CAP && !ret; cap++)
		if (ic.amb & (1ULL << cap))
			ret = rst_sys(t, "raise an ambient capability", &rv, err, __NR_prctl,
				      PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (uint64_t)cap, 0, 0, 0);
	/* A uid change made the process undumpable; the dumped one was not. */
	if (!ret)
		ret = rst_sys(t, "prctl(PR_SET_DUMPABLE)", &rv, err, __NR_prctl, PR_SET_DUMPABLE, 1, 0,
			      0, 0, 0);
	if (ret)
		return ferr_wrap(err, "credentials of thread %d", t->tid);
	return 0;
}

int rst_creds_set(struct rst *r, struct ferr *err)
{
	const Ferry__Creds *c = r->proc->creds;
	int ret = 0;

	if (!c || rst_creds_are_callers(c, &r->caller))
		return 0;
	for (size_t i = 0; !ret && i < r->nr_threads; i++)
		ret = thread_creds(r, &r->th[i], c, err);
	return ret;
}
