import { defineConfig } from "@playwright/test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { viewerToken } from "./tests/tokens";

// The server under test: the binary `cargo leptos build` produced, on a port chosen now, with a
// fresh data dir and an embedded broker on a free port. Playwright starts it and stops it.
function freePort(): number {
  const out = execFileSync("python3", [
    "-c",
    "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])",
  ]);
  return Number(out.toString().trim());
}

const port = Number(process.env.PIPEBOOK_E2E_PORT ?? freePort());
process.env.PIPEBOOK_E2E_PORT = String(port);
const dataDir = mkdtempSync(join(tmpdir(), "pipebook-e2e-"));
const bin = process.env.PIPEBOOK_BIN ?? "../target/debug/pipebook";
const siteRoot = process.env.PIPEBOOK_SITE_ROOT ?? "../target/site";

// The lesson specs need a server nobody has used yet (their checks look at what the pipeline
// did, and other specs leave counters behind, so "Start over" finds steps already true): each
// runs alone, in an invocation of its own with its own fresh server —
// PIPEBOOK_E2E_SUITE=lesson (the whole lesson), =predict (one prediction) or =datasets (the seeds'
// other datasets) npx playwright test.
const ownServer: Record<string, RegExp> = {
  lesson: /lesson\.spec\.ts$/,
  predict: /predict\.spec\.ts$/,
  // Leaves tweets at the start of `reviews` and the streamer's last dataset at companies, which
  // other specs' forms would restore: its own server (PIPEBOOK_E2E_SUITE=datasets).
  datasets: /seed-datasets\.spec\.ts$/,
};
const suite = process.env.PIPEBOOK_E2E_SUITE;
if (suite !== undefined && !(suite in ownServer)) {
  throw new Error(`PIPEBOOK_E2E_SUITE must be one of ${Object.keys(ownServer).join(", ")}, got ${suite}`);
}

export default defineConfig({
  testDir: "./tests",
  testMatch: suite ? ownServer[suite] : /.*\.spec\.ts$/,
  testIgnore: suite ? [] : Object.values(ownServer),
  timeout: 120_000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    viewport: { width: 1280, height: 800 },
    // A click on a control that never becomes enabled otherwise waits out the whole test (15 min
    // for the lesson): fail at the stuck action, naming it.
    actionTimeout: 30_000,
    navigationTimeout: 60_000,
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  webServer: {
    command: bin,
    url: `http://127.0.0.1:${port}/api/health`,
    timeout: 120_000,
    reuseExistingServer: false,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      PIPEBOOK_ADDR: `127.0.0.1:${port}`,
      PIPEBOOK_DATA_DIR: dataDir,
      PIPEBOOK_BROKER_ADDR: "127.0.0.1:0",
      PIPEBOOK_VIEWER_TOKEN: viewerToken,
      LEPTOS_SITE_ROOT: siteRoot,
      LEPTOS_OUTPUT_NAME: "pipebook",
      RUST_LOG: "info,tansu=warn,libsql=warn,librdkafka=off,rdkafka::client=off",
    },
  },
});
