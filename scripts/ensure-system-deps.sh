#!/usr/bin/env bash
# Installs the Debian packages the project needs when they are missing:
# the shared libraries Qt loads (offscreen and on X11), a font to render text, Xvfb,
# PostgreSQL (for the sync server's tests) and chromium (the admin console's browser tests,
# driven by Playwright with executable_path=/usr/bin/chromium; never `playwright install`).
# Does nothing when everything is present, so it is cheap to run every time.
set -euo pipefail

missing=()
# grep reads all of ldconfig's output (no -q): with pipefail, an early exit would SIGPIPE
# ldconfig and make a present library look missing.
have_lib() { ldconfig -p 2>/dev/null | grep -F "$1" >/dev/null; }
have_lib 'libEGL.so.1'        || missing+=(libegl1)
have_lib 'libGL.so.1'         || missing+=(libgl1)
have_lib 'libxkbcommon.so.0'  || missing+=(libxkbcommon0)
have_lib 'libfontconfig.so.1' || missing+=(libfontconfig1)
have_lib 'libdbus-1.so.3'     || missing+=(libdbus-1-3)
have_lib 'libglib-2.0.so.0'   || missing+=(libglib2.0-0)
# Qt's xcb platform plugin (the window on an X11 desktop): every library libqxcb.so and
# libQt6XcbQpa link to, plus libxcb-cursor0, which Qt >= 6.5 loads at run time. Without
# one of them Qt aborts with a message that names only xcb-cursor0.
have_lib 'libX11-xcb.so.1'          || missing+=(libx11-xcb1)
have_lib 'libxcb-cursor.so.0'       || missing+=(libxcb-cursor0)
have_lib 'libxcb-icccm.so.4'        || missing+=(libxcb-icccm4)
have_lib 'libxcb-image.so.0'        || missing+=(libxcb-image0)
have_lib 'libxcb-keysyms.so.1'      || missing+=(libxcb-keysyms1)
have_lib 'libxcb-randr.so.0'        || missing+=(libxcb-randr0)
have_lib 'libxcb-render-util.so.0'  || missing+=(libxcb-render-util0)
have_lib 'libxcb-render.so.0'       || missing+=(libxcb-render0)
have_lib 'libxcb-shape.so.0'        || missing+=(libxcb-shape0)
have_lib 'libxcb-shm.so.0'          || missing+=(libxcb-shm0)
have_lib 'libxcb-sync.so.1'         || missing+=(libxcb-sync1)
have_lib 'libxcb-util.so.1'         || missing+=(libxcb-util1)
have_lib 'libxcb-xfixes.so.0'       || missing+=(libxcb-xfixes0)
have_lib 'libxcb-xkb.so.1'          || missing+=(libxcb-xkb1)
have_lib 'libxkbcommon-x11.so.0'    || missing+=(libxkbcommon-x11-0)
# A real X server for the tests that open the window under X11 (tests/qt/test_xvfb.py)
# and for scripts/quit_50_times.sh.
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xauth >/dev/null || missing+=(xauth)
# PostgreSQL for the sync server's integration tests (tests/integration/conftest.py starts a
# throwaway cluster with initdb as a non-root user). Debian keeps the binaries off PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
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
