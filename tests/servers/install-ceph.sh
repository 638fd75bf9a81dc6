#!/usr/bin/env bash
# Installs the Ceph daemons the S3 tests run against (Debian/Ubuntu, as root).
# Idempotent: exits at once when every binary is already on PATH.
set -euo pipefail

readonly BINARIES=(ceph ceph-authtool monmaptool ceph-mon ceph-osd radosgw radosgw-admin)
readonly PACKAGES=(radosgw ceph-mon ceph-osd ceph-common)

missing_binaries() {
    local bin
    for bin in "${BINARIES[@]}"; do
        command -v "$bin" >/dev/null 2>&1 || echo "$bin"
    done
}

# An empty package index (fresh container) makes apt-get install fail with
# "Unable to locate package"; refresh it only then, to keep reruns offline.
index_has_radosgw() {
    apt-cache policy radosgw 2>/dev/null | grep -q 'Candidate: [0-9]'
}

main() {
    if [[ -z "$(missing_binaries)" ]]; then
        echo "install-ceph: already installed"
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-ceph: must run as root to apt-get install ${PACKAGES[*]}" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    index_has_radosgw || apt-get update
    apt-get install -y --no-install-recommends "${PACKAGES[@]}"
    local still_missing
    still_missing=$(missing_binaries)
    if [[ -n "$still_missing" ]]; then
        echo "install-ceph: still missing after install: $still_missing" >&2
        return 1
    fi
    echo "install-ceph: installed ${PACKAGES[*]}"
}

main "$@"
