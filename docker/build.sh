#!/bin/sh
# Build the dialer image without a registry or a Docker engine, with podman:
# a Debian base made from the distribution's own packages (mmdebstrap), then
# the Dockerfile on top of it (`--from` replaces its FROM). Run as root from
# anywhere; prints the image name. Needs: podman, mmdebstrap (apt-get install).
#
#   docker/build.sh [IMAGE]          default IMAGE: localhost/dialer
#   DIALER_CHECK=1 docker/build.sh   also run `dialer --version` from the image's files
set -eu

image=${1:-localhost/dialer}
here=$(cd "$(dirname "$0")/.." && pwd)
base=localhost/debian-base:bookworm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$base"; then
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$work/base.tar"
    podman import --quiet "$work/base.tar" "$base" >/dev/null
fi

mounts=""
for file in /etc/ssl/certs /etc/pip.conf; do
    # Reach the same package index the host uses (a mirror when offline).
    [ -e "$file" ] && mounts="$mounts -v $file:$file:ro"
done
# shellcheck disable=SC2086
podman build --quiet --from "$base" --isolation=chroot $mounts -t "$image" "$here" >/dev/null

if [ "${DIALER_CHECK:-0}" = 1 ]; then
    # `podman run` needs cgroups this host may not give; the image's files run in a chroot.
    mnt=$(podman image mount "$image")
    chroot "$mnt" /opt/dialer/bin/dialer --version
    podman image unmount "$image" >/dev/null
fi
echo "$image"
