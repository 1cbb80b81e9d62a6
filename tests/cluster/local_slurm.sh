#!/usr/bin/env bash
# local_slurm.sh - a private, single-node SLURM cluster on localhost for sciclr's cluster test.
#
# Why: the SLURM profile (workflow/profiles/slurm) must be proven against a real slurmctld,
# sbatch and srun, not a mock. Debian's slurm-wlm 22.05 + munge are enough for that on one
# machine, without systemd (containers, CI sandboxes).
#
# Everything lives in one state directory: munge key and socket, slurm.conf, spool, logs and
# the PIDs of the three daemons started here. Nothing is written to /etc and no system daemon
# is touched: clients find the cluster through SLURM_CONF=<dir>/slurm.conf (sbatch exports
# it into the jobs; srun inside a job needs one more step, see below), munge through
# AuthInfo=socket=<dir>/munge/munge.socket, and the ports are picked free at start, so this
# cluster can run next to another one.
#
# One catch: snakemake-executor-plugin-slurm-jobstep (0.6.1) removes every SLURM_* variable
# except the job-identity ones from the environment of the `srun` it starts inside each job,
# SLURM_CONF included; srun then looks for /etc/slurm/slurm.conf, then DNS SRV records, and
# dies ("Could not establish a configuration source"). A real cluster has /etc/slurm, this
# one must not touch it: so <dir>/bin holds thin wrappers (srun, sbatch, squeue, ...) that set
# SLURM_CONF and exec the real client. Put <dir>/bin first on PATH when using the cluster.
#
# Usage:
#   local_slurm.sh start [DIR]   start munged, slurmctld and slurmd; wait until the node is
#                                idle; print shell assignments on stdout: LOCAL_SLURM_DIR,
#                                SLURM_CONF, LOCAL_SLURM_BIN (prepend to PATH), and
#                                LOCAL_SLURM_PARTITION.
#                                DIR defaults to a new mktemp dir under /tmp (keep it short:
#                                unix socket paths are limited to 107 bytes).
#   local_slurm.sh stop DIR      stop exactly the daemons recorded in DIR/pids, by PID.
#   local_slurm.sh status DIR    daemons and sinfo.
#
# Knobs (environment):
#   LOCAL_SLURM_PARTITION  partition name (default: sciclr-test; also the default partition)
#   LOCAL_SLURM_CPUS       CPUs of the node (default: nproc)
#   LOCAL_SLURM_MEM_MB     RealMemory of the node in MB (default: 50% of MemTotal)
#   LOCAL_SLURM_WAIT_S     seconds to wait for the node to become idle (default: 60)
#
# Needs: root (slurmd runs jobs as the submitting user), packages slurm-wlm and munge
#   (apt-get install -y slurm-wlm munge), python3 (to pick free ports).
set -euo pipefail

