#!/usr/bin/env bash
# The official openai Node SDK for the client tests (tests/runtime/v1/test_responses_node.py), fetched once
# from npm's registry into the cache and checked against the registry's integrity hash; it has no
# dependencies, so no npm is needed. Prints the folder to put in NODE_PATH.
set -euo pipefail
VERSION=6.30.1
INTEGRITY=5bkK9GoQMd8j4a0TeY95AIC7FtGP38HlfO+YvRq4TkEndHLI1iR8ct9wajmsAMw+G/QcPOZnqzhhsUT2GKUWkA==
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/cortex"
target="$CACHE/node-openai-$VERSION/node_modules"
if [ ! -f "$target/openai/package.json" ]; then
  mkdir -p "$CACHE"
  work="$(mktemp -d "$CACHE/.node-openai.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  curl -fsSL --retry 3 -o "$work/openai.tgz" "https://registry.npmjs.org/openai/-/openai-$VERSION.tgz"
  got="$(openssl dgst -sha512 -binary "$work/openai.tgz" | base64 -w0)"
  [ "$got" = "$INTEGRITY" ] || { echo "node-openai: openai-$VERSION.tgz has sha512 $got, not $INTEGRITY" >&2; exit 1; }
  mkdir -p "$work/node_modules/openai"
  tar -xzf "$work/openai.tgz" -C "$work/node_modules/openai" --strip-components=1 --no-same-owner
  mkdir -p "$(dirname "$target")"
  mv "$work/node_modules" "$target"
fi
echo "$target"
