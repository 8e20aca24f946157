/* The convergence model of the iterative loop (see iter.h) as pure
 * functions: from the rounds measured so far, the freeze a final dump would
 * take now, and whether to go on, stop (and why) or raise the throttle. No
 * clock, no I/O: iter_run measures, these decide, and unit tests replay
 * recorded round tables through them. */
#ifndef FERRY_DUMP_CONVERGE_H
#define FERRY_DUMP_CONVERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONV_SHRINK 0.9          /* a round must copy less than this share of the last */
#define CONV_THROTTLE_STEP 0.2   /* auto-converge raises the throttle by this ... */
#define CONV_THROTTLE_MAX 0.8    /* ... while it is below this */

#define CONV_REASON_LIMIT "the predicted freeze fits the downtime limit"
#define CONV_REASON_NO_SHRINK "rounds stopped shrinking"
#define CONV_REASON_NO_SHRINK_MAX "rounds stopped shrinking at the highest throttle"
#define CONV_REASON_CAP "the round limit"

/* What one pre-dump round measured: the model's whole input. */
struct conv_round {
	bool tracked;            /* only the dirty set was copied */
	uint64_t bytes;          /* copied */
	uint64_t start_ns;       /* when it began: its dirty set was taken then */
	uint64_t copy_ns;        /* reading and writing its pages */
	uint64_t freeze_ns;      /* brief freezes it needed */
	uint64_t collect_ns;     /* asking the tracker what was written */
	double seconds;          /* the round, start to end */
	double send_s;           /* a migration sending it (and the destination
				    taking it); 0 without one */
};

struct conv_estimate {
	double dirty_rate;       /* bytes/s the target wrote (0 in round 1) */
	double bandwidth;        /* bytes/s copied, all rounds so far */
	double predicted_ns;     /* freeze if the final dump came now (0 in round 1
				    or an untracked round) */
};

struct conv_params {
	uint64_t downtime_limit_ns;
	unsigned max_rounds;
	bool auto_converge;
};

struct conv_decision {
	const char *stop_reason; /* NULL: another round */
	bool raise;              /* auto-converge: the throttle goes up to level */
	double level;            /* the throttle for what comes next */
};

/* The estimate after the last of rounds r[0..n), n >= 1. */
struct conv_estimate converge_predict(const struct conv_round *r, size_t n);

/* After the last of rounds r[0..n), whose estimate is e, with the throttle
 * at level during it. The round cap may come with a raise: the level is
 * still set (and its method reported), as it always was. */
struct conv_decision converge_decide(const struct conv_params *p, const struct conv_round *r,
				     size_t n, const struct conv_estimate *e, double level);

#endif
