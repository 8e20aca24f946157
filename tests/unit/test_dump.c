/* Unit tests of the dump engine's pure parts: the convergence model
 * replayed over round tables recorded from real runs (`ferry -vv dump
 * --iterative --json` against tests/workloads/dirtier, the model input from
 * the debug log, the outcome from the JSON) and over tables made to sit on
 * each rule's edge; and the copied/in-parent split. The page reader has its
 * own file (test_pgread.c), as it needs a real process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "dump/converge.h"
#include "dump/split.h"
#include "images/img.h"

/* ---- convergence: recorded tables ---------------------------------------- */

/* What the JSON said about a round. */
struct recorded {
	double dirty_rate, bandwidth, predicted_ms, throttle;
};

struct table {
	const char *name;
	const struct conv_round *in;
	const struct recorded *out;
	size_t n;
	struct conv_params p;
	const char *stop_reason;
};

/* limit: recorded 2 rounds */
static const struct conv_round limit_in[] = {
	{ .tracked = false, .bytes = 70205440, .start_ns = 334998008640ull, .copy_ns = 87640151,
	  .freeze_ns = 1051576, .collect_ns = 23934593, .seconds = 0.277286958, .send_s = 0 },
	{ .tracked = true, .bytes = 2871296, .start_ns = 335275854129ull, .copy_ns = 38275469,
	  .freeze_ns = 0, .collect_ns = 8111995, .seconds = 0.08670079, .send_s = 0 },
};
static const struct recorded limit_out[] = {
	{ 0, 801065000.0, 0, 0 },
	{ 10334100.0, 580363000.0, 10.7074, 0 },
};

/* noshrink: recorded 3 rounds */
static const struct conv_round noshrink_in[] = {
	{ .tracked = false, .bytes = 69406720, .start_ns = 336393636101ull, .copy_ns = 188479241,
	  .freeze_ns = 0, .collect_ns = 781, .seconds = 0.28191906, .send_s = 0 },
	{ .tracked = true, .bytes = 26464256, .start_ns = 336676247505ull, .copy_ns = 197978699,
	  .freeze_ns = 0, .collect_ns = 147047112, .seconds = 0.415473046, .send_s = 0 },
	{ .tracked = true, .bytes = 33681408, .start_ns = 337091986385ull, .copy_ns = 184044455,
	  .freeze_ns = 0, .collect_ns = 158354432, .seconds = 0.454125971, .send_s = 0 },
};
static const struct recorded noshrink_out[] = {
	{ 0, 368246000.0, 0, 0 },
	{ 93641900.0, 248076000.0, 303.877, 0 },
	{ 81015800.0, 227085000.0, 320.37, 0 },
};

/* autoconv: recorded 8 rounds */
static const struct conv_round autoconv_in[] = {
	{ .tracked = false, .bytes = 69406720, .start_ns = 338963805421ull, .copy_ns = 250081880,
	  .freeze_ns = 0, .collect_ns = 881, .seconds = 0.376059698, .send_s = 0 },
	{ .tracked = true, .bytes = 33816576, .start_ns = 339340656982ull, .copy_ns = 139888828,
	  .freeze_ns = 0, .collect_ns = 147127546, .seconds = 0.393800245, .send_s = 0 },
	{ .tracked = true, .bytes = 41746432, .start_ns = 339734884638ull, .copy_ns = 116511332,
	  .freeze_ns = 0, .collect_ns = 155468184, .seconds = 0.443105705, .send_s = 0 },
	{ .tracked = true, .bytes = 31916032, .start_ns = 340179785631ull, .copy_ns = 195157406,
	  .freeze_ns = 0, .collect_ns = 148823785, .seconds = 0.422838222, .send_s = 0 },
	{ .tracked = true, .bytes = 33292288, .start_ns = 340602702333ull, .copy_ns = 125792416,
	  .freeze_ns = 0, .collect_ns = 284437739, .seconds = 0.504310069, .send_s = 0 },
	{ .tracked = true, .bytes = 29245440, .start_ns = 341107058228ull, .copy_ns = 323945257,
	  .freeze_ns = 0, .collect_ns = 286278994, .seconds = 0.705049257, .send_s = 0 },
	{ .tracked = true, .bytes = 46292992, .start_ns = 341812149525ull, .copy_ns = 150946162,
	  .freeze_ns = 0, .collect_ns = 282305122, .seconds = 0.762685348, .send_s = 0 },
	{ .tracked = true, .bytes = 20262912, .start_ns = 342574887081ull, .copy_ns = 100497963,
	  .freeze_ns = 0, .collect_ns = 67965994, .seconds = 0.232252584, .send_s = 0 },
};
static const struct recorded autoconv_out[] = {
	{ 0, 277536000.0, 0, 0 },
	{ 89734500.0, 264695000.0, 280.63, 0 },
	{ 105894000.0, 286229000.0, 319.401, 0 },
	{ 71737400.0, 252103000.0, 269.145, 0.2 },
	{ 78720700.0, 254013000.0, 440.728, 0.2 },
	{ 57985700.0, 207945000.0, 482.883, 0.4 },
	{ 65655300.0, 219390000.0, 510.549, 0.4 },
	{ 26566000.0, 218117000.0, 96.2537, 0.6 },
};

