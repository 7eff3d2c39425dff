#!/bin/sh
# Orthanc for `dicom-pdu-proxy bench --scp-command`: writes DIR/orthanc.json from orthanc.json.in (next to
# this script) with the DICOM port and MaximumPduLength (Orthanc accepts 4096..131072) filled in, storage
# and index under DIR, HTTP off (no second port needed), then runs Orthanc in its place (exec: bench's
# SIGTERM reaches Orthanc itself).
#
#   dicom-pdu-proxy bench --scp-command 'examples/scp-command/orthanc.sh {port} {pdu} {out}' --both --pdu 16KB,64KB
#
# bench passes each value as one argument (no shell reads the template). DIR is bench's scratch directory
# for the setting (under the system's temporary directory), removed after the setting.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 PORT PDU DIR" >&2; exit 2; }
port=$1 pdu=$2 dir=$3
case "$port$pdu" in *[!0-9]*) echo "$0: PORT and PDU must be numbers" >&2; exit 2 ;; esac
case "$dir" in *[\|\&\\\"]*) echo "$0: DIR must not contain | & \\ or \"" >&2; exit 2 ;; esac
orthanc=$(command -v Orthanc || echo /usr/sbin/Orthanc)
mkdir -p "$dir"
sed -e "s|@PORT@|$port|" -e "s|@PDU@|$pdu|" -e "s|@DIR@|$dir|g" "$(dirname "$0")/orthanc.json.in" >"$dir/orthanc.json"
exec "$orthanc" "$dir/orthanc.json"
