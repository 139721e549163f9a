#!/bin/sh
# Regenerates multipath/tests/data/*/multipath-t.{txt,stderr} with Debian 12's real
# multipath-tools 0.9.4 (`multipath -t`), the reference the config parser is checked
# against. Needs root (a private mount namespace bind-mounts a copy of /etc so that the
# host's /etc/multipath.conf is never touched) and apt access for the two packages.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
data=$here/multipath/tests/data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download multipath-tools liburcu8 >/dev/null 2>&1
for d in *.deb; do dpkg -x "$d" root; done
run() { # $1 config file or "", $2 conf.d dir or ""
    unshare -m sh -c "
        mkdir -p '$work/etc' && cp -a /etc/. '$work/etc/' 2>/dev/null || true
        mount --bind '$work/etc' /etc
        mkdir -p /etc/multipath && rm -rf /etc/multipath/conf.d /etc/multipath.conf
        if [ -n '$1' ]; then cp '$1' /etc/multipath.conf; fi
        if [ -n '$2' ]; then cp -r '$2' /etc/multipath/conf.d; fi
        LD_LIBRARY_PATH='$work/root/usr/lib/x86_64-linux-gnu:$work/root/lib' '$work/root/sbin/multipath' -t
    "
}
strip() { sed 's/^[0-9.]* | //'; }
run "" "" >"$data/empty/multipath-t.txt"
run "$data/full/multipath.conf" "$data/full/conf.d" >"$data/full/multipath-t.txt" 2>"$work/err"
strip <"$work/err" >"$data/full/multipath-t.stderr"
run "$data/merge/multipath.conf" "" >"$data/merge/multipath-t.txt"
run "$data/bad/multipath.conf" "" >/dev/null 2>"$work/err" || true
strip <"$work/err" >"$data/bad/multipath-t.stderr"
echo "regenerated from $(ls "$work"/multipath-tools_*.deb | xargs -n1 basename)"
