import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { stopAllStages } from "./reset";

// Cell 2's offset reset, by timestamp, done through the form: batch A is streamed, a time is
// noted, batch B is streamed; the sentiment stage labels both and is stopped. Resetting its group
// to that time must move each partition back to its first record of B, so starting the stage
// again re-reads exactly B's records — no more (A stays read), no fewer.

const GROUP = "pipebook-sentiment";
const BATCH_A = 40;
const BATCH_B = 30;

const number = (text: string) => Number(text.replace(/[^\d-]/g, ""));

// A datetime-local value to the second ("2026-12-07T23:30:15") of `ms` in the browser's zone,
// which is this machine's, as the server's clock is.
const localSeconds = (ms: number) =>
  new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 19);

async function reviewsHighs(request: APIRequestContext): Promise<Map<number, number>> {
  const topics: { name: string; partitions: { id: number; high: number }[] }[] = await (
    await request.get("/api/kafka/topics")
  ).json();
  const reviews = topics.find((t) => t.name === "reviews");
  return new Map((reviews?.partitions ?? []).map((p) => [p.id, p.high]));
}

const sum = (highs: Map<number, number>) => [...highs.values()].reduce((a, b) => a + b, 0);

async function groupLag(request: APIRequestContext): Promise<number | undefined> {
  const groups: { group: string; partitions: { lag: number }[] }[] = await (await request.get("/api/kafka/groups")).json();
  return groups.find((g) => g.group === GROUP)?.partitions.reduce((a, p) => a + p.lag, 0);
}

// Streams `count` reviews of a seed nobody streamed before (the same seed sends the same review
// ids) and waits until the broker holds all of them.
async function stream(request: APIRequestContext, count: number, seed: number) {
  const before = sum(await reviewsHighs(request));
  await request.post("/api/stages/streamer/stop", { data: {} });
  const started = await request.post("/api/stages/streamer/start", { data: { rate: 50, limit: count, seed } });
  expect(started.ok(), await started.text()).toBeTruthy();
  await expect
    .poll(async () => sum(await reviewsHighs(request)) - before, { timeout: 90_000 })
    .toBe(count);
  await request.post("/api/stages/streamer/stop", { data: {} });
}

// Where a reset to `at` must put each partition: its first record stamped at or after `at`, or
// its end when it has none — read from the records themselves, not from the reset.
async function expectedAfter(request: APIRequestContext, at: number): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const [partition, high] of await reviewsHighs(request)) {
    const from = Math.max(0, high - 300);
    const records: { offset: number; timestamp: number | null }[] = await (
      await request.get(`/api/kafka/topics/reviews/messages?partition=${partition}&offset=${from}&limit=300`)
    ).json();
    const first = records
      .filter((r) => (r.timestamp ?? 0) >= at)
      .map((r) => r.offset)
      .sort((a, b) => a - b)[0];
    out.set(partition, first ?? high);
  }
  return out;
}

// "reviews-2 | 1,234 → 1,220 | 14 | 0" as numbers, one entry per partition row.
async function resetRows(page: Page) {
  const rows = page.getByTestId("reset-table").locator("tbody tr");
  const out = new Map<number, { before: number; after: number; reread: number; skipped: number }>();
  for (const row of await rows.all()) {
    const cells = await row.locator("td").allInnerTexts();
    const [before, after] = cells[1].split("→").map(number);
    out.set(Number(cells[0].replace("reviews-", "")), {
      before,
      after,
      reread: number(cells[2]),
      skipped: number(cells[3]),
    });
  }
  return out;
}

test("a reset by timestamp through the form re-reads exactly the records after that time", async ({ page, request }) => {
  test.setTimeout(600_000);
  await stopAllStages(request);
  await page.goto("/#cell-2");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  expect((await request.post("/api/stages/producer/start", { data: {} })).ok()).toBeTruthy();
  expect((await request.post("/api/stages/sentiment/start", { data: {} })).ok()).toBeTruthy();

  const seed = Date.now() % 1_000_000_007;
  await stream(request, BATCH_A, seed);
  // Every record of A was stamped before now (acknowledged); the split is the next whole second
  // after, and B starts a second later, so each of B's stamps is after the split.
  const split = Math.ceil((Date.now() + 1) / 1000) * 1000;
  while (Date.now() < split + 1_000) await page.waitForTimeout(250);
  await stream(request, BATCH_B, seed + 1);

  // The stage labels both batches, then is stopped from its cell.
  await expect.poll(() => groupLag(request), { timeout: 120_000 }).toBe(0);
  await page.locator("#cell-3").scrollIntoViewIfNeeded();
  await page.getByTestId("sentiment-stop").click();
  const members = page.locator(`tr.group-row[data-group="${GROUP}"] [data-testid=group-members]`);
  await expect(members).toHaveText("none", { timeout: 60_000 });

  const highs = await reviewsHighs(request);
  const expected = await expectedAfter(request, split);
  const expectedReread = [...highs].reduce((n, [p, high]) => n + high - (expected.get(p) ?? high), 0);
  // The split cuts where it was meant to: B's records are after it, A's before.
  expect(expectedReread).toBe(BATCH_B);

  // The form: the group, "a time", the split as a local date and time; a dry run first.
  const form = page.getByTestId("reset-form");
  await form.scrollIntoViewIfNeeded();
  await form.locator("select[name=reset-group]").selectOption(GROUP);
  await form.locator("select[name=reset-to]").selectOption("timestamp");
  await form.locator("input[name=reset-at]").fill(localSeconds(split));
  await page.getByTestId("reset-dry-run").click();
  const headline = page.getByTestId("reset-headline");
  await expect(headline).toHaveText(`Dry run for ${GROUP}, nothing committed: ${BATCH_B} to read again, 0 skipped`);
  const dry = await resetRows(page);
  expect([...dry.keys()].sort()).toEqual([...highs.keys()].sort());
  for (const [partition, row] of dry) {
    // Caught up before: each partition was at its end, and goes back to its first record of B.
    expect(row, `reviews-${partition}`).toEqual({
      before: highs.get(partition),
      after: expected.get(partition),
      reread: (highs.get(partition) ?? 0) - (expected.get(partition) ?? 0),
      skipped: 0,
    });
  }
  // A dry run commits nothing: the group is still caught up.
  const groupLagCell = page.locator(`tr.group-row[data-group="${GROUP}"] [data-testid=group-lag]`);
  await expect(groupLagCell).toHaveText("0");

  await page.getByTestId("reset-execute").click();
  await expect(headline).toHaveText(`Reset ${GROUP}: ${BATCH_B} to read again, 0 skipped`);
  expect(await resetRows(page)).toEqual(dry);
  // The lag the live feed shows is B, now that the offsets moved back.
  await expect(groupLagCell).toHaveText(String(BATCH_B), { timeout: 30_000 });

  // Started again from its cell, the stage reads B again and nothing else (its counters start
  // at zero with each start).
  await page.locator("#cell-3").scrollIntoViewIfNeeded();
  await page.getByTestId("sentiment-start").click();
  await expect(page.getByTestId("sentiment-lag")).toHaveText("0", { timeout: 120_000 });
  await expect(page.getByTestId("sentiment-produced")).toHaveText(String(BATCH_B), { timeout: 30_000 });
  const pipeline: { stages: { id: string; counters: Record<string, number> }[] } = await (
    await request.get("/api/pipeline")
  ).json();
  expect(pipeline.stages.find((s) => s.id === "sentiment")?.counters.consumed).toBe(BATCH_B);
  await stopAllStages(request);
});