/* cap: recorded 3 rounds */
static const struct conv_round cap_in[] = {
	{ .tracked = false, .bytes = 70131712, .start_ns = 344656943421ull, .copy_ns = 904644906,
	  .freeze_ns = 15566672, .collect_ns = 30900713, .seconds = 1.08886302, .send_s = 0 },
	{ .tracked = true, .bytes = 10358784, .start_ns = 345746659631ull, .copy_ns = 140772385,
	  .freeze_ns = 0, .collect_ns = 5417802, .seconds = 0.215266157, .send_s = 0 },
	{ .tracked = true, .bytes = 1794048, .start_ns = 345962128062ull, .copy_ns = 21801083,
	  .freeze_ns = 0, .collect_ns = 953039, .seconds = 0.08203776, .send_s = 0 },
};
static const struct recorded cap_out[] = {
	{ 0, 77524000.0, 0, 0 },
	{ 9505950.0, 76993700.0, 47.5621, 0 },
	{ 8326270.0, 77101900.0, 25.379, 0 },
};


#define TABLE(nm, limit_ms, rounds, ac, reason)                                             \
	{ #nm, nm##_in, nm##_out, ARRAY_SIZE(nm##_in),                                      \
	  { .downtime_limit_ns = (limit_ms) * 1000000ull, .max_rounds = (rounds),           \
	    .auto_converge = (ac) }, reason }

/* limit:    --mb 64 --rate 16, --track uffd-wp (default limit 100 ms, 8 rounds)
 * noshrink: --mb 64 --rate 256, --track hash --downtime-limit 0 --max-rounds 8
 * autoconv: the same with --auto-converge
 * cap:      --mb 64 --rate 64 --busy, --track uffd-wp --downtime-limit 0 --max-rounds 3 */
static const struct table tables[] = {
	TABLE(limit, 100, 8, false, CONV_REASON_LIMIT),
	TABLE(noshrink, 0, 8, false, CONV_REASON_NO_SHRINK),
	TABLE(autoconv, 0, 8, true, CONV_REASON_CAP),
	TABLE(cap, 0, 3, false, CONV_REASON_CAP),
};

/* The JSON keeps 6 significant digits. */
static void assert_close(double got, double want, const char *what, const char *tab, size_t k)
{
	double tol = fabs(want) * 1e-5 + 1e-9;

	if (fabs(got - want) > tol)
		fail_msg("%s round %zu: %s is %.9g, recorded %.9g", tab, k, what, got, want);
}

/* Replay a table as iter_run does: predict, decide, apply the throttle. */
static void replay(const struct table *t)
{
	double level = 0;

	for (size_t k = 1; k <= t->n; k++) {
		const struct recorded *o = &t->out[k - 1];
		struct conv_estimate e = converge_predict(t->in, k);
		struct conv_decision d;

		assert_close(level, o->throttle, "throttle", t->name, k);
		assert_close(e.dirty_rate, o->dirty_rate, "dirty rate", t->name, k);
		assert_close(e.bandwidth, o->bandwidth, "bandwidth", t->name, k);
		assert_close(e.predicted_ns / 1e6, o->predicted_ms, "prediction", t->name, k);
		d = converge_decide(&t->p, t->in, k, &e, level);
		if (k < t->n && d.stop_reason)
			fail_msg("%s: stops after round %zu (%s), recorded went on", t->name, k,
				 d.stop_reason);
		if (k == t->n) {
			assert_non_null(d.stop_reason);
			assert_string_equal(d.stop_reason, t->stop_reason);
		}
		level = d.level;
	}
}

