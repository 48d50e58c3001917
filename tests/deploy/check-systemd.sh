#!/usr/bin/env bash
# deploy/systemd/offlineq.service passes `systemd-analyze verify` with nothing to say: it exits 0
# even on values it ignores ("Failed to parse ..., ignoring", unknown keys), so any output
# fails the check too. ExecStart points at the built binary for the check (verify wants the
# command to exist); the unit's own keys are checked as written.
# Usage: tests/deploy/check-systemd.sh UNIT BINARY
set -euo pipefail
unit=$1 bin=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s#^ExecStart=.*#ExecStart=$bin#" "$unit" >"$dir/offlineq.service"
fail=0
out=$(systemd-analyze verify "$dir/offlineq.service" 2>&1) || { echo "not ok - systemd-analyze verify exited $?"; fail=1; }
if [ -n "$out" ]; then
  echo "not ok - systemd-analyze verify said:"; echo "$out"; fail=1
else
  echo "ok - systemd-analyze verify: clean"
fi
for want in Type=notify NotifyAccess=main WatchdogSec= NoNewPrivileges=yes ProtectSystem=strict \
            PrivateTmp=yes ProtectHome=yes StateDirectory=offlineq DynamicUser=yes \
            CapabilityBoundingSet= EnvironmentFile=/etc/offlineq/offlineq.env \
            ExecStart=/usr/local/bin/offlineq; do
  if grep -q "^$want" "$unit"; then echo "ok - $want"; else echo "not ok - no $want"; fail=1; fi
done
exit $fail
