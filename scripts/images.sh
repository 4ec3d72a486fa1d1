#!/usr/bin/env bash
# Make sure both test images exist and print the tags to use (one line each: MAJOR TAG).
# PGOPS_IMAGE_15 / PGOPS_IMAGE_17 override the image (e.g. postgres:15 where a registry is reachable):
# it is then only checked, and pulled when missing; otherwise pgops/postgres:N is built from Debian.
# usage: scripts/images.sh
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ensure() {  # MAJOR SUITE
  local major=$1 suite=$2 var="PGOPS_IMAGE_$1" tag
  tag=${!var:-}
  if [ -n "$tag" ]; then
    docker image inspect "$tag" >/dev/null 2>&1 || docker pull -q "$tag" >/dev/null \
      || { echo "images: $var=$tag is neither present nor pullable" >&2; exit 1; }
  else
    tag=pgops/postgres:$major
    "$HERE/build-image.sh" "$suite" "$major" "$tag" >&2
  fi
  echo "$major $tag"
}
ensure 15 bookworm
ensure 17 trixie
