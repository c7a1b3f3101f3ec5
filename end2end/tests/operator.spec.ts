import { expect, test, type Page } from "@playwright/test";
import { startStages, startUpdatingPipeline } from "./pipeline";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

const received = async (page: Page) =>
  Number(/(\d+) received/.exec(await page.getByTestId("tail-status").innerText())?.[1] ?? "0");

// Cell 2's live tail: new records stream in as the producer writes them (newest first), pause
// stops them arriving (the stream is closed), resume goes on from the moment of the pause.
test("the live tail shows new records, pause stops them, resume continues", async ({ page, request }) => {
  await page.goto("/#cell-2");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  expect((await request.post("/api/stages/producer/start", { data: {} })).ok()).toBeTruthy();
  expect((await request.post("/api/stages/streamer/start", { data: { rate: 20 } })).ok()).toBeTruthy();

  await page.locator("#cell-2 select[name=tail-topic]").selectOption("reviews");
  await page.getByTestId("tail-start").click();
  const rows = page.getByTestId("tail-rows").locator("tr");
  await expect.poll(() => rows.count(), { timeout: 30_000 }).toBeGreaterThan(3);
  await expect(page.getByTestId("tail-status")).toContainText("live");
  // Timestamps and keys are shown with each record.
  await expect(rows.first().locator("td").nth(1)).toHaveText(/^\d\d:\d\d:\d\d\.\d{3}$/);

  await page.getByTestId("tail-pause").click();
  await expect(page.getByTestId("tail-status")).toContainText("paused");
  const atPause = await received(page);
  const firstAtPause = await rows.first().innerText();
  // The producer goes on writing; nothing reaches the paused page.
  await page.waitForTimeout(2_500);
  expect(await received(page)).toBe(atPause);
  expect(await rows.first().innerText()).toBe(firstAtPause);

  await page.getByTestId("tail-pause").click();
  await expect(page.getByTestId("tail-status")).toContainText("live");
  await expect.poll(() => received(page), { timeout: 30_000 }).toBeGreaterThan(atPause + 3);
  await page.getByTestId("tail-stop").click();
  await expect(page.getByTestId("tail-status")).toContainText("off");
});

// The tail's filters run on the server: a key filter lets only that key's records through.
test("the tail's key filter shows only that key", async ({ page, request }) => {
  await page.goto("/#cell-2");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  expect((await request.post("/api/stages/producer/start", { data: {} })).ok()).toBeTruthy();
  expect((await request.post("/api/stages/streamer/start", { data: { rate: 50, limit: 200 } })).ok()).toBeTruthy();
  // A key written in the last minutes: the newest record's.
  let key = "";
  await expect
    .poll(
      async () => {
        const read = await request.get("/api/kafka/topics/reviews/messages?partition=0&offset=0&limit=1");
        key = read.ok() ? ((await read.json())[0]?.key ?? "") : "";
        return key;
      },
      { timeout: 30_000 },
    )
    .not.toBe("");
  await page.locator("#cell-2 select[name=tail-topic]").selectOption("reviews");
  await page.locator("#cell-2 input[name=tail-key]").fill(key);
  await page.locator("#cell-2 input[name=tail-from]").fill("60");
  await page.getByTestId("tail-start").click();
  const keys = page.getByTestId("tail-rows").locator("td.key");
  await expect.poll(() => keys.count(), { timeout: 30_000 }).toBeGreaterThan(0);
  expect(new Set(await keys.allInnerTexts())).toEqual(new Set([key]));
  await page.getByTestId("tail-stop").click();
});

