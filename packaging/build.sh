#!/usr/bin/env bash
# Build the one-folder app dist/crm-desktop/ with PyInstaller, check it, print its size, and
# (on Linux) pack it with its .desktop file and icon into dist/crm-desktop-<version>-linux-<arch>.tar.gz.
#   PY=.venv/bin/python bash packaging/build.sh        (make package)
# Environment: PY (the Python with the `package` extra installed), NO_TARBALL=1 to skip the tarball.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
APP=dist/crm-desktop
started=$(date +%s)
if [ "$(uname -s)" = Linux ] && ! command -v objdump >/dev/null; then
  echo "error: PyInstaller needs binutils (objdump, strip) on Linux: apt-get install binutils" >&2
  exit 1
fi

"$PY" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
  packaging/crm-desktop.spec
built=$(date +%s)

# Every shared library must resolve inside the folder or on the system: a Qt plugin whose library
# the spec trimmed away would otherwise fail silently at run time. Desktop libraries that only the
# matching Qt plugin needs (GTK for the GNOME theme, Wayland for a Wayland session) come with that
# desktop, so their absence on a build machine is a note, not an error.
DESKTOP_LIBS='lib(gtk-3|gdk-3|gdk_pixbuf|pango|atk|cairo|wayland-[a-z]+)[-.0-9a-z]*\.so'
if command -v ldd >/dev/null 2>&1; then
  missing=$(find "$APP" \( -name '*.so' -o -name '*.so.*' \) -type f -print0 |
            xargs -0 -n 50 env LD_LIBRARY_PATH="$APP/_internal:$APP/_internal/PySide6/Qt/lib" ldd 2>/dev/null |
            grep 'not found' | sed 's/^[[:space:]]*//' | sort -u || true)
  desktop_only=$(printf '%s\n' "$missing" | grep -E "^$DESKTOP_LIBS" || true)
  really_missing=$(printf '%s\n' "$missing" | grep -vE "^$DESKTOP_LIBS" | grep . || true)
  if [ -n "$desktop_only" ]; then
    echo "note: not on this machine, provided by the desktop that needs them: $(echo $desktop_only | sed 's/ => not found//g')"
  fi
  if [ -n "$really_missing" ]; then
    echo "error: libraries in $APP need libraries that are not there:" >&2
    echo "$really_missing" >&2
    exit 1
  fi
fi

version=$("$PY" -c 'import crm_desktop; print(crm_desktop.__version__)')
if [ "$(uname -s)" = Linux ]; then
  cp packaging/linux/crm-desktop.desktop "$APP/crm-desktop.desktop"
  cp resources/crm-desktop.svg "$APP/crm-desktop.svg"
  if [ -z "${NO_TARBALL:-}" ]; then
    tarball="dist/crm-desktop-$version-linux-$(uname -m).tar.gz"
    tar -C dist -czf "$tarball" crm-desktop
    echo "tarball: $tarball ($(du -h "$tarball" | cut -f1))"
  fi
fi

echo "built $APP in $((built - started)) s (with checks and tarball: $(( $(date +%s) - started )) s)"
echo "size of $APP: $(du -sh "$APP" | cut -f1) ($(du -sm "$APP" | cut -f1) MB; limit 250 MB, goal 150 MB)"
size_mb=$(du -sm "$APP" | cut -f1)
if [ "$size_mb" -gt 250 ]; then
  echo "error: $APP is $size_mb MB, over the 250 MB limit" >&2
  exit 1
fi
