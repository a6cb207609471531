# Shared by tools/demo and tools/test: install what snatgw needs from Debian 12 and prepare
# hugepages. Sourced, not run. Everything here is idempotent.

SNATGW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Build and test dependencies, Debian 12 package names.
SNATGW_PACKAGES=(
    g++ pkg-config meson ninja-build
    libdpdk-dev dpdk
    libboost-program-options-dev nlohmann-json3-dev libspdlog-dev
    libcpp-httplib-dev  # the Prometheus /metrics endpoint
    libgtest-dev
)

# What the lab and the integration tests run: real Linux stacks, servers and clients. Every
# command a test or the lab calls is here, so that no test is skipped for a missing tool.
SNATGW_LAB_PACKAGES=(
    iproute2             # ip, ss, and nstat (the TCP counters the tests assert on)
    ethtool procps coreutils util-linux  # ethtool, sysctl, timeout, flock
    nginx-light iperf3 curl iputils-ping traceroute tcpdump python3 python3-scapy
    iptables             # the kernel gateway's SNAT; the floods drop the flooder's own replies
    hping3               # the silent SYN flood (syn_flood)
    prometheus dpdk-dev  # promtool checks /metrics; dpdk-telemetry.py queries telemetry
    conntrack            # the kernel gateway's counters (tools/lab counters and compare, kernel mode)
    clang libclang-rt-14-dev  # libFuzzer (tools/fuzz)
)

snatgw_log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

snatgw_require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "run this as root: it installs packages, reserves hugepages and runs DPDK" >&2
        exit 1
    fi
}

snatgw_install_packages() {
    local missing=()
    for p in "${SNATGW_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "packages: all present"
        return
    fi
    echo "packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages such as prometheus come with a service: install them without starting any
    # (we only want their tools), unless the machine already has a policy of its own.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
    fi
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    local rc=$?
    [ "$own_policy" -eq 1 ] && rm -f "$policy"
    return $rc
}

# Reserve 2 MiB hugepages if fewer than $1 are there. Prints nothing on success; failure is not
# fatal (callers fall back to --no-huge).
snatgw_hugepages() {
    local want="$1" have
    have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
    if [ "$have" -lt "$want" ]; then
        echo "$want" > /proc/sys/vm/nr_hugepages 2>/dev/null || true
        have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
    fi
    echo "hugepages: $have x 2 MiB"
    [ "$have" -ge "$want" ]
}

# meson setup (or reconfigure) + ninja. $1 = build dir, rest = meson options.
snatgw_build() {
    local dir="$1"; shift
    if [ -f "$SNATGW_ROOT/$dir/build.ninja" ]; then
        meson setup --reconfigure "$SNATGW_ROOT/$dir" "$SNATGW_ROOT" "$@" >/dev/null
    else
        meson setup "$SNATGW_ROOT/$dir" "$SNATGW_ROOT" "$@" >/dev/null
    fi
    ninja -C "$SNATGW_ROOT/$dir"
}