// Each consumer stage's health in its cell, and the changelog of window results in update mode.
test("stage health panels and the update-mode changelog", async ({ page, request }) => {
  await page.goto("/#cell-4");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  await startUpdatingPipeline(request);
  for (const stage of ["sentiment", "aggregate", "indexer"]) {
    await expect(page.getByTestId(`${stage}-load`)).toContainText("ms", { timeout: 60_000 });
  }
  await expect(page.getByTestId("operator-state")).toContainText("checkpoints", { timeout: 60_000 });
  await expect(page.getByTestId("operator-state")).toContainText("min / avg / max");
  // Each panel's sparkline: input against processed, a point a second from the server's history.
  for (const stage of ["sentiment", "aggregate", "indexer"]) {
    const spark = page.getByTestId(`${stage}-load`).getByTestId("rates-sparkline");
    await expect(spark).toHaveAttribute("aria-label", /records\/s over the last \d+ samples/);
    // Each point of a line's path is one "x,y" pair.
    const points = async (line: string) =>
      ((await spark.locator(`path.${line}`).getAttribute("d")) ?? "").split(",").length - 1;
    await expect.poll(() => points("spark-input"), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
    await expect.poll(() => points("spark-processed"), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
  }

  // The newest 30 results can all be first results (+I) for a while: the job starts with the
  // backlog other specs left in reviews.sentiment, read in large batches where a session is
  // often whole in one trigger. Read again, as a learner would, until an update (−U then +U) is
  // among them.
  const markers = page.getByTestId("changelog").locator("td.marker");
  await expect
    .poll(
      async () => {
        await page.getByTestId("changelog-read").click();
        await expect.poll(() => markers.count()).toBeGreaterThan(0);
        const seen = new Set(await markers.allInnerTexts());
        return seen.has("+U") && seen.has("−U");
      },
      { timeout: 60_000, intervals: [2_000] },
    )
    .toBe(true);
});

// Cell 3's and cell 5's lag charts start from the server's history (sampled every second), so a
// reload keeps them instead of starting again from one point.
test("the lag charts keep their history across a reload", async ({ page, request }) => {
  await page.goto("/#cell-3");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  await startStages(request, [
    ["producer", {}],
    ["sentiment", {}],
    ["indexer", {}],
    ["streamer", { rate: 50 }],
  ]);
  // The sentiment group's partitions are those of `reviews`, the indexer's those of
  // `reviews.sentiment`.
  const charts = [
    ["lag-chart", "reviews-0"],
    ["indexer-lag-chart", "reviews.sentiment-0"],
  ] as const;
  const samples = async (testId: string) => {
    // One "M x,y" or "L x,y" per sample of the first partition's line.
    const points = await page.getByTestId(testId).locator("path.lag-line").first().getAttribute("d");
    return points ? points.trim().split(/\s+/).length : 0;
  };
  for (const [testId, firstLine] of charts) {
    await expect(page.getByTestId(testId).locator("path.lag-line")).toHaveCount(3, { timeout: 60_000 });
    await expect(page.getByTestId(testId).locator(".chart-legend")).toContainText(firstLine);
    await expect.poll(() => samples(testId), { timeout: 60_000 }).toBeGreaterThanOrEqual(20);
  }
  await page.reload();
  // A chart fed only by the live feed would have a point or two now, one more each second.
  for (const [testId] of charts) {
    await expect.poll(() => samples(testId), { timeout: 5_000 }).toBeGreaterThanOrEqual(15);
  }
});

// The tail's time range as local dates and times (datetime-local inputs): from an hour ago to an
// hour ahead shows the records just written; a range that ends before it starts is refused, and
// so, by the server with its message shown, is a start two days ahead.
test("the tail's time range takes a local date and time", async ({ page, request }) => {
  // A datetime-local value ("2026-12-07T06:30") of `ms` in the browser's (= this machine's) zone.
  const local = (ms: number) =>
    new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
  await page.goto("/#cell-2");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  expect((await request.post("/api/stages/producer/start", { data: {} })).ok()).toBeTruthy();
  expect((await request.post("/api/stages/streamer/start", { data: { rate: 0, limit: 50 } })).ok()).toBeTruthy();
  const now = Date.now();
  await page.locator("#cell-2 select[name=tail-topic]").selectOption("reviews");
  await page.locator("#cell-2 input[name=tail-from-at]").fill(local(now - 3_600_000));
  await page.locator("#cell-2 input[name=tail-until-at]").fill(local(now + 3_600_000));
  await page.getByTestId("tail-start").click();
  const rows = page.getByTestId("tail-rows").locator("tr");
  await expect.poll(() => rows.count(), { timeout: 30_000 }).toBeGreaterThan(0);
  await expect(page.getByTestId("tail-status")).toContainText("live");
  await page.getByTestId("tail-stop").click();

  // Ends before it starts: refused in the page, naming the field, before any request.
  await page.locator("#cell-2 input[name=tail-until-at]").fill(local(now - 7_200_000));
  await page.getByTestId("tail-start").click();
  await expect(page.getByTestId("tail-view").locator("[role=alert]")).toContainText("until: before from");
  // Minutes ago and a time for the same bound: which one was meant?
  await page.locator("#cell-2 input[name=tail-until-at]").fill("");
  await page.locator("#cell-2 input[name=tail-from]").fill("5");
  await page.getByTestId("tail-start").click();
  await expect(page.getByTestId("tail-view").locator("[role=alert]")).toContainText("from: minutes ago or a time, not both");
  await page.getByTestId("tail-view").screenshot({ path: "screenshots/tail-time-range.png" });
  // A start two days ahead passes the page's checks but not the server's: the page shows the
  // server's own message naming the field (read from the check, as EventSource cannot).
  await page.locator("#cell-2 input[name=tail-from]").fill("");
  await page.locator("#cell-2 input[name=tail-from-at]").fill(local(now + 2 * 86_400_000));
  await page.getByTestId("tail-start").click();
  const alert = page.getByTestId("tail-view").locator("[role=alert]");
  await expect(alert).toContainText("tail refused: from_ms: ms since the epoch");
  await expect(alert).toContainText("at most a day ahead of the server's clock");
  await expect(page.getByTestId("tail-status")).toContainText("off");
  // The server bounds the times itself, naming the field.
  const far = await request.get(`/api/kafka/topics/reviews/tail?from_ms=${now * 1000}`);
  expect(far.status()).toBe(400);
  expect(await far.text()).toContain("from_ms");
  const junk = await request.get("/api/kafka/topics/reviews/tail?until_ms=noon");
  expect(junk.status()).toBe(400);
  expect(await junk.text()).toContain("until_ms");
});
