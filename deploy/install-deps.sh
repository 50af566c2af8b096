#!/usr/bin/env bash
# Installs every Debian package kvferry needs to build, test, run the demo and
# the benchmarks. Idempotent: does nothing when all packages are present, and
# runs `apt-get update` only when something is missing.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang llvm lld libclang-rt-14-dev
  clang-format clang-tidy
  # eBPF
  libbpf-dev bpftool libelf-dev zlib1g-dev linux-libc-dev
  # libraries
  liburing-dev libhiredis-dev libpcap-dev dpdk-dev libdpdk-dev
  libzstd-dev libxxhash-dev libcli11-dev libtomlplusplus-dev libspdlog-dev
  nlohmann-json3-dev libssl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools python3 python3-redis openssl
  iproute2 ethtool tcpdump iputils-ping iperf3 fio procps psmisc util-linux kmod
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian redis-server package starts a system instance; the project runs
# its own servers on their own ports and namespaces, so the system one is left
# alone but never relied on.
echo "install-deps: done"
