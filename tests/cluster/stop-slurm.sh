#!/usr/bin/env bash
# Stop the daemons start-slurm.sh started, and wait until they are gone.
for daemon in slurmd slurmctld munged; do
  pkill -x "$daemon" || true
done
for _ in $(seq 1 20); do
  pgrep -x 'slurmd|slurmctld|munged' >/dev/null || exit 0
  sleep 0.5
done
pkill -9 -x 'slurmd|slurmctld|munged' || true
