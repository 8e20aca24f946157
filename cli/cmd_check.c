/* `ferry check`: probe the running kernel by behaviour and say which
 * backends work here and which one `auto` picks. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/kerndat.h"
#include "proc/backend.h"
#include "proc/cgfreeze.h"
#include "cli/cli.h"

void cmd_check_help(FILE *out)
{
	fprintf(out,
		"Usage: ferry check [--json]\n"
		"\n"
		"Probe the running kernel for every interface ferry uses, by exercising it\n"
		"(not by version numbers), then list for each step of a dump the backends\n"
		"that work here and the one `auto` picks.\n"
		"\n"
		"  --json      one JSON object: {\"kernel\":..., \"features\":{KEY:bool...},\n"
		"              \"notes\":{KEY:why...}, \"backends\":{...},\n"
		"              \"cgroup_freezer\":{\"usable\":bool,\"what\":...}, \"ok\":bool}\n"
		"  -h, --help  this help\n"
		"\n"
		"Exit status: 0 when dump and restore can work here, 1 when something\n"
		"essential is missing (named on stderr), 2 on a usage error.\n"
		"The feature keys are documented in docs/CLI.md.\n");
}

static void print_text(const struct kerndat *kd, int missing)
{
	printf("kernel: Linux %s %s, page size %d\n\n", kd->release, kd->machine, kd->page_size);
	printf("%-18s %-4s %s\n", "feature", "", "notes");
	for (int f = 0; f < KD_NR_FEATURES; f++)
		printf("%-18s %-4s %s%s%s\n", kd_features[f].key, kd->has[f] ? "yes" : "no",
		       kd_features[f].what, kd->note[f][0] ? ": " : "", kd->note[f]);
	printf("\nbackends (auto picks the first usable, marked *):\n");
	for (size_t i = 0; i < backend_nr_families; i++) {
		const struct backend_family *fam = &backend_families[i];
		const struct backend_desc *pick = backend_auto(fam, kd);

		printf("  %-8s %-10s", fam->name, fam->option);
		for (size_t k = 0; k < fam->n; k++) {
			const struct backend_desc *b = &fam->list[k];
			printf(" %s%s%s", b->name, b == pick ? "*" : "",
			       backend_usable(b, kd) ? "" : "(unusable)");
		}
		printf("\n");
	}
	printf("\nrestore with the same PID: %s\n",
	       kd->has[KD_CLONE3_SET_TID] ? "yes (clone3 set_tid)" : "no: new PIDs only");
	{
		char what[600];
		bool ok = cgf_probe(what, sizeof(what));

		printf("freeze a container through its cgroup (--freeze-cgroup): %s%s\n",
		       ok ? "yes, " : "", what);
	}
	if (missing >= 0)
		printf("\nferry cannot dump or restore here: %s is missing\n", kd_features[missing].key);
	else
		printf("\nferry can dump and restore here.\n");
}

static void print_json(const struct kerndat *kd, int missing)
{
	struct json j;

	json_init(&j, stdout);
	json_obj_begin(&j, NULL);
	json_obj_begin(&j, "kernel");
	json_str(&j, "release", kd->release);
	json_str(&j, "machine", kd->machine);
	json_i64(&j, "page_size", kd->page_size);
	json_u64(&j, "uffd_features", kd->uffd_features);
	json_obj_end(&j);
	json_obj_begin(&j, "features");
	for (int f = 0; f < KD_NR_FEATURES; f++)
		json_bool(&j, kd_features[f].key, kd->has[f]);
	json_obj_end(&j);
	json_obj_begin(&j, "notes");
	for (int f = 0; f < KD_NR_FEATURES; f++)
		if (kd->note[f][0])
			json_str(&j, kd_features[f].key, kd->note[f]);
	json_obj_end(&j);
	json_obj_begin(&j, "backends");
	for (size_t i = 0; i < backend_nr_families; i++) {
		const struct backend_family *fam = &backend_families[i];
		const struct backend_desc *pick = backend_auto(fam, kd);

		json_obj_begin(&j, fam->name);
		json_str(&j, "auto", pick ? pick->name : NULL);
		json_arr_begin(&j, "usable");
		for (size_t k = 0; k < fam->n; k++)
			if (backend_usable(&fam->list[k], kd))
				json_str(&j, NULL, fam->list[k].name);
		json_arr_end(&j);
		json_arr_begin(&j, "unusable");
		for (size_t k = 0; k < fam->n; k++)
			if (!backend_usable(&fam->list[k], kd))
				json_str(&j, NULL, fam->list[k].name);
		json_arr_end(&j);
		json_obj_end(&j);
	}
	json_obj_end(&j);
	{
		char what[600];
		bool ok = cgf_probe(what, sizeof(what));

		json_obj_begin(&j, "cgroup_freezer");
		json_bool(&j, "usable", ok);
		json_str(&j, "what", what);
		json_obj_end(&j);
	}
	json_bool(&j, "ok", missing < 0);
	json_str(&j, "missing", missing < 0 ? NULL : kd_features[missing].key);
	json_obj_end(&j);
	json_finish(&j);
}

static int check_opt(void *ctx, int c, char *arg)
{
	(void)arg;
	if (c == 'j')
		*(bool *)ctx = true;
	return 0;
}

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct kerndat kd;
	bool json = false;
	int missing, ret;

	ret = cli_parse(argc, argv, "check", "h", opts, cmd_check_help, check_opt, &json, NULL);
	if (ret)
		return ret == CLI_HELP_SHOWN ? EXIT_OK : ret;

	kerndat_probe(&kd);
	missing = kerndat_missing_essential(&kd);
	if (json)
		print_json(&kd, missing);
	else
		print_text(&kd, missing);
	if (missing >= 0) {
		cli_error("check", "essential feature missing: %s: %s", kd_features[missing].key,
			  kd.note[missing]);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}