log() { printf '[local_slurm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A recorded PID is ours only if the process is alive and its command line names our state
# dir (every daemon gets a path inside it): guards against PID reuse after a crash.
owned_pid() { # pid dir
    local pid=$1 dir=$2
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/"
}

do_stop() { # dir
    local dir=$1 name pid
    [ -f "$dir/pids" ] || { log "no $dir/pids: nothing to stop"; return 0; }
    # reverse start order: slurmd, slurmctld, munged
    tac "$dir/pids" | while read -r name pid; do
        if ! owned_pid "$pid" "$dir"; then
            log "$name (pid $pid) not running"
            continue
        fi
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do owned_pid "$pid" "$dir" || break; sleep 0.1; done
        if owned_pid "$pid" "$dir"; then
            log "$name (pid $pid) still alive after 5 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    mv "$dir/pids" "$dir/pids.stopped"
}

do_status() { # dir
    local dir=$1 name pid
    [ -f "$dir/pids" ] || { echo "not running (no $dir/pids)"; return 0; }
    while read -r name pid; do
        if owned_pid "$pid" "$dir"; then echo "$name: running (pid $pid)"
        else echo "$name: not running (pid $pid recorded)"; fi
    done <"$dir/pids"
    SLURM_CONF="$dir/slurm.conf" sinfo 2>&1 || true
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# the first ELF executable of that name on PATH (skips wrappers of an earlier cluster)
real_binary() { # name
    local d
    local IFS=:
    for d in $PATH; do
        [ -x "$d/$1" ] && [ "$(head -c 4 "$d/$1" | tr -d '\0')" = $'\x7fELF' ] && { echo "$d/$1"; return 0; }
    done
    return 1
}

# start a daemon in the foreground mode of its own, detached from our stdin/stdout, and record
# the PID of exactly that process
spawn() { # name logfile cmd...
    local name=$1 out=$2; shift 2
    "$@" </dev/null >"$out" 2>&1 &
    local pid=$!
    echo "$name $pid" >>"$DIR/pids"
    log "started $name (pid $pid)"
}

do_start() { # [dir]
    [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd starts jobs as the submitting user)"
    local missing=()
    for b in munged munge slurmctld slurmd sbatch sinfo; do
        command -v "$b" >/dev/null || missing+=("$b")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: apt-get install -y slurm-wlm munge"

    DIR=${1:-$(mktemp -d /tmp/sciclr-slurm.XXXXXX)}
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    [ ${#DIR} -le 60 ] || die "state dir path too long for unix sockets (${#DIR} > 60): $DIR"
    if [ -f "$DIR/pids" ]; then die "$DIR/pids exists: stop that cluster first ($0 stop $DIR)"; fi
    # whatever goes wrong from here on, stop the daemons already started
    STARTED=0
    trap '[ "$STARTED" = 1 ] || do_stop "$DIR"' EXIT

    local partition=${LOCAL_SLURM_PARTITION:-sciclr-test}
    local cpus=${LOCAL_SLURM_CPUS:-$(nproc)}
    local mem_mb=${LOCAL_SLURM_MEM_MB:-$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.5}' /proc/meminfo)}
    local wait_s=${LOCAL_SLURM_WAIT_S:-60}
    local user; user=$(id -un)
    local t0; t0=$(date +%s)
    mkdir -p "$DIR"/{munge,ctld,spool,log}

    # --- munge: own key, own socket; munged insists on a private key dir and key file
    chmod 0700 "$DIR/munge"
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$DIR/munge/munge.key"
    local sock="$DIR/munge/munge.socket"
    spawn munged "$DIR/log/munged.out" munged --foreground --force \
        --socket="$sock" --key-file="$DIR/munge/munge.key" --pid-file="$DIR/munge/munged.pid" \
        --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    for _ in $(seq 1 50); do munge -S "$sock" -n 2>/dev/null | unmunge -S "$sock" >/dev/null 2>&1 && break; sleep 0.1; done
    munge -S "$sock" -n | unmunge -S "$sock" >/dev/null || die "munged does not answer, see $DIR/log/munged.log"

    # --- slurm.conf
    local ctld_port d_port
    ctld_port=$(free_port); d_port=$(free_port)
    while [ "$d_port" = "$ctld_port" ]; do d_port=$(free_port); done
    cat >"$DIR/slurm.conf" <<EOF
# written by sciclr tests/cluster/local_slurm.sh; single node, no accounting
ClusterName=sciclrtest
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/ctld/slurmctld.pid
SlurmdPidFile=$DIR/spool/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/plugstack.conf
MailProg=/bin/true
# No systemd, so no delegated cgroup tree: track job processes through /proc. task/affinity
# only needs sched_setaffinity and keeps 'srun --cpu-bind=q' (used by the jobstep plugin) quiet.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
# CPUs and memory are consumable, as on a real cluster: mem_mb/threads requests must fit.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
# Without slurmdbd the Snakemake plugin must use 'squeue --states=all' for job status, which
# only sees finished jobs for MinJobAge seconds (plugin: MinJobAge >= 3 x
# slurm-init-seconds-before-status-checks, and >= 120 s to accept squeue at all).
MinJobAge=600
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$partition Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$DIR/plugstack.conf"
    export SLURM_CONF="$DIR/slurm.conf"

    # client wrappers that survive the jobstep plugin's removal of SLURM_CONF (see top)
    mkdir -p "$DIR/bin"
    local tool real
    for tool in srun sbatch salloc squeue sinfo scontrol scancel sacct sacctmgr sshare sstat; do
        real=$(real_binary "$tool") || continue
        printf '#!/bin/sh\nexport SLURM_CONF=%s/slurm.conf\nexec %s "$@"\n' "$DIR" "$real" >"$DIR/bin/$tool"
        chmod 0755 "$DIR/bin/$tool"
    done

    # --- daemons, in the foreground mode (-D) so that $! is the daemon itself
    spawn slurmctld "$DIR/log/slurmctld.out" slurmctld -D -c -f "$DIR/slurm.conf"
    spawn slurmd "$DIR/log/slurmd.out" slurmd -D -f "$DIR/slurm.conf" -N localhost

    local state=""
    for _ in $(seq 1 $((wait_s * 2))); do
        state=$(sinfo -h -n localhost -o %T 2>/dev/null | head -1 || true)
        case "$state" in idle | mixed | allocated) break ;; esac
        sleep 0.5
    done
    case "$state" in
        idle | mixed | allocated) ;;
        *)
            log "node state is '${state:-unknown}' after ${wait_s} s"
            tail -n 20 "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log "$DIR"/log/*.out >&2 || true
            exit 1
            ;;
    esac
    STARTED=1
    log "SLURM up in $(($(date +%s) - t0)) s: node localhost $state, partition $partition, $cpus CPUs, $mem_mb MB"
    # machine-readable result (eval-able): the test and users read these
    echo "LOCAL_SLURM_DIR=$DIR"
    echo "SLURM_CONF=$DIR/slurm.conf"
    echo "LOCAL_SLURM_BIN=$DIR/bin"
    echo "LOCAL_SLURM_PARTITION=$partition"
}

case "${1:-}" in
    start) do_start "${2:-}" ;;
    stop) [ -n "${2:-}" ] || die "usage: $0 stop DIR"; do_stop "$(cd "$2" && pwd)" ;;
    status) [ -n "${2:-}" ] || die "usage: $0 status DIR"; do_status "$(cd "$2" && pwd)" ;;
    *) echo "usage: $0 start [DIR] | stop DIR | status DIR" >&2; exit 2 ;;
esac
