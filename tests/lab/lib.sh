# Shared helpers for the lab tests (sourced). Each test brings the lab up
# itself and tears it down on exit, whatever happens.
set -euo pipefail
ROOT="${KVF_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
LAB="$ROOT/deploy/lab/lab.sh"
SKIP=77

skip() { echo "SKIP: $*"; exit $SKIP; }
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "PASS: $*"; }

need_root() {
  [ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, TUN devices, tc)"
  [ -c /dev/net/tun ] || skip "needs /dev/net/tun (CONFIG_TUN)"
  command -v redis-server >/dev/null || skip "redis-server is not installed (deploy/install-deps.sh)"
}

lab_up() {
  trap 'rc=$?; "$LAB" down >/dev/null 2>&1 || true; exit $rc' EXIT
  "$LAB" up "$@"
  eval "$("$LAB" env)"
}

# in_ns NS CMD...: runs a command inside a lab namespace.
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }

# approx VALUE TARGET TOLERANCE: succeeds when |VALUE-TARGET| <= TOLERANCE.
approx() { python3 -c "import sys; sys.exit(0 if abs($1-($2)) <= $3 else 1)"; }

link_stat() { cat "/sys/class/net/$2/statistics/$3" 2>/dev/null || ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
ns_link_stat() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
