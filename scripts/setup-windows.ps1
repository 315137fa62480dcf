<#
.SYNOPSIS
  One command for the whole taskhub stack on Windows (Docker Desktop): .env with fresh
  secrets, build, start, migrate, wait until healthy, print the URLs.

.DESCRIPTION
  Safe to run again: secrets already in .env are kept (the database volume was created
  with the first POSTGRES_PASSWORD). Works in Windows PowerShell 5.1 and PowerShell 7.
    powershell -ExecutionPolicy Bypass -File scripts\setup-windows.ps1
  Optional first admin: set $env:TASKHUB_ADMIN_EMAIL and $env:TASKHUB_ADMIN_PASSWORD first.
#>
[CmdletBinding()]
param(
    [int]$HealthTimeoutSeconds = 240
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$Root = Split-Path -Parent $PSScriptRoot
Set-Location -LiteralPath $Root

$GeneratedKeys = @('SECRET_KEY', 'POSTGRES_PASSWORD', 'PGADMIN_DEFAULT_PASSWORD')
$Placeholder = 'change-me'
$EnvPath = Join-Path $Root '.env'
$ExamplePath = Join-Path $Root '.env.example'
$Utf8NoBom = New-Object System.Text.UTF8Encoding($false)

function Say([string]$Message) { Write-Host "==> $Message" -ForegroundColor Cyan }
function Fail([string]$Message) { Write-Host "error: $Message" -ForegroundColor Red; exit 1 }

# Whether a native command succeeds, its output discarded. Windows PowerShell 5.1 turns
# redirected stderr into a terminating error under ErrorActionPreference=Stop, hence Continue.
function Test-Native([string]$Exe, [string[]]$Arguments) {
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        & $Exe @Arguments *> $null
        return ($LASTEXITCODE -eq 0)
    } finally {
        $ErrorActionPreference = $previous
    }
}

# Runs a native command and stops on a non-zero exit code.
function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { Fail "$Exe $($Arguments -join ' ') failed (exit $LASTEXITCODE)" }
}

# A random 64-hex-character secret from the OS cryptographic RNG.
function New-Secret {
    $bytes = New-Object byte[] 32
    $rng = [System.Security.Cryptography.RandomNumberGenerator]::Create()
    try { $rng.GetBytes($bytes) } finally { $rng.Dispose() }
    return (($bytes | ForEach-Object { $_.ToString('x2') }) -join '')
}

function Read-EnvLines {
    # Get-Content splits on CRLF or LF, so a checkout with either line ending works.
    return @(Get-Content -LiteralPath $EnvPath)
}

# .env is written as UTF-8 without a BOM and with LF line endings, as compose expects.
function Write-EnvLines([string[]]$Lines) {
    [System.IO.File]::WriteAllText($EnvPath, (($Lines -join "`n") + "`n"), $Utf8NoBom)
}

function Get-EnvValue([string]$Key, [string]$Default = '') {
    $value = $null
    foreach ($line in Read-EnvLines) {
        if ($line.StartsWith("$Key=")) { $value = $line.Substring($Key.Length + 1).Trim() }
    }
    if ([string]::IsNullOrEmpty($value)) { return $Default }
    return $value
}

function Set-EnvValue([string]$Key, [string]$Value) {
    $out = New-Object System.Collections.Generic.List[string]
    $done = $false
    foreach ($line in Read-EnvLines) {
        if ($line.StartsWith("$Key=")) {
            if (-not $done) { $out.Add("$Key=$Value"); $done = $true }
        } else {
            $out.Add($line)
        }
    }
    if (-not $done) { $out.Add("$Key=$Value") }
    Write-EnvLines $out.ToArray()
}

# --- Docker --------------------------------------------------------------------------
if (-not (Get-Command docker -ErrorAction SilentlyContinue)) {
    Fail 'Docker is not installed: install Docker Desktop (https://docs.docker.com/desktop/setup/install/windows-install/)'
}
if (-not (Test-Native 'docker' @('info'))) {
    Fail 'the Docker daemon is not reachable: start Docker Desktop and wait until it says "Engine running"'
}
if (-not (Test-Native 'docker' @('compose', 'version'))) { Fail 'the Docker Compose plugin is missing: update Docker Desktop' }