static void test_recorded_tables(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++)
		replay(&tables[i]);
}

/* The recorded auto-converge run: raised after rounds 3, 5 and 7 (each did
 * not shrink by 10%), never after a round that shrank. */
static void test_recorded_raises(void **state)
{
	const struct table *t = &tables[2];
	bool want[] = { false, false, true, false, true, false, true, false };
	double level = 0;

	(void)state;
	assert_int_equal(t->n, ARRAY_SIZE(want));
	for (size_t k = 1; k <= t->n; k++) {
		struct conv_estimate e = converge_predict(t->in, k);
		struct conv_decision d = converge_decide(&t->p, t->in, k, &e, level);

		if (d.raise != want[k - 1])
			fail_msg("round %zu: raise %d, recorded %d", k, d.raise, want[k - 1]);
		level = d.level;
	}
	assert_true(fabs(level - 0.6) < 1e-9);
}

/* iter_run's arithmetic before the model was taken out of it, verbatim:
 * the model must give the same doubles, not just close ones. */
static void old_loop(const struct conv_round *in, size_t n, struct conv_estimate *out)
{
	uint64_t copy_bytes = 0, copy_ns = 0, fixed_ns = 0, prev_collect = 0;
	double hook_s = 0, send_bw = 0;

	for (size_t i = 0; i < n; i++) {
		const struct conv_round *r = &in[i];
		struct conv_estimate row = { 0 };
		unsigned k = (unsigned)i + 1;
		uint64_t start = r->start_ns;

		copy_bytes += r->bytes;
		copy_ns += r->copy_ns;
		row.bandwidth = copy_ns ? copy_bytes / (copy_ns / 1e9) : 0;
		if (r->freeze_ns > fixed_ns)
			fixed_ns = r->freeze_ns;
		hook_s = r->send_s;
		send_bw = hook_s > 0 ? r->bytes / hook_s : 0;
		if (k > 1 && r->tracked) {
			double interval = (start - prev_collect) / 1e9;
			double next_bytes;

			row.dirty_rate = interval > 0 ? r->bytes / interval : 0;
			next_bytes = row.dirty_rate * (r->seconds + hook_s);
			row.predicted_ns = fixed_ns + r->collect_ns +
					   (row.bandwidth > 0 ? next_bytes / row.bandwidth * 1e9 : 0) +
					   (send_bw > 0 ? next_bytes / send_bw * 1e9 : 0);
		}
		prev_collect = start;
		out[i] = row;
	}
}

/* A migration: each round took as long again to send. */
static const struct conv_round sent_in[] = {
	{ .bytes = 60000000, .start_ns = 0, .copy_ns = 500000000, .freeze_ns = 5000000,
	  .seconds = 1.0, .send_s = 1.0 },
	{ .tracked = true, .bytes = 40000000, .start_ns = 2000000000, .copy_ns = 500000000,
	  .collect_ns = 1000000, .seconds = 1.0, .send_s = 1.0 },
	{ .tracked = true, .bytes = 30000000, .start_ns = 3500000000, .copy_ns = 0,
	  .freeze_ns = 7000000, .collect_ns = 2000000, .seconds = 0.5, .send_s = 0.75 },
};

static void test_same_doubles_as_before(void **state)
{
	struct conv_estimate old[16], e;

	(void)state;
	for (size_t i = 0; i <= ARRAY_SIZE(tables); i++) {
		const struct conv_round *in = i < ARRAY_SIZE(tables) ? tables[i].in : sent_in;
		size_t n = i < ARRAY_SIZE(tables) ? tables[i].n : ARRAY_SIZE(sent_in);

		old_loop(in, n, old);
		for (size_t k = 1; k <= n; k++) {
			e = converge_predict(in, k);
			if (memcmp(&e, &old[k - 1], sizeof(e)))
				fail_msg("table %zu round %zu: %.17g/%.17g/%.17g, was %.17g/%.17g/%.17g",
					 i, k, e.dirty_rate, e.bandwidth, e.predicted_ns,
					 old[k - 1].dirty_rate, old[k - 1].bandwidth,
					 old[k - 1].predicted_ns);
		}
	}
}

