#!/usr/bin/env bash
# Make sure the system programs the suite drives for real are present.
# Arguments are program names; each maps to the Debian package that ships it.
# Installs via apt-get when running as root; otherwise says what is missing.
set -euo pipefail

declare -A package_for=(
  [mosquitto]=mosquitto
  [mosquitto_pub]=mosquitto-clients
  [mosquitto_sub]=mosquitto-clients
  [ffprobe]=ffmpeg
  [socat]=socat
  [chromium]=chromium
  [chromedriver]=chromium-driver
)

missing=()
for program in "$@"; do
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("$program")
done
[ ${#missing[@]} -eq 0 ] && exit 0

packages=()
for program in "${missing[@]}"; do packages+=("${package_for[$program]:-$program}"); done

if [ "$(id -u)" -ne 0 ]; then
  echo "missing system programs: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${packages[*]}" >&2
  exit 1
fi

echo "installing system packages: ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
