#!/usr/bin/env bash
# One command for the whole taskhub stack on Linux: .env with fresh secrets, build, start,
# migrate, wait until healthy, print the URLs. Safe to run again (keeps existing secrets).
#   scripts/setup-linux.sh
#   TASKHUB_ADMIN_EMAIL=me@example.com TASKHUB_ADMIN_PASSWORD='...' scripts/setup-linux.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup-common.sh
. scripts/lib/setup-common.sh

command -v docker >/dev/null 2>&1 || die "Docker is not installed: https://docs.docker.com/engine/install/"
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ] && ! id -nG | tr ' ' '\n' | grep -qx docker; then
    die "cannot reach the Docker daemon: add yourself to the docker group (sudo usermod -aG docker \"\$USER\", then log in again) or run this script with sudo"
  fi
  die "the Docker daemon is not running: sudo systemctl start docker"
fi
find_compose
prepare_env
bring_up
maybe_create_admin
print_summary