/* ---- convergence: each rule on its edge -------------------------------- */

/* Round 2 wrote 20 MB in 2 s (20 MB/s) and took 1 s plus 1 s to send; the
 * copy ran at 100 MB/s, the send at 40 MB/s. Stopping now: 40 MB to copy
 * (0.4 s) and send (1 s), plus the 5 ms freeze and the 1 ms collect. */
static void test_predict_send_term(void **state)
{
	struct conv_round in[2];
	struct conv_estimate e;

	(void)state;
	memcpy(in, sent_in, sizeof(in));
	e = converge_predict(in, 1);
	assert_true(e.dirty_rate == 0 && e.predicted_ns == 0);
	assert_true(fabs(e.bandwidth - 120e6) < 1);
	e = converge_predict(in, 2);
	assert_true(fabs(e.dirty_rate - 20e6) < 1e-3);
	assert_true(fabs(e.bandwidth - 100e6) < 1e-3);
	assert_true(fabs(e.predicted_ns - (5e6 + 1e6 + 400e6 + 1000e6)) < 1);
	/* Without the migration the send term and its time go. */
	in[0].send_s = in[1].send_s = 0;
	e = converge_predict(in, 2);
	assert_true(fabs(e.predicted_ns - (5e6 + 1e6 + 200e6)) < 1);
}

/* The fixed part is the longest brief freeze of any round so far, and a
 * round that copied nothing in no time leaves the bandwidth as it was. */
static void test_predict_fixed_part(void **state)
{
	struct conv_estimate e;

	(void)state;
	e = converge_predict(sent_in, 3);
	/* 100+30 MB over 1 s; 30 MB in 1.5 s = 20 MB/s, over 0.5 + 0.75 s
	 * = 25 MB: 25/130 s to copy, 25/40 s to send at 30 MB / 0.75 s. */
	assert_true(fabs(e.bandwidth - 130e6) < 1e-3);
	assert_true(fabs(e.dirty_rate - 20e6) < 1e-3);
	assert_true(fabs(e.predicted_ns - (7e6 + 2e6 + 25e6 / 130e6 * 1e9 + 25e6 / 40e6 * 1e9)) <
		    1);
}

static const struct conv_params no_limit = { .downtime_limit_ns = 0, .max_rounds = 100 };

/* A table of untracked-then-tracked rounds copying bytes[i]. */
static void make_rounds(struct conv_round *r, const uint64_t *bytes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		r[i] = (struct conv_round){ .tracked = i > 0, .bytes = bytes[i],
					    .start_ns = i * 1000000000ull, .copy_ns = 100000000,
					    .freeze_ns = 1000000, .collect_ns = 2000000,
					    .seconds = 0.5 };
}

static struct conv_decision decide_last(const struct conv_params *p, const struct conv_round *r,
					size_t n, double level)
{
	struct conv_estimate e = converge_predict(r, n);

	return converge_decide(p, r, n, &e, level);
}

/* A round that wrote nothing predicts exactly its fixed part (1 ms freeze
 * + 2 ms collect): stops at a limit of 3 ms, not at one 1 ns lower. */
static void test_limit_edge(void **state)
{
	uint64_t bytes[] = { 40960, 0 };
	struct conv_params p = { .downtime_limit_ns = 3000000, .max_rounds = 8 };
	struct conv_round r[2];
	struct conv_decision d;

	(void)state;
	make_rounds(r, bytes, 2);
	assert_true(converge_predict(r, 2).predicted_ns == 3e6);
	d = decide_last(&p, r, 2, 0);
	assert_non_null(d.stop_reason);
	assert_string_equal(d.stop_reason, CONV_REASON_LIMIT);
	assert_false(d.raise);
	p.downtime_limit_ns--;
	d = decide_last(&p, r, 2, 0);
	assert_null(d.stop_reason);
	/* Round 1 knows no dirty rate, an untracked round none either: the
	 * limit cannot be met by them, however generous. */
	p.downtime_limit_ns = UINT64_MAX / 2;
	assert_null(decide_last(&p, r, 1, 0).stop_reason);
	r[1].tracked = false;
	assert_true(converge_predict(r, 2).predicted_ns == 0);
	assert_null(decide_last(&p, r, 2, 0).stop_reason);
}

