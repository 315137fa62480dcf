#!/usr/bin/env bash
# One command for the whole taskhub stack on macOS (Docker Desktop, OrbStack or colima):
# .env with fresh secrets, build, start, migrate, wait until healthy, print the URLs.
# Safe to run again (keeps existing secrets). Works with the bash 3.2 that macOS ships.
#   scripts/setup-macos.sh
#   TASKHUB_ADMIN_EMAIL=me@example.com TASKHUB_ADMIN_PASSWORD='...' scripts/setup-macos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup-common.sh
. scripts/lib/setup-common.sh

command -v docker >/dev/null 2>&1 || die "Docker is not installed: install Docker Desktop (https://docs.docker.com/desktop/setup/install/mac-install/) or colima"
if ! docker info >/dev/null 2>&1; then
  if [ -d /Applications/Docker.app ]; then
    say "Starting Docker Desktop"
    open -a Docker
  else
    die "the Docker daemon is not running: start Docker Desktop, OrbStack or 'colima start'"
  fi
  waited=0
  until docker info >/dev/null 2>&1; do
    [ "$waited" -lt 120 ] || die "Docker Desktop did not start within 120s"
    sleep 3
    waited=$((waited + 3))
  done
fi
find_compose
prepare_env
bring_up
maybe_create_admin
print_summary
