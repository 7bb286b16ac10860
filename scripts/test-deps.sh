#!/usr/bin/env bash
# What the tests drive besides Go: rsync, tar and diff against a FUSE mount.
# Installs what is missing (Debian packages; needs root or sudo).
set -euo pipefail
missing=()
for tool in rsync:rsync tar:tar diff:diffutils; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing ${missing[*]} for the tests" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
