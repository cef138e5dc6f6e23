#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (Debian packages chromium, chromium-driver) for the
# console's browser tests, when missing.
#
# Two test runs on one new machine (a fresh clone's .ci/run beside a `make test`) both find them
# missing and both call apt, which holds one lock per machine: the second used to fail at once
# ("Could not get lock /var/lib/dpkg/lock-frontend"). So the runs take turns on a lock of their
# own (the first installs, the next finds the packages there), and apt waits up to 15 minutes
# for a lock that anything else holds.
set -euo pipefail
command -v chromedriver >/dev/null && command -v chromium >/dev/null && exit 0
exec 9>"${TMPDIR:-/tmp}/zofhook-browser-install.lock"
flock 9
command -v chromedriver >/dev/null && command -v chromium >/dev/null && exit 0
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
apt=("${sudo[@]}" apt-get -o DPkg::Lock::Timeout=900 -q)
"${apt[@]}" install -y chromium chromium-driver >/dev/null 2>&1 || {
  "${apt[@]}" update >/dev/null
  "${apt[@]}" install -y chromium chromium-driver >/dev/null
}
chromedriver --version
