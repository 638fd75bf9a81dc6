#!/usr/bin/env bash
# A throwaway single-node Ceph cluster serving S3 on loopback, for tests.
#
#   ceph_rgw.sh start DIR PORT   one ceph-mon, one memstore OSD, one radosgw (beast on
#                                127.0.0.1:PORT); all state, logs and sockets under DIR;
#                                daemon PIDs in DIR/pids ("name pid" per line)
#   ceph_rgw.sh stop DIR         TERM the daemons listed in DIR/pids, KILL after a grace period
#
# Environment (all optional):
#   CEPH_MON_PORT          monitor port (msgr2), default PORT+1
#   CEPH_RGW_ACCESS_KEY    S3 access key of the test user, default videoproc-test-access
#   CEPH_RGW_SECRET_KEY    S3 secret key of the test user, default videoproc-test-secret
#   CEPH_RGW_OWNER_PID     stop the cluster when this process exits (covers a test run that is
#                          killed before its cleanup runs)
#   CEPH_RGW_TIMEOUT       seconds to wait for each step, default 90 (2-core CI machines are slow)
#   CEPH_MEMSTORE_BYTES    RAM cap of the OSD's object store, default 536870912 (512 MiB)
set -euo pipefail

readonly REQUIRED=(ceph ceph-authtool monmaptool ceph-mon ceph-osd radosgw radosgw-admin)
readonly RGW_NAME=client.rgw.gw
TIMEOUT=${CEPH_RGW_TIMEOUT:-90}
GRACE_SECONDS=5

die() {
    echo "ceph_rgw: $*" >&2
    exit 1
}

