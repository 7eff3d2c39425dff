#!/usr/bin/env bash
# Install what the tests need and npm cannot provide, from Debian's packages, when missing:
# - dcmtk (storescu, storescp, echoscu, findscu, getscu, dcmdump): required, the conformance oracle;
# - docker-compose: optional, lets test/unit/docker-compose.test.ts validate docker-compose.yml with
#   `docker-compose config` (the test checks the file as YAML without it).
# Does nothing when the tools are already on PATH.
set -euo pipefail

missing=()
for tool in storescu storescp echoscu findscu getscu dcmdump; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
packages=()
[ ${#missing[@]} -gt 0 ] && packages+=(dcmtk)
command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)
[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ensure-test-deps: ${missing[*]} not found and cannot install dcmtk (not root, no sudo): run 'apt-get install dcmtk' first" >&2
    exit 1
  fi
  exit 0 # only the optional docker-compose is missing
fi

echo "ensure-test-deps: installing Debian package(s): ${packages[*]}" >&2
"${SUDO[@]}" apt-get update -qq
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null; then
  # docker-compose is optional: retry with dcmtk alone before giving up.
  if [ ${#missing[@]} -gt 0 ]; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk >/dev/null
  else
    echo "ensure-test-deps: docker-compose could not be installed; the compose file is checked without it" >&2
  fi
fi
command -v storescp >/dev/null 2>&1 || { echo "ensure-test-deps: dcmtk install did not provide storescp" >&2; exit 1; }
