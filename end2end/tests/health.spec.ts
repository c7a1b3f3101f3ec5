import { expect, test } from "@playwright/test";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

test.afterEach(async ({ request }) => {
  await request.post("/api/faults/search-outage", { data: { down: false } });
});

// The strip above the cells: every stage keeps up, then a search outage makes the indexer fall
// behind (its lag grows while reviews keep coming) and the bottleneck mark lands on it, with why.
test("the bottleneck mark moves to the search stage when search is down", async ({ page, request }) => {
  await page.goto("/");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  for (const stage of ["producer", "sentiment", "indexer"]) {
    expect((await request.post(`/api/stages/${stage}/start`, { data: {} })).ok()).toBeTruthy();
  }
  expect((await request.post("/api/stages/streamer/start", { data: { rate: 200 } })).ok()).toBeTruthy();
  const strip = page.getByTestId("pipeline-strip");
  await expect(strip.locator('[data-stage="indexer"]')).not.toContainText("stopped", { timeout: 60_000 });
  await expect(strip.locator(".bottleneck")).toHaveCount(0, { timeout: 60_000 });

  expect((await request.post("/api/faults/search-outage", { data: { down: true } })).ok()).toBeTruthy();
  await expect(strip.locator('[data-stage="indexer"].bottleneck')).toBeVisible({ timeout: 90_000 });
  await expect(page.getByTestId("bottleneck-why")).toContainText("search index");
  await strip.screenshot({ path: "screenshots/00-strip-bottleneck.png" });

  // Search back: the indexer catches up and the mark goes.
  expect((await request.post("/api/faults/search-outage", { data: { down: false } })).ok()).toBeTruthy();
  await expect(strip.locator(".bottleneck")).toHaveCount(0, { timeout: 120_000 });
});
