#!/usr/bin/env bash
# Debian's chromium, for the browser tests of /docs and /ui (tests/api/test_ui.py drives it with
# playwright). Best effort by design: `make test` (and so .ci/run) runs this first; where it cannot
# install (not root, no apt-get, no reachable mirror) the build goes on and those tests skip,
# saying why. Playwright's own browser download is not used: it fetches from outside the
# package registries.
set -u
BROWSER=/usr/bin/chromium
[ -x "$BROWSER" ] && exit 0  # the usual case: nothing to do, no apt call
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: $BROWSER is missing and this is not root with apt-get; the browser tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q -o DPkg::Lock::Timeout=120 chromium >/dev/null 2>&1; }
# A fresh machine's package lists may be missing or stale: update once, only if the first try fails.
if install || { apt-get update -q >/dev/null 2>&1 && install; }; then
  echo "install_browser: $("$BROWSER" --version 2>/dev/null || echo chromium) installed"
else
  echo "install_browser: apt-get could not install chromium; the browser tests will skip" >&2
fi
exit 0
