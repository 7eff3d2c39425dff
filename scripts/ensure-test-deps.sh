#!/usr/bin/env bash
# Install what the integration tests need and npm cannot provide: DCMTK (storescu, storescp, echoscu,
# findscu, getscu) from Debian's packages. Does nothing when the tools are already on PATH.
set -euo pipefail

missing=()
for tool in storescu storescp echoscu findscu getscu dcmdump; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "ensure-test-deps: ${missing[*]} not found; installing the Debian package dcmtk" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk >/dev/null
elif command -v sudo >/dev/null 2>&1; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk >/dev/null
else
  echo "ensure-test-deps: cannot install dcmtk (not root, no sudo): run 'apt-get install dcmtk' first" >&2
  exit 1
fi
command -v storescp >/dev/null 2>&1 || { echo "ensure-test-deps: dcmtk install did not provide storescp" >&2; exit 1; }
