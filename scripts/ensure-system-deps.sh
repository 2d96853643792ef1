#!/usr/bin/env bash
# Installs the Debian packages the project needs when they are missing:
# the shared libraries Qt loads (even offscreen) and a font to render text.
# Does nothing when everything is present, so it is cheap to run every time.
set -euo pipefail

missing=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib 'libEGL.so.1'        || missing+=(libegl1)
have_lib 'libGL.so.1'         || missing+=(libgl1)
have_lib 'libxkbcommon.so.0'  || missing+=(libxkbcommon0)
have_lib 'libfontconfig.so.1' || missing+=(libfontconfig1)
have_lib 'libdbus-1.so.3'     || missing+=(libdbus-1-3)
have_lib 'libglib-2.0.so.0'   || missing+=(libglib2.0-0)
command -v fc-list >/dev/null && [ "$(fc-list 2>/dev/null | wc -l)" -gt 0 ] || missing+=(fonts-dejavu-core fontconfig)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "error: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
