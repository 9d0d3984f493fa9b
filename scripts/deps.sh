#!/usr/bin/env bash
# Installs what building and testing Tollgate needs on a Debian machine with Rust, and nothing
# that is already there. Safe to run again.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)        # pingora's libz-ng-sys
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v curl >/dev/null 2>&1 || need+=(curl)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
