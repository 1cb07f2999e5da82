#!/usr/bin/env bash
# Start a single-node SLURM cluster for the tests: munged, slurmctld and slurmd on this
# machine, one partition, a node with this machine's CPUs and memory and one GPU gres
# whose device is /dev/null (enough for --gpus to be scheduled and exported). Accounting
# is off, so Snakemake must query job status with squeue. Installs Debian's slurm-wlm and
# munge when missing (needs root). Prints the state folder; stop with stop-slurm.sh.
set -euo pipefail
STATE=${BGSHIFT_SLURM_STATE:-/tmp/bgshift-slurm}
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
mkdir -p "$STATE"/{state,spool,log}

# munge: its key, runtime and log folders must belong to the munge user
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

HOST=$(hostname -s)
NODE=$(slurmd -C | head -n 1)  # NodeName=... CPUs=... RealMemory=... as this machine has them
mkdir -p /etc/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=bgshift
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
MinJobAge=3600
SlurmdTimeout=120
$NODE Gres=gpu:1 State=UNKNOWN
PartitionName=gpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
echo "NodeName=$HOST Name=gpu File=/dev/null" > /etc/slurm/gres.conf
rm -f /etc/slurm/cgroup.conf  # SLURM 22.05 autodetects the cgroup version

# ask SLURM itself whether its daemons answer (a dead or zombie process may still be listed)
timeout 5 scontrol ping 2>/dev/null | grep -q "is UP" || slurmctld -i
[ "$(timeout 3 sinfo -h -n "$HOST" -o %T 2>/dev/null)" = "idle" ] || slurmd 2>/dev/null || true
timeout 5 scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true  # a node marked down earlier
deadline=$((SECONDS + 60))
state=unknown
while [ $SECONDS -lt $deadline ]; do
  state=$(timeout 3 sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
  if [ "$state" = "idle" ]; then echo "$STATE"; exit 0; fi
  sleep 1
done
echo "SLURM node did not become idle within 60 s (state: ${state:-unknown}); logs in $STATE/log" >&2
tail -n 20 "$STATE"/log/*.log >&2 || true
exit 1