# Shows why a step failed: the daemons' own output, and the error lines of their logs (the
# full logs are too chatty to tail usefully); then stops whatever was started.
die_with_logs() {
    local dir=$1 file
    shift
    for file in "$dir"/log/*.out; do
        [[ -s "$file" ]] || continue
        echo "---- tail of $file" >&2
        tail -n 15 "$file" >&2
    done
    for file in "$dir"/log/*.log; do
        grep -q ' -1 ' "$file" 2>/dev/null || continue
        echo "---- errors in $file" >&2
        grep ' -1 ' "$file" | tail -n 10 >&2
    done
    stop_watchdog "$dir" >/dev/null 2>&1 || true
    stop_cluster "$dir" >/dev/null 2>&1 || true
    echo "ceph_rgw: $* (full logs in $dir/log)" >&2
    exit 1
}

check_binaries() {
    local bin missing=()
    for bin in "${REQUIRED[@]}"; do
        command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    ((${#missing[@]} == 0)) || die "missing binaries: ${missing[*]}; install them with tests/servers/install-ceph.sh"
}

write_conf() {
    local dir=$1 port=$2 mon_port=$3 fsid=$4
    cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
log to stderr = false
err to stderr = false
mon cluster log file = $dir/log/cluster.log
# One OSD holds every replica; these let pools become active with it alone.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
# A nearly full CI disk must not shut the monitor down; the data lives in RAM anyway.
mon data avail crit = 0
mon data avail warn = 0

[mon]
mon data = $dir/mon/\$cluster-\$id

[osd]
osd data = $dir/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${CEPH_MEMSTORE_BYTES:-536870912}

[$RGW_NAME]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $dir/rgw
rgw thread pool size = 32
rgw dynamic resharding = false
EOF
}

# One keyring for every entity: the monitor imports all of them at mkfs, which saves
# a round of "ceph auth" calls (each is a second of start-up on a slow machine).
make_keyring() {
    local keyring=$1/keyring
    ceph-authtool --create-keyring "$keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$keyring" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
    ceph-authtool "$keyring" --gen-key -n osd.0 \
        --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
    ceph-authtool "$keyring" --gen-key -n "$RGW_NAME" \
        --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
}

# Daemons run in the foreground (-f) as background jobs so their PIDs are exact; their
# output goes to files so a caller capturing this script's output does not wait on them.
launch() {
    local dir=$1 name=$2
    shift 2
    setsid "$@" -f -c "$dir/ceph.conf" </dev/null >"$dir/log/$name.out" 2>&1 &
    echo "$name $!" >>"$dir/pids"
}

daemon_alive() {
    local dir=$1 name=$2 pid
    pid=$(awk -v n="$name" '$1 == n {print $2}' "$dir/pids")
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

start_mon() {
    local dir=$1 mon_port=$2 fsid=$3
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
    ceph-mon --mkfs -i a -c "$dir/ceph.conf" --monmap "$dir/monmap" --keyring "$dir/keyring" \
        >"$dir/log/mon-mkfs.out" 2>&1 || die_with_logs "$dir" "ceph-mon --mkfs failed"
    launch "$dir" mon ceph-mon -i a
}

start_osd() {
    local dir=$1 uuid
    uuid=$(cat /proc/sys/kernel/random/uuid)
    timeout "$TIMEOUT" ceph -c "$dir/ceph.conf" osd new "$uuid" 0 >"$dir/log/osd-new.out" 2>&1 \
        || die_with_logs "$dir" "monitor did not register osd.0 within ${TIMEOUT}s"
    mkdir -p "$dir/osd/ceph-0"
    ceph-osd -i 0 --mkfs --osd-uuid "$uuid" -c "$dir/ceph.conf" >"$dir/log/osd-mkfs.out" 2>&1 \
        || die_with_logs "$dir" "ceph-osd --mkfs failed"
    launch "$dir" osd ceph-osd -i 0
}

start_rgw() {
    local dir=$1
    mkdir -p "$dir/rgw"
    launch "$dir" rgw radosgw -n "$RGW_NAME"
}

# Any HTTP status line means beast is serving; bash's /dev/tcp avoids needing curl.
http_answers() {
    local port=$1 line
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    read -r -t 5 line <&3 || line=
    exec 3<&-
    [[ "$line" == HTTP/1.1* ]]
}

wait_for_rgw() {
    local dir=$1 port=$2 deadline=$((SECONDS + TIMEOUT)) name
    until http_answers "$port" 2>/dev/null; do
        for name in mon osd rgw; do
            daemon_alive "$dir" "$name" || die_with_logs "$dir" "$name daemon exited during start-up"
        done
        ((SECONDS < deadline)) || die_with_logs "$dir" "radosgw did not answer on 127.0.0.1:$port within ${TIMEOUT}s"
        sleep 0.5
    done
}

create_user() {
    local dir=$1
    timeout "$TIMEOUT" radosgw-admin -c "$dir/ceph.conf" -n client.admin user create \
        --uid=test --display-name=test \
        --access-key="${CEPH_RGW_ACCESS_KEY:-videoproc-test-access}" \
        --secret-key="${CEPH_RGW_SECRET_KEY:-videoproc-test-secret}" \
        >"$dir/log/user-create.out" 2>&1 || die_with_logs "$dir" "radosgw-admin user create failed"
}

# Runs detached; stops the cluster once the owning process is gone, even if it was killed.
start_watchdog() {
    local dir=$1 owner=$2
    setsid bash "$0" _watch "$dir" "$owner" </dev/null >"$dir/log/watchdog.out" 2>&1 &
    echo "$!" >"$dir/watchdog.pid"
}

start_cluster() {
    local dir=$1 port=$2 mon_port=${CEPH_MON_PORT:-$(($2 + 1))} fsid
    check_binaries
    [[ ! -s "$dir/pids" ]] || stop_cluster "$dir"
    mkdir -p "$dir"/{mon,osd,run,log}
    : >"$dir/pids"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$dir" "$port" "$mon_port" "$fsid"
    make_keyring "$dir"
    [[ -z "${CEPH_RGW_OWNER_PID:-}" ]] || start_watchdog "$dir" "$CEPH_RGW_OWNER_PID"
    start_mon "$dir" "$mon_port" "$fsid"
    start_osd "$dir"
    start_rgw "$dir"
    wait_for_rgw "$dir" "$port"
    create_user "$dir"
    echo "ceph_rgw: S3 on http://127.0.0.1:$port (state in $dir)"
}

# Checks the PID still runs the binary we started, so a recycled PID is never killed.
pid_runs() {
    local pid=$1 binary=$2
    [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$binary"
}

binary_of() {
    case $1 in
    mon) echo ceph-mon ;;
    osd) echo ceph-osd ;;
    rgw) echo radosgw ;;
    esac
}

# PIDs of the named daemons that are still running.
live_pids() {
    local dir=$1 name pid
    shift
    while read -r name pid; do
        [[ " $* " == *" $name "* ]] || continue
        pid_runs "$pid" "$(binary_of "$name")" && echo "$pid"
    done <"$dir/pids"
    return 0
}

stop_daemons() {
    local dir=$1 pids deadline
    shift
    pids=$(live_pids "$dir" "$@")
    # shellcheck disable=SC2086  # word splitting of the PID list is intended
    [[ -z "$pids" ]] || kill -TERM $pids 2>/dev/null || true
    deadline=$((SECONDS + GRACE_SECONDS))
    while [[ -n "$(live_pids "$dir" "$@")" ]] && ((SECONDS < deadline)); do
        sleep 0.2
    done
    pids=$(live_pids "$dir" "$@")
    # shellcheck disable=SC2086
    [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
}

# The monitor goes last: an OSD whose monitor is gone waits seconds to report its own shutdown.
stop_cluster() {
    local dir=$1
    [[ -f "$dir/pids" ]] || return 0
    stop_daemons "$dir" rgw osd
    stop_daemons "$dir" mon
    rm -f "$dir/pids"
}

stop_watchdog() {
    local dir=$1 pid
    [[ -f "$dir/watchdog.pid" ]] || return 0
    pid=$(<"$dir/watchdog.pid")
    pid_runs "$pid" ceph_rgw.sh && kill -TERM "$pid" 2>/dev/null || true
    rm -f "$dir/watchdog.pid"
}

watch_owner() {
    local dir=$1 owner=$2
    while kill -0 "$owner" 2>/dev/null; do
        sleep 2
    done
    stop_cluster "$dir"
}

main() {
    case "${1:-}:$#" in
    start:3)
        [[ "$3" =~ ^[0-9]+$ ]] || die "PORT must be a number (got '$3')"
        start_cluster "$(realpath -m "$2")" "$3"
        ;;
    stop:2)
        stop_watchdog "$(realpath -m "$2")"
        stop_cluster "$(realpath -m "$2")"
        ;;
    _watch:3) watch_owner "$2" "$3" ;;
    *) die "usage: $0 start DIR PORT | $0 stop DIR (got: $*)" ;;
    esac
}

main "$@"
