#!/usr/bin/env bash
# lab.sh down leaves nothing behind: no namespace, no process, no link; and
# up cleans leftovers of an earlier run first.
source "$(dirname "$0")/lib.sh"
need_root
links_before=$(ip -o link | wc -l)
"$LAB" up --delay-ms 1
"$LAB" up --delay-ms 1   # a second up over a running lab must succeed
"$LAB" status >/dev/null || fail "status does not report a full lab"
eval "$("$LAB" env)"
"$LAB" down
left_ns=$(ip netns list | awk '{print $1}' | grep -cE '^kvf[AB]-' || true)
[ "$left_ns" -eq 0 ] || fail "$left_ns lab namespaces left"
pgrep -f kvf-wanem >/dev/null && fail "kvf-wanem still running"
[ -f "$KVF_LAB_STATE/redis-A.pid" ] && fail "redis pidfile left"
[ "$(ip -o link | wc -l)" -eq "$links_before" ] || fail "links in the root namespace changed"
"$LAB" status >/dev/null && fail "status claims the lab is up"
pass "down removes everything"
