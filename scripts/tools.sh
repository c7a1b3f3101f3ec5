#!/usr/bin/env bash
# Installs what building Pipebook needs on a machine that has only the Rust toolchain, from the
# package registries alone (crates.io, npm, Debian, PyPI): the wasm32 target and wasm-bindgen-cli
# (at the exact version in Cargo.lock) always; then
#   (no flag)  wasm-opt (npm `binaryen`), for scripts/run's release build;
#   --bench    nothing more (scripts/bench sets up its own Python venv);
#   --test     Chromium from Debian, the Playwright test runner (npm), osmem-server (PyPI), an
#              Elasticsearch-API test server the search tests index into, and kafka-python
#              (PyPI), the broker conformance suite's client that is not librdkafka. The tests build the
#              site with scripts/site (plain cargo + wasm-bindgen), which saves installing
#              cargo-leptos (~20 min cold on two cores) on a CI machine.
# Sourced by scripts/run, scripts/test and scripts/bench; safe to run again: it installs only
# what is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# cargo-leptos is not on the README commands' path (scripts/site does its job); contributors who
# want `cargo leptos watch` install 0.3.10 (0.3.11 needs a newer rustc than 1.95).
BINARYEN_VERSION="132.0.0"      # Debian's binaryen 108 makes a release .wasm that fails to hydrate
OSMEM_VERSION="0.1.6"
KAFKA_PYTHON_VERSION="3.0.12"   # the broker conformance suite's client that is not librdkafka
# The tool that cuts the deferred cells' code out of the page's wasm (app/src/cells/deferred.rs);
# its binary is behind the crate's build-binary feature. 0.2.4 reads the split points that
# wasm_split_macros 0.2.2 (leptos 0.8.23's) writes.
WASM_SPLIT_VERSION="0.2.4"

source "$ROOT/scripts/steps.sh"

# Build outside the clone when a cache is available, so a fresh clone reuses earlier builds.
if [[ -z "${CARGO_TARGET_DIR:-}" && -d /var/cache && -w /var/cache ]]; then
  export CARGO_TARGET_DIR=/var/cache/pipebook-target
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# Incremental caches pay off for an editing session, not for clean clones; they were most of the
# disk the shared target dir used.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export PATH="$HOME/.cargo/bin:$ROOT/.tools/wasm-split/bin:$ROOT/.tools/node_modules/.bin:$PATH"
# leptos_config bakes this in at compile time; setting it for every build (tests included) keeps
# one set of artifacts instead of rebuilding leptos when switching between cargo and cargo-leptos.
export LEPTOS_OUTPUT_NAME=pipebook

# Build tools for speed of building, not of running: cargo-leptos ships with lto + one codegen unit,
# which makes a cold install take several times longer on two cores.
fast_install() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install "$@"
}

install_wasm_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "adding the wasm32-unknown-unknown target (rustup)" "~30 s"
    rustup target add wasm32-unknown-unknown
  fi
  local wb
  wb="$(grep -A1 '^name = "wasm-bindgen"$' "$ROOT/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p')"
  if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != *"$wb"* ]]; then
    step "installing wasm-bindgen-cli $wb from crates.io (must equal the wasm-bindgen crate in Cargo.lock)" "~2.5 min"
    fast_install wasm-bindgen-cli --version "=$wb"
  fi
  if [[ ! -x "$ROOT/.tools/wasm-split/bin/wasm-split-cli" ]] || [[ "$(cat "$ROOT/.tools/wasm-split/version" 2>/dev/null || true)" != "$WASM_SPLIT_VERSION" ]]; then
    step "installing wasm-split-cli $WASM_SPLIT_VERSION from crates.io (splits the page's wasm)" "~2 min"
    fast_install --locked wasm_split_cli_support --version "=$WASM_SPLIT_VERSION" \
      --features build-binary --root "$ROOT/.tools/wasm-split"
    echo "$WASM_SPLIT_VERSION" > "$ROOT/.tools/wasm-split/version"
  fi
}

install_release_tools() {
  if [[ ! -x "$ROOT/.tools/node_modules/.bin/wasm-opt" ]]; then
    step "installing wasm-opt (npm binaryen $BINARYEN_VERSION)" "~15 s"
    npm install --no-audit --no-fund --prefix "$ROOT/.tools" "binaryen@$BINARYEN_VERSION" >&2
  fi
}

install_browser_tools() {
  if [[ ! -x /usr/bin/chromium ]]; then
    step "installing Chromium from Debian" "~1 min"
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
  if [[ ! -d "$ROOT/end2end/node_modules/@playwright/test" ]]; then
    step "installing the Playwright test runner (no browser download: it uses /usr/bin/chromium)" "~20 s"
    (cd "$ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >&2)
  fi
}

# osmem-server: an in-memory server speaking Elasticsearch's REST API (a static Go binary in a
# PyPI wheel). Exports PIPEBOOK_TEST_OSMEM, the binary's path, for server/tests/search.rs.
install_search_test_server() {
  local venv="$ROOT/.tools/search-venv"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import osmem_server" 2>/dev/null; then
    step "installing osmem-server $OSMEM_VERSION from PyPI (Elasticsearch-API test server)" "~15 s"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "osmem-server==$OSMEM_VERSION"
  fi
  PIPEBOOK_TEST_OSMEM="$("$venv/bin/python" -c \
    'import os, osmem_server; print(os.path.join(os.path.dirname(osmem_server.__file__), "bin", "osmem-server"))')"
  export PIPEBOOK_TEST_OSMEM
}

# kafka-python: a pure-Python Kafka client (its own protocol code, not librdkafka), so the broker
# conformance suite tests what "Kafka tools work here" claims. Exports PIPEBOOK_TEST_KAFKA_PYTHON,
# the venv's python, for server/tests/broker_conformance.rs.
install_kafka_test_client() {
  local venv="$ROOT/.tools/kafka-python-venv"
  if [[ ! -x "$venv/bin/python" ]] || [[ "$("$venv/bin/python" -c \
      'import kafka; print(kafka.__version__)' 2>/dev/null || true)" != "$KAFKA_PYTHON_VERSION" ]]; then
    log "installing kafka-python $KAFKA_PYTHON_VERSION from PyPI (broker conformance client)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "kafka-python==$KAFKA_PYTHON_VERSION"
  fi
  export PIPEBOOK_TEST_KAFKA_PYTHON="$venv/bin/python"
}

install_wasm_tools
case "${1:-}" in
  --test)
    install_browser_tools
    install_search_test_server
    install_kafka_test_client
    ;;
  --bench) ;;
  *) install_release_tools ;;
esac
step_done
