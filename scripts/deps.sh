#!/usr/bin/env bash
# Installs the Debian packages plyfs needs to build, test and mount, and only
# those that are missing: nothing is run (not even apt-get update) when all
# are there. Used by scripts/demo.sh and scripts/test.sh.
#
# Usage: scripts/deps.sh [EXTRA-PACKAGE...]
# Runs apt-get as root, or through sudo for any other user.
set -euo pipefail

packages=(gcc pkg-config meson ninja-build libfuse3-dev fuse3 libxxhash-dev
	libcmocka-dev libarchive-dev attr acl uidmap "$@")

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: no dpkg here (not Debian?): make sure these are installed:" \
		"${packages[*]}" >&2
	exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
	# dpkg -s also succeeds for a removed package whose config files
	# remain, so look at the status itself.
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

echo "deps.sh: installing missing packages: ${missing[*]}"
if ((EUID == 0)); then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	echo "deps.sh: need root to install ${missing[*]}, and sudo is missing;" \
		"install them as root and run again" >&2
	exit 1
fi
# DEBIAN_FRONTEND keeps apt from asking questions (CI has no terminal);
# it is passed through env because sudo resets the environment.
apt_get=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q)
"${apt_get[@]}" update
"${apt_get[@]}" install -y --no-install-recommends "${missing[@]}"
