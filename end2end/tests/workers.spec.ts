import { expect, test } from "@playwright/test";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { stopAllStages } from "./reset";

// A `pipebook worker` process beside the server's own worker: cell 3's members table lists it
// as remote, with its host, pid and figures from its heartbeats on `pipebook.workers`.
const bin = process.env.PIPEBOOK_BIN ?? "../target/debug/pipebook";
let worker: ChildProcess | undefined;

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

test.afterEach(() => {
  worker?.kill("SIGKILL");
  worker = undefined;
});

test("the members table shows a remote worker process with its host and figures", async ({ page, request }) => {
  const pipeline = await (await request.get("/api/pipeline")).json();
  const brokers: string = pipeline.kafka.bootstrap_servers;
  worker = spawn(bin, ["worker", "--stage", "sentiment", "--brokers", brokers], {
    env: { ...process.env, RUST_LOG: "warn", PIPEBOOK_KAFKA_BROKERS: "" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const pid = worker.pid;
  expect(pid).toBeDefined();
  const host = readFileSync("/proc/sys/kernel/hostname", "utf8").trim();

  await page.goto("/#cell-3");
  await page.getByLabel("Rate (reviews/s)").fill("500");
  await page.getByTestId("streamer-start").click();
  await page.getByLabel("Workers", { exact: true }).fill("1");
  await page.getByTestId("sentiment-start").click();

  const members = page.getByTestId("sentiment-members");
  const remote = members.locator("tr.member-remote.member-alive");
  await expect(remote).toHaveCount(1, { timeout: 60_000 });
  await expect(remote).toContainText(`p${pid}-worker-1`);
  await expect(remote).toContainText(host);
  await expect(remote).toContainText(String(pid));
  await expect(members.locator("tr.member-in-server.member-alive")).toHaveCount(1);
  // Its figures grow as it labels its share of the partitions.
  await expect
    .poll(async () => Number((await remote.locator("td").nth(5).innerText()).replace(/,/g, "")), {
      timeout: 60_000,
    })
    .toBeGreaterThan(0);
  await page.locator("#cell-3").screenshot({ path: "screenshots/05b-sentiment-members.png" });

  // kill -9: the member is shown gone once its heartbeats stop for 5 s.
  worker.kill("SIGKILL");
  await expect(members.locator("tr.member-remote.member-gone")).toHaveCount(1, { timeout: 30_000 });
  await page.getByTestId("streamer-stop").click();
});

test("cell 4 lists the aggregate job among its group's members", async ({ page, request }) => {
  const started = await request.post("/api/stages/aggregate/start", { data: {} });
  expect(started.ok()).toBeTruthy();
  await page.goto("/#cell-4");
  const members = page.getByTestId("aggregate-members");
  const own = members.locator("tr.member-in-server.member-alive");
  await expect(own).toHaveCount(1, { timeout: 30_000 });
  await expect(own.locator("td").first()).toHaveText("aggregate");
  await request.post("/api/stages/aggregate/stop", { data: {} });
});

test("the Parquet sink's member lists its folder and its newest files", async ({ page, request }) => {
  const starts: [string, object][] = [
    ["streamer", { rate: 200 }],
    ["producer", {}],
    ["sentiment", { workers: 1 }],
    ["parquet", { roll_secs: 2 }],
  ];
  for (const [stage, body] of starts) {
    expect((await request.post(`/api/stages/${stage}/start`, { data: body })).ok()).toBeTruthy();
  }
  await page.goto("/#cell-4");
  // From the sink's heartbeat: where its files are on its host, then the newest of them.
  const files = page.getByTestId("parquet-members").getByTestId("member-files");
  await expect(files).toHaveCount(1, { timeout: 30_000 });
  await expect(files.getByTestId("member-files-dir")).toHaveText(/\/parquet$/);
  const newest = files.locator("li").first();
  await expect(newest).toContainText(/part-\d+-\d+\.parquet · [\d,]+ rows/, { timeout: 60_000 });
  await expect(newest).toContainText("from reviews.sentiment-");
  await page.locator("#cell-4").screenshot({ path: "screenshots/05c-parquet-member-files.png" });
  await stopAllStages(request);
});