/* 10 pages then 9 (exactly 90%): no longer shrinking; then 8: shrinking.
 * Never judged before round 3, however much round 2 grew. */
static void test_no_shrink_edge(void **state)
{
	uint64_t bytes[] = { 1 << 20, 40960, 36864 };
	struct conv_round r[3];
	struct conv_decision d;

	(void)state;
	make_rounds(r, bytes, 3);
	d = decide_last(&no_limit, r, 3, 0);
	assert_non_null(d.stop_reason);
	assert_string_equal(d.stop_reason, CONV_REASON_NO_SHRINK);
	r[2].bytes = 32768;
	assert_null(decide_last(&no_limit, r, 3, 0).stop_reason);
	r[1].bytes = 8 << 20;
	assert_null(decide_last(&no_limit, r, 2, 0).stop_reason);
	/* The limit wins over the shrink rule when both hold. */
	r[1].bytes = 40960;
	r[2].bytes = 40960;
	d = decide_last(&(struct conv_params){ .downtime_limit_ns = UINT64_MAX / 2,
					       .max_rounds = 8 }, r, 3, 0);
	assert_string_equal(d.stop_reason, CONV_REASON_LIMIT);
}

/* Rounds that never shrink: auto-converge raises 0.2, 0.4, 0.6, 0.8 (one
 * step per round, the level as iter_run accumulates it), then stops at the
 * ceiling; without auto-converge the first such round stops. */
static void test_auto_converge_steps(void **state)
{
	uint64_t bytes[12];
	struct conv_round r[12];
	struct conv_params p = { .max_rounds = 12, .auto_converge = true };
	double want[] = { 0.2, 0.4, 0.6, 0.8 };
	double level = 0;
	size_t raises = 0, k;

	(void)state;
	for (k = 0; k < 12; k++)
		bytes[k] = 40960;
	make_rounds(r, bytes, 12);
	for (k = 1; k <= 12; k++) {
		struct conv_decision d = decide_last(&p, r, k, level);

		if (k < 3) {
			assert_false(d.raise);
			assert_null(d.stop_reason);
			continue;
		}
		if (raises < ARRAY_SIZE(want)) {
			assert_true(d.raise);
			assert_null(d.stop_reason);
			assert_true(fabs(d.level - want[raises]) < 1e-9);
			raises++;
			level = d.level;
			continue;
		}
		assert_false(d.raise);
		assert_true(d.level == level);
		assert_non_null(d.stop_reason);
		assert_string_equal(d.stop_reason, CONV_REASON_NO_SHRINK_MAX);
		break;
	}
	assert_int_equal(k, 7);
	p.auto_converge = false;
	assert_string_equal(decide_last(&p, r, 3, 0).stop_reason, CONV_REASON_NO_SHRINK);
}

/* The cap stops after round max_rounds, not before; a raise due on that
 * round still comes with it (iter_run always set the level there). */
static void test_round_cap(void **state)
{
	uint64_t bytes[] = { 1 << 20, 1 << 19, 1 << 18, 1 << 18 };
	struct conv_params p = { .max_rounds = 3 };
	struct conv_round r[4];
	struct conv_decision d;

	(void)state;
	make_rounds(r, bytes, 4);
	assert_null(decide_last(&p, r, 2, 0).stop_reason);
	d = decide_last(&p, r, 3, 0);
	assert_string_equal(d.stop_reason, CONV_REASON_CAP);
	assert_false(d.raise);
	p.max_rounds = 4;
	p.auto_converge = true;
	d = decide_last(&p, r, 4, 0.4);
	assert_true(d.raise);
	assert_true(fabs(d.level - 0.6) < 1e-9);
	assert_string_equal(d.stop_reason, CONV_REASON_CAP);
	/* At the ceiling on the capped round: the shrink rule's reason. */
	d = decide_last(&p, r, 4, 0.8);
	assert_string_equal(d.stop_reason, CONV_REASON_NO_SHRINK_MAX);
}

/* ---- the copied / in-parent split --------------------------------------- */

#define PS 4096ull
#define P(n) (0x40000000ull + (n) * PS)

struct capture {
	struct page_run runs[1024];
	size_t n, calls;
	size_t batch[16];
	int fail_at;      /* emit call that fails (1-based), 0: none */
};

