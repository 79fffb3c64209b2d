#!/usr/bin/env bash
# Prepares podman on a CI machine of this project and builds a stand-in for the image's base,
# docker.io/library/python:3.11-slim-bookworm, from Debian packages: CI reaches PyPI and Debian but no image
# registry. On a user's machine none of this is needed: podman or docker pulls the real base image.
# Idempotent (about 40 s the first time, a second after); run as root; prints the base image's name.
set -euo pipefail
BASE=docker.io/library/python:3.11-slim-bookworm

# The CI sandbox refuses raising rlimits ("error setting rlimit type 7"), runs cgroups in hybrid mode (crun cannot)
# and has no systemd. podman run as root reads only the machine-wide file; an existing one is kept aside.
conf=/etc/containers/containers.conf
if [ -f "$conf" ] && ! grep -q 'default_ulimits = \[\]' "$conf"; then mv "$conf" "$conf.orig"; fi
mkdir -p /etc/containers
cat >"$conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF

# The stand-in: Debian bookworm's own Python 3.11 (in /usr/bin, with `python` linked), as the real image's is
# bookworm with Python 3.11 in /usr/local/bin. Built once per machine; podman keeps it.
if ! podman image exists "$BASE"; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$work/rootfs.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2
  podman import -q --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$work/rootfs.tar" "$BASE" >/dev/null
fi
echo "$BASE"
