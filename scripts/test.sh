#!/usr/bin/env bash
# The test command from README.md: every unit, property, multi-node and chaos test.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --workspace --locked "$@"
