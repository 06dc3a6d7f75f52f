#!/usr/bin/env bash
# Builds h2spec, the HTTP/2 conformance suite (github.com/summerwind/h2spec,
# MIT, commit af83a65), offline from the source in
# scripts/h2spec/h2spec-af83a65.tar.gz with Debian's Go packages, into a
# cache outside the repository. tests/it/h2spec.rs runs it; .ci/run calls
# this script before the tests.
#
#   scripts/build-h2spec.sh [OUT]
#
# OUT defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/conveyor/h2spec/h2spec,
# where the test looks (after PATH). An OUT already built is kept. Prints the
# binary's path. Installs the Go packages with apt-get when run as root and
# they are missing. Run by hand:
#
#   h2spec -h 127.0.0.1 -p PORT -t -k     # TLS (ALPN h2); drop -t -k for h2c
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tarball="$here/h2spec/h2spec-af83a65.tar.gz"
sha256=4ea2efc4f135b0b08595c644e7bd5bebb9f91bc1f5cd43b2a452035caffeb7ca
out="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/conveyor/h2spec/h2spec}"
if [[ -x "$out" ]]; then
    echo "$out"
    exit 0
fi
echo "$sha256  $tarball" | sha256sum --check --quiet ||
    { echo "build-h2spec: $tarball is not the expected source" >&2; exit 1; }
pkgs=(golang-go golang-github-fatih-color-dev golang-github-spf13-cobra-dev
      golang-golang-x-net-dev golang-github-mattn-go-colorable-dev
      golang-github-mattn-go-isatty-dev golang-github-spf13-pflag-dev
      golang-golang-x-sys-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "build-h2spec: needs ${missing[*]} (apt-get install as root)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/github.com/summerwind"
tar -xzf "$tarball" -C "$work/src/github.com/summerwind"
mkdir -p "$(dirname "$out")"
# GOPATH mode: the dependencies are Debian's, under /usr/share/gocode.
(cd "$work/src/github.com/summerwind/h2spec" &&
    GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOCACHE="$work/cache" \
        GOFLAGS= go build -o "$work/h2spec" ./cmd/h2spec)
mv "$work/h2spec" "$out"
echo "$out"