static int capture_emit(void *arg, const struct page_run *runs, size_t n, struct ferr *err)
{
	struct capture *c = arg;

	if (++c->calls == (size_t)c->fail_at)
		return ferr_new(err, EIO, "emit %zu fails", c->calls);
	if (c->calls <= ARRAY_SIZE(c->batch))
		c->batch[c->calls - 1] = n;
	assert_true(c->n + n <= ARRAY_SIZE(c->runs));
	memcpy(c->runs + c->n, runs, n * sizeof(*runs));
	c->n += n;
	return 0;
}

static void expect_run(const struct capture *c, size_t i, uint64_t start, uint64_t end, bool zero,
		       bool parent)
{
	assert_true(i < c->n);
	if (c->runs[i].start != start || c->runs[i].end != end || c->runs[i].zero != zero ||
	    c->runs[i].parent != parent)
		fail_msg("run %zu: %#llx-%#llx zero %d parent %d, want %#llx-%#llx %d %d", i,
			 (unsigned long long)c->runs[i].start, (unsigned long long)c->runs[i].end,
			 c->runs[i].zero, c->runs[i].parent, (unsigned long long)start,
			 (unsigned long long)end, zero, parent);
}

/* A parent image as the split sees it: its runs and page size. */
static struct img_image parent_of(struct img_run *runs, size_t n)
{
	return (struct img_image){ .runs = runs, .nr_runs = n, .page_size = PS };
}

/* Nothing known (no dirty set): every run goes out as it came, adjacent
 * ones of a kind merged. */
static void test_split_unknown(void **state)
{
	struct capture c = { 0 };
	struct split s;
	struct ferr err;
	struct page_run in[] = { { .start = P(0), .end = P(4) }, { .start = P(4), .end = P(6) }, { .start = P(6), .end = P(8), .zero = true },
				 { .start = P(9), .end = P(10) } };

	(void)state;
	split_init(&s, NULL, NULL, capture_emit, &c);
	for (size_t i = 0; i < ARRAY_SIZE(in); i++)
		assert_int_equal(split_run(&s, &in[i], &err), 0);
	assert_int_equal(c.n, 0);       /* nothing before the flush */
	assert_int_equal(split_flush(&s, &err), 0);
	assert_int_equal(c.n, 3);
	expect_run(&c, 0, P(0), P(6), false, false);
	expect_run(&c, 1, P(6), P(8), true, false);
	expect_run(&c, 2, P(9), P(10), false, false);
	assert_int_equal(split_flush(&s, &err), 0);
	assert_int_equal(c.calls, 1);   /* an empty flush emits nothing */
}

/* Pages 0..9 populated; written since the parent: 2..3; the parent holds
 * 0..5 and 8. Copied: what was written or what the parent lacks. */
static void test_split_dirty_and_held(void **state)
{
	struct range dr[] = { { .start = P(2), .end = P(4) } };
	struct range_list dirty = { dr, 1, 1 };
	struct img_run held[] = { { .vaddr = P(0), .nr_pages = 6 },
				  { .vaddr = P(8), .nr_pages = 1, .flags = IMG_RUN_ZERO } };
	struct img_image parent = parent_of(held, 2);
	struct page_run in = { .start = P(0), .end = P(10) };
	struct capture c = { 0 };
	struct split s;
	struct ferr err;

	(void)state;
	split_init(&s, &dirty, &parent, capture_emit, &c);
	assert_int_equal(split_run(&s, &in, &err), 0);
	assert_int_equal(split_flush(&s, &err), 0);
	assert_int_equal(c.n, 6);
	expect_run(&c, 0, P(0), P(2), false, true);
	expect_run(&c, 1, P(2), P(4), false, false);
	expect_run(&c, 2, P(4), P(6), false, true);
	expect_run(&c, 3, P(6), P(8), false, false);
	expect_run(&c, 4, P(8), P(9), false, true);
	expect_run(&c, 5, P(9), P(10), false, false);
}

/* The cursors carry over from run to run (and VMA to VMA): a dirty range
 * and a parent run spanning several populated runs; a zero run is never
 * split nor marked in-parent; a dirty set without a parent copies all. */
