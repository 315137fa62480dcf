# shellcheck shell=bash
# Shared steps of scripts/setup-linux.sh and scripts/setup-macos.sh (bash 3.2 compatible:
# macOS ships bash 3.2). Sourced, not executed.

# Keys of .env.example whose `change-me` placeholder gets a fresh random value.
GENERATED_KEYS="SECRET_KEY POSTGRES_PASSWORD PGADMIN_DEFAULT_PASSWORD"
PLACEHOLDER="change-me"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-240}"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# COMPOSE: the compose command, the v2 plugin preferred.
find_compose() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE="docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE="docker-compose"
  else
    die "Docker Compose is missing: install the compose plugin (docker compose)."
  fi
  # The Dockerfile uses BuildKit cache mounts; the old docker-compose needs these to use it.
  export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
}

compose() {
  # shellcheck disable=SC2086  # COMPOSE is one or two words on purpose
  $COMPOSE "$@"
}

# A random 64-hex-character secret: URL-, sed- and shell-safe.
random_secret() {
  if command -v openssl >/dev/null 2>&1; then
    openssl rand -hex 32
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import secrets; print(secrets.token_hex(32))'
  else
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
    echo
  fi
}

# env_get KEY [DEFAULT]: the value of KEY in .env (last assignment wins), or DEFAULT.
env_get() {
  local value
  value=$(awk -v k="$1" 'index($0, k "=") == 1 { v = substr($0, length(k) + 2) } END { print v }' .env | tr -d '\r')
  if [ -n "$value" ]; then printf '%s\n' "$value"; else printf '%s\n' "${2:-}"; fi
}

# env_set KEY VALUE: replace KEY's line in .env (keeping the file's mode), or append it.
env_set() {
  local tmp
  tmp=$(mktemp "${TMPDIR:-/tmp}/taskhub-env.XXXXXX")
  awk -v k="$1" -v v="$2" '
    index($0, k "=") == 1 { if (!done) print k "=" v; done = 1; next }
    { print }
    END { if (!done) print k "=" v }
  ' .env >"$tmp"
  cat "$tmp" >.env
  rm -f "$tmp"
}

# .env from .env.example, each placeholder secret replaced. Values already set are kept:
# the database volume was initialised with the first POSTGRES_PASSWORD.
prepare_env() {
  if [ ! -f .env ]; then
    say "Creating .env from .env.example"
    (umask 077 && cp .env.example .env)
  else
    say "Keeping the existing .env (only placeholder secrets are filled in)"
  fi
  chmod 600 .env 2>/dev/null || true
  local key current
  for key in $GENERATED_KEYS; do
    current=$(env_get "$key")
    if [ -z "$current" ] || [ "$current" = "$PLACEHOLDER" ]; then
      env_set "$key" "$(random_secret)"
      say "Generated a fresh $key"
    fi
  done
}

# wait_healthy SERVICE: until its container's healthcheck reports healthy.
wait_healthy() {
  local service="$1" waited=0 id status
  say "Waiting for $service to be healthy (up to ${HEALTH_TIMEOUT}s)"
  while :; do
    id=$(compose ps -q "$service" 2>/dev/null | head -n 1)
    status=""
    if [ -n "$id" ]; then
      status=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || true)
    fi
    case "$status" in
      healthy) return 0 ;;
      exited|dead) compose logs --tail 50 "$service" >&2 || true; die "$service stopped ($status)" ;;
    esac
    if [ "$waited" -ge "$HEALTH_TIMEOUT" ]; then
      compose logs --tail 50 "$service" >&2 || true
      die "$service is not healthy after ${HEALTH_TIMEOUT}s (status: ${status:-no container})"
    fi
    sleep 3
    waited=$((waited + 3))
  done
}

bring_up() {
  say "Building the image and starting the stack ($COMPOSE up -d --build)"
  compose up -d --build
  say "Applying the database migrations (idempotent)"
  compose run --rm migrate
  wait_healthy db
  wait_healthy redis
  wait_healthy web
  wait_healthy pgadmin
}

# The optional first admin: TASKHUB_ADMIN_EMAIL and TASKHUB_ADMIN_PASSWORD in the environment.
maybe_create_admin() {
  if [ -n "${TASKHUB_ADMIN_EMAIL:-}" ] && [ -n "${TASKHUB_ADMIN_PASSWORD:-}" ]; then
    say "Creating the admin $TASKHUB_ADMIN_EMAIL"
    compose exec -T web taskhub create-superuser \
      --email "$TASKHUB_ADMIN_EMAIL" --password "$TASKHUB_ADMIN_PASSWORD"
  fi
}

print_summary() {
  local bind web_port pgadmin_port pgadmin_email host
  bind=$(env_get BIND_ADDRESS 127.0.0.1)
  web_port=$(env_get WEB_PORT 8000)
  pgadmin_port=$(env_get PGADMIN_PORT 5050)
  pgadmin_email=$(env_get PGADMIN_DEFAULT_EMAIL admin@example.com)
  host="$bind"
  if [ "$host" = "0.0.0.0" ]; then host=localhost; fi
  cat <<SUMMARY

taskhub is up.
  API        http://$host:$web_port/api/v1  and  http://$host:$web_port/api/v2
  API docs   http://$host:$web_port/docs
  Health     http://$host:$web_port/health   (readiness: /ready)
  pgAdmin    http://$host:$pgadmin_port   login $pgadmin_email, password PGADMIN_DEFAULT_PASSWORD in .env
             (the "taskhub" server is already registered; open it, no password asked)

Create an admin account:
  $COMPOSE exec web taskhub create-superuser --email admin@example.com --password '<a strong password>'
More workers:    $COMPOSE up -d --scale worker=3
Logs:            $COMPOSE logs -f web worker
Stop:            $COMPOSE down          (add -v to delete the data volumes)
SUMMARY
}
