/* The convergence model (see converge.h and iter.h). The arithmetic keeps
 * the order iter_run always used, so a recorded table replays to the same
 * doubles. */
#include "dump/converge.h"

struct conv_estimate converge_predict(const struct conv_round *r, size_t n)
{
	const struct conv_round *last = &r[n - 1];
	struct conv_estimate e = { 0 };
	uint64_t copy_bytes = 0, copy_ns = 0, fixed_ns = 0;

	/* Bandwidth over all rounds; the fixed part of a freeze is the
	 * longest brief freeze seen so far. */
	for (size_t i = 0; i < n; i++) {
		copy_bytes += r[i].bytes;
		copy_ns += r[i].copy_ns;
		if (r[i].freeze_ns > fixed_ns)
			fixed_ns = r[i].freeze_ns;
	}
	e.bandwidth = copy_ns ? copy_bytes / (copy_ns / 1e9) : 0;
	if (n > 1 && last->tracked) {
		/* The dirty set is taken at the start of a round: the interval
		 * between two starts is what the target wrote in. A migration
		 * sends the round before the next one starts: that time is part
		 * of the round, and its bytes cross the link at the send rate. */
		double interval = (last->start_ns - r[n - 2].start_ns) / 1e9;
		double send_bw = last->send_s > 0 ? last->bytes / last->send_s : 0;
		double next_bytes;

		e.dirty_rate = interval > 0 ? last->bytes / interval : 0;
		next_bytes = e.dirty_rate * (last->seconds + last->send_s);
		e.predicted_ns = fixed_ns + last->collect_ns +
				 (e.bandwidth > 0 ? next_bytes / e.bandwidth * 1e9 : 0) +
				 (send_bw > 0 ? next_bytes / send_bw * 1e9 : 0);
	}
	return e;
}

struct conv_decision converge_decide(const struct conv_params *p, const struct conv_round *r,
				     size_t n, const struct conv_estimate *e, double level)
{
	struct conv_decision d = { .level = level };
	const struct conv_round *last = &r[n - 1];

	if (n > 1 && last->tracked && e->predicted_ns <= p->downtime_limit_ns) {
		d.stop_reason = CONV_REASON_LIMIT;
	} else if (n > 2 && last->bytes >= r[n - 2].bytes * CONV_SHRINK) {
		/* Not shrinking: the target writes about as fast as ferry
		 * copies. Slow it down if allowed, else more rounds are waste. */
		if (p->auto_converge && level < CONV_THROTTLE_MAX) {
			d.raise = true;
			d.level = level + CONV_THROTTLE_STEP;
		} else {
			d.stop_reason = p->auto_converge ? CONV_REASON_NO_SHRINK_MAX
							 : CONV_REASON_NO_SHRINK;
		}
	}
	if (!d.stop_reason && n >= p->max_rounds)
		d.stop_reason = CONV_REASON_CAP;
	return d;
}