function Invoke-Compose([string[]]$Arguments) { Invoke-Checked 'docker' (@('compose') + $Arguments) }

# --- .env ----------------------------------------------------------------------------
if (-not (Test-Path -LiteralPath $EnvPath)) {
    Say 'Creating .env from .env.example'
    Write-EnvLines @(Get-Content -LiteralPath $ExamplePath)
} else {
    Say 'Keeping the existing .env (only placeholder secrets are filled in)'
}
foreach ($key in $GeneratedKeys) {
    $current = Get-EnvValue $key
    if ([string]::IsNullOrEmpty($current) -or $current -eq $Placeholder) {
        Set-EnvValue $key (New-Secret)
        Say "Generated a fresh $key"
    }
}

# --- Build, start, migrate, wait -------------------------------------------------------
Say 'Building the image and starting the stack (docker compose up -d --build)'
Invoke-Compose @('up', '-d', '--build')
Say 'Applying the database migrations (idempotent)'
Invoke-Compose @('run', '--rm', 'migrate')

function Wait-Healthy([string]$Service) {
    Say "Waiting for $Service to be healthy (up to $HealthTimeoutSeconds s)"
    $deadline = (Get-Date).AddSeconds($HealthTimeoutSeconds)
    while ($true) {
        $status = ''
        $id = (& docker compose ps -q $Service | Select-Object -First 1)
        if ($id) {
            $status = (& docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' $id)
        }
        if ($status -eq 'healthy') { return }
        if ($status -eq 'exited' -or $status -eq 'dead') {
            & docker compose logs --tail 50 $Service
            Fail "$Service stopped ($status)"
        }
        if ((Get-Date) -gt $deadline) {
            & docker compose logs --tail 50 $Service
            Fail "$Service is not healthy after $HealthTimeoutSeconds s (status: $status)"
        }
        Start-Sleep -Seconds 3
    }
}
foreach ($service in @('db', 'redis', 'web', 'pgadmin')) { Wait-Healthy $service }

if ($env:TASKHUB_ADMIN_EMAIL -and $env:TASKHUB_ADMIN_PASSWORD) {
    Say "Creating the admin $($env:TASKHUB_ADMIN_EMAIL)"
    Invoke-Compose @('exec', '-T', 'web', 'taskhub', 'create-superuser',
        '--email', $env:TASKHUB_ADMIN_EMAIL, '--password', $env:TASKHUB_ADMIN_PASSWORD)
}

# --- Summary -------------------------------------------------------------------------
$bindHost = Get-EnvValue 'BIND_ADDRESS' '127.0.0.1'
if ($bindHost -eq '0.0.0.0') { $bindHost = 'localhost' }
$webPort = Get-EnvValue 'WEB_PORT' '8000'
$pgadminPort = Get-EnvValue 'PGADMIN_PORT' '5050'
$pgadminEmail = Get-EnvValue 'PGADMIN_DEFAULT_EMAIL' 'admin@example.com'

Write-Host ''
Write-Host 'taskhub is up.'
Write-Host "  API        http://${bindHost}:${webPort}/api/v1  and  http://${bindHost}:${webPort}/api/v2"
Write-Host "  API docs   http://${bindHost}:${webPort}/docs"
Write-Host "  Health     http://${bindHost}:${webPort}/health   (readiness: /ready)"
Write-Host "  pgAdmin    http://${bindHost}:${pgadminPort}   login $pgadminEmail, password PGADMIN_DEFAULT_PASSWORD in .env"
Write-Host '             (the "taskhub" server is already registered; open it, no password asked)'
Write-Host ''
Write-Host 'Create an admin account:'
Write-Host "  docker compose exec web taskhub create-superuser --email admin@example.com --password '<a strong password>'"
Write-Host 'More workers:    docker compose up -d --scale worker=3'
Write-Host 'Logs:            docker compose logs -f web worker'
Write-Host 'Stop:            docker compose down          (add -v to delete the data volumes)'
