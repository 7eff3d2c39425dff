#!/usr/bin/env bash
# Install what the tests need and npm cannot provide, from Debian's packages, when missing:
# - dcmtk (storescu, storescp, echoscu, findscu, getscu, dcmdump): required, the conformance oracle;
# - tshark: required, reads the proxy's --pcap captures back (Wireshark's dissectors are the oracle there).
#   Its wireshark-common package asks whether non-root users may capture; the answer is preset to "no"
#   and the install runs noninteractive, so it never waits for a terminal;
# - chromium (/usr/bin/chromium): required by the report's browser test (headless, driven by
#   playwright-core, which never downloads a browser). When it cannot be installed, this script says so
#   and carries on: that test then fails with a message saying what is missing;
# - docker-compose: optional, lets test/unit/docker-compose.test.ts validate docker-compose.yml with
#   `docker-compose config` (the test checks the file as YAML without it);
# - orthanc: optional, the SCP of bench --scp-command's Orthanc example and its test (skipped without it);
# - e2fsprogs (mkfs.ext4): optional, test/integration/pcap-ext4.test.ts makes a small ext4 in a file for
#   --pcap's O_DIRECT writes on a disk that fills (skipped, saying why, without it; it also needs root);
# - prometheus (promtool and prometheus): required, `promtool check rules` / `promtool test rules` on
#   deploy/prometheus/ and the real-Prometheus fleet test. Only the binaries are used: the package's own
#   service is stopped and disabled right after the install (the tests start their own, on a free port).
# Does nothing when the tools are already there.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

missing=()
for tool in storescu storescp echoscu findscu getscu dcmdump; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
packages=()
[ ${#missing[@]} -gt 0 ] && packages+=(dcmtk)
command -v tshark >/dev/null 2>&1 || packages+=(tshark)
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || packages+=(prometheus)
[ -x "$CHROMIUM" ] || packages+=(chromium)
command -v docker-compose >/dev/null 2>&1 || packages+=(docker-compose)
[ -x /usr/sbin/Orthanc ] || command -v Orthanc >/dev/null 2>&1 || packages+=(orthanc)
[ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || command -v mkfs.ext4 >/dev/null 2>&1 || packages+=(e2fsprogs)
[ ${#packages[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  [ -x "$CHROMIUM" ] || echo "ensure-test-deps: $CHROMIUM not found and cannot install chromium (not root, no sudo): the report's browser test will fail; run 'apt-get install chromium' first" >&2
  if [ ${#missing[@]} -gt 0 ]; then
    echo "ensure-test-deps: ${missing[*]} not found and cannot install dcmtk (not root, no sudo): run 'apt-get install dcmtk' first" >&2
    exit 1
  fi
  if ! command -v tshark >/dev/null 2>&1; then
    echo "ensure-test-deps: tshark not found and cannot install it (not root, no sudo): run 'apt-get install tshark' first" >&2
    exit 1
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    echo "ensure-test-deps: promtool not found and cannot install prometheus (not root, no sudo): run 'apt-get install prometheus' first" >&2
    exit 1
  fi
  exit 0 # only chromium (reported above) or the optional docker-compose, orthanc and e2fsprogs are missing
fi

install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

echo "ensure-test-deps: installing Debian package(s): ${packages[*]}" >&2
if [[ " ${packages[*]} " == *" tshark "* ]]; then
  echo "wireshark-common wireshark-common/install-setuid boolean false" | "${SUDO[@]}" debconf-set-selections
fi
"${SUDO[@]}" apt-get update -qq
if ! install "${packages[@]}"; then
  # One at a time: dcmtk is required (its failure stops here), chromium and docker-compose are reported.
  for p in "${packages[@]}"; do
    case "$p" in
      dcmtk) install dcmtk ;;
      tshark) install tshark ;;
      prometheus) install prometheus ;;
      chromium) install chromium || echo "ensure-test-deps: chromium could not be installed: the report's browser test will fail" >&2 ;;
      docker-compose) install docker-compose || echo "ensure-test-deps: docker-compose could not be installed; the compose file is checked without it" >&2 ;;
      orthanc) install orthanc || echo "ensure-test-deps: orthanc could not be installed; the bench --scp-command Orthanc test is skipped" >&2 ;;
      e2fsprogs) install e2fsprogs || echo "ensure-test-deps: e2fsprogs could not be installed; the --pcap test on an ext4 loop device is skipped" >&2 ;;
    esac
  done
fi
command -v storescp >/dev/null 2>&1 || { echo "ensure-test-deps: dcmtk install did not provide storescp" >&2; exit 1; }
command -v tshark >/dev/null 2>&1 || { echo "ensure-test-deps: the tshark install did not provide tshark" >&2; exit 1; }
command -v promtool >/dev/null 2>&1 || { echo "ensure-test-deps: the prometheus install did not provide promtool" >&2; exit 1; }
if [[ " ${packages[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
  # The package starts a Prometheus on :9090 as a service where systemd runs; the tests never use it.
  "${SUDO[@]}" systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
fi
