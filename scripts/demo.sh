#!/bin/sh
# The README's first command (`make demo`): ferry's main job on a built-in
# workload. Grows with each milestone; now: probe the kernel.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
echo "== ferry check: what this kernel offers"
"$B/ferry" check