static void test_split_across_runs(void **state)
{
	struct range dr[] = { { .start = P(1), .end = P(3) }, { .start = P(20), .end = P(30) } };
	struct range_list dirty = { dr, 2, 2 };
	struct img_run held[] = { { .vaddr = P(0), .nr_pages = 40 } };
	struct img_image parent = parent_of(held, 1);
	struct page_run in[] = { { .start = P(0), .end = P(2) }, { .start = P(2), .end = P(5), .zero = true }, { .start = P(5), .end = P(22) },
				 { .start = P(25), .end = P(26) }, { .start = P(35), .end = P(45) } };
	struct capture c = { 0 };
	struct split s;
	struct ferr err;

	(void)state;
	split_init(&s, &dirty, &parent, capture_emit, &c);
	for (size_t i = 0; i < ARRAY_SIZE(in); i++)
		assert_int_equal(split_run(&s, &in[i], &err), 0);
	assert_int_equal(split_flush(&s, &err), 0);
	expect_run(&c, 0, P(0), P(1), false, true);
	expect_run(&c, 1, P(1), P(2), false, false);
	expect_run(&c, 2, P(2), P(5), true, false);
	expect_run(&c, 3, P(5), P(20), false, true);
	expect_run(&c, 4, P(20), P(22), false, false);
	expect_run(&c, 5, P(25), P(26), false, false);
	expect_run(&c, 6, P(35), P(40), false, true);
	expect_run(&c, 7, P(40), P(45), false, false);
	assert_int_equal(c.n, 8);

	memset(&c, 0, sizeof(c));
	split_init(&s, &dirty, NULL, capture_emit, &c);
	assert_int_equal(split_run(&s, &in[2], &err), 0);
	assert_int_equal(split_flush(&s, &err), 0);
	assert_int_equal(c.n, 1);
	expect_run(&c, 0, P(5), P(22), false, false);
}

/* More alternating runs than two batches hold: SPLIT_BATCH go out each
 * time the batch is full, the rest at the flush; an emit error comes back from the call that hit it. */
static void test_split_batches(void **state)
{
	struct range dr[SPLIT_BATCH + 50];
	struct range_list dirty = { dr, ARRAY_SIZE(dr), ARRAY_SIZE(dr) };
	struct img_run held[] = { { .vaddr = P(0), .nr_pages = 2 * ARRAY_SIZE(dr) } };
	struct img_image parent = parent_of(held, 1);
	struct page_run in = { .start = P(0), .end = P(2 * ARRAY_SIZE(dr)) };
	struct capture c = { 0 };
	struct split s;
	struct ferr err;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(dr); i++)
		dr[i] = (struct range){ .start = P(2 * i), .end = P(2 * i + 1) };
	split_init(&s, &dirty, &parent, capture_emit, &c);
	assert_int_equal(split_run(&s, &in, &err), 0);
	assert_int_equal(c.calls, 2);
	assert_int_equal(c.batch[0], SPLIT_BATCH);
	assert_int_equal(c.batch[1], SPLIT_BATCH);
	assert_int_equal(split_flush(&s, &err), 0);
	assert_int_equal(c.batch[2], 2 * ARRAY_SIZE(dr) - 2 * SPLIT_BATCH);
	assert_int_equal(c.n, 2 * ARRAY_SIZE(dr));
	for (size_t i = 0; i < c.n; i++)
		expect_run(&c, i, P(i), P(i + 1), false, i % 2);

	memset(&c, 0, sizeof(c));
	c.fail_at = 1;
	split_init(&s, &dirty, &parent, capture_emit, &c);
	ferr_clear(&err);
	assert_int_equal(split_run(&s, &in, &err), -EIO);
	assert_non_null(strstr(err.msg, "emit 1 fails"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recorded_tables),
		cmocka_unit_test(test_recorded_raises),
		cmocka_unit_test(test_same_doubles_as_before),
		cmocka_unit_test(test_predict_send_term),
		cmocka_unit_test(test_predict_fixed_part),
		cmocka_unit_test(test_limit_edge),
		cmocka_unit_test(test_no_shrink_edge),
		cmocka_unit_test(test_auto_converge_steps),
		cmocka_unit_test(test_round_cap),
		cmocka_unit_test(test_split_unknown),
		cmocka_unit_test(test_split_dirty_and_held),
		cmocka_unit_test(test_split_across_runs),
		cmocka_unit_test(test_split_batches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
