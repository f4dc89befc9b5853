#!/usr/bin/env bash
# Set up a hyperlab host (Debian 12): install the Debian packages listed in
# scripts/packages/*.txt and make sure libvirtd answers on qemu:///system.
#
# Idempotent: safe to run any number of times. It does NOT pip-install hyperlab
# (CI does `pip install -e '.[test]'` itself).
#
# Where PID 1 is systemd, the daemons are enabled through systemctl. Where no
# init system runs daemons (containers, CI machines), virtlogd and libvirtd are
# started here in the background (`-d`) unless already running.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pkgdir="$here/packages"
log() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
    die "must run as root (try: sudo $0)"
fi

# ---------------------------------------------------------------- packages
wanted=()
shopt -s nullglob
for f in "$pkgdir"/*.txt; do
    while IFS= read -r line || [[ -n $line ]]; do
        line="${line%%#*}"
        for word in $line; do wanted+=("$word"); done
    done <"$f"
done
shopt -u nullglob
[[ ${#wanted[@]} -gt 0 ]] || die "no packages found in $pkgdir/*.txt"

missing=()
for p in "${wanted[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    if [[ $status != "install ok installed" ]]; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    log "all ${#wanted[@]} Debian packages already installed"
else
    log "installing ${#missing[@]} missing package(s): ${missing[*]}"
    log "running: apt-get update"
    apt-get -o DPkg::Lock::Timeout=600 update -q
    log "running: apt-get install -y --no-install-recommends ${missing[*]}"
    # DPkg::Lock::Timeout: wait for another apt/dpkg run instead of failing.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi

# ---------------------------------------------------------------- /dev/kvm
# udev gives /dev/kvm to group kvm (0660). Where no udev runs it stays root:root 0600; libvirtd
# then probes QEMU with KVM as root, finds KVM unusable for its qemu user, throws its capability
# cache away on every API call and probes again: each `virsh define` took about a minute.
if [[ -c /dev/kvm ]] && getent group kvm >/dev/null; then
    if [[ "$(stat -c '%G %a' /dev/kvm)" != "kvm 660" ]]; then
        log "giving /dev/kvm to group kvm, mode 0660 (what udev would do)"
        chown root:kvm /dev/kvm
        chmod 0660 /dev/kvm
    fi
fi

# ---------------------------------------------------------------- daemons
pid1="$(cat /proc/1/comm 2>/dev/null || echo unknown)"
if [[ -d /run/systemd/system && $pid1 == systemd ]]; then
    log "PID 1 is systemd: systemctl enable --now virtlogd libvirtd"
    systemctl enable --now virtlogd libvirtd
else
    log "PID 1 is '$pid1' (not systemd): managing libvirt daemons directly"

    # running DAEMON PIDFILE -> true when a live process of that name owns it
    running() {
        local name=$1 pidfile=$2 pid
        if [[ -s $pidfile ]]; then
            pid="$(cat "$pidfile")"
            if [[ -d /proc/$pid ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]; then
                return 0
            fi
        fi
        pidof "$name" >/dev/null 2>&1
    }

    mkdir -p /var/log/libvirt /run/libvirt
    if running virtlogd /run/virtlogd.pid; then
        log "virtlogd already running (pid $(pidof virtlogd))"
    else
        log "starting: virtlogd -d"
        LIBVIRT_LOG_OUTPUTS="${LIBVIRT_LOG_OUTPUTS:-3:file:/var/log/libvirt/virtlogd.log}" \
            virtlogd -d
    fi
    if running libvirtd /run/libvirtd.pid; then
        log "libvirtd already running (pid $(pidof libvirtd))"
    else
        log "starting: libvirtd -d (log: /var/log/libvirt/libvirtd.log)"
        # Without journald libvirtd would log nowhere useful: send warnings
        # and errors to a file (the environment overrides libvirtd.conf).
        LIBVIRT_LOG_OUTPUTS="${LIBVIRT_LOG_OUTPUTS:-3:file:/var/log/libvirt/libvirtd.log}" \
            libvirtd -d >>/var/log/libvirt/libvirtd-stdio.log 2>&1
    fi
fi

# ---------------------------------------------------------------- wait
log "waiting for qemu:///system to answer (up to 60 s)"
deadline=$((SECONDS + 60))
until out="$(virsh -c qemu:///system version 2>&1)"; do
    if (( SECONDS >= deadline )); then
        printf '%s\n' "$out" >&2
        die "libvirtd did not answer on qemu:///system within 60 s; read /var/log/libvirt/libvirtd.log and /var/log/libvirt/libvirtd-stdio.log (or 'journalctl -u libvirtd' under systemd)"
    fi
    sleep 1
done
log "libvirt answers: $(printf '%s' "$out" | grep -i 'running hypervisor' || printf '%s' "$out" | head -n1)"
log "done"
