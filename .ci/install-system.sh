#!/usr/bin/env bash
# Idempotent system setup for hazardwatch's tests: installs only missing Debian packages (apt-get update
# only when something must be installed), then starts the machine's Mosquitto and PostgreSQL if they are
# installed but not listening.  Tests use private brokers; the shared services are for manual runs.
set -euo pipefail

PACKAGES=(
  mosquitto
  ffmpeg
  python3-gi
  python3-gst-1.0
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-rtsp
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly
  gstreamer1.0-libav
  gstreamer1.0-tools
  chromium          # dashboard tests: headless, driven by Playwright (hazardwatch/harness/browser.py)
  fonts-wqy-zenhei  # CJK glyphs for the Chinese dashboard screenshots
)

log() { echo "install-system: $*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else log "not root and no sudo: cannot install"; fi
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  log "all system packages present"
fi

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The machine's Mosquitto (port 1883). Never fatal: tests start their own brokers.
MOSQUITTO="$(command -v mosquitto || true)"
[ -z "$MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto
if [ -n "$MOSQUITTO" ] && [ -f /etc/mosquitto/mosquitto.conf ]; then
  if listening 1883; then
    log "mosquitto already listening on 1883"
  else
    # Debian's config writes its pid and log under dirs owned by the mosquitto user.
    "${SUDO[@]}" install -d -o mosquitto -g mosquitto /run/mosquitto /var/log/mosquitto 2>/dev/null || true
    if "${SUDO[@]}" "$MOSQUITTO" -d -c /etc/mosquitto/mosquitto.conf; then
      log "started mosquitto"
    else
      log "WARNING: could not start the machine's mosquitto"
    fi
  fi
fi

# The machine's PostgreSQL, if installed (it is not on every machine).
if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  if listening 5432; then
    log "postgresql already listening on 5432"
  else
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    if [ -n "$version" ] && "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$version" main start; then
      log "started postgresql $version"
    else
      log "WARNING: could not start postgresql ${version:-?}"
    fi
  fi
else
  log "WARNING: postgresql not installed; skipping"
fi
