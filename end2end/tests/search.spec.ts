import { expect, test, type Page } from "@playwright/test";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

async function number(page: Page, testId: string): Promise<number> {
  return Number((await page.getByTestId(testId).innerText()).replace(/[^0-9]/g, ""));
}

/** Heights of the bars a chart drew. */
async function barHeights(page: Page, testId: string): Promise<number[]> {
  return page
    .getByTestId(testId)
    .locator("rect.bar-seg")
    .evaluateAll((rects) => rects.map((r) => Number(r.getAttribute("height"))));
}

test("indexed reviews are searchable by word and sentiment, and the aggregations chart them", async ({
  page,
}) => {
  await page.goto("/#cell-5");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  // Feed the pipeline: 3,000 reviews, labelled, then indexed.
  await page.getByLabel("Rate (reviews/s)").fill("0");
  await page.getByLabel("Stop after").fill("3000");
  // Replay the generator's own dates (10 s apart), so the histogram spans several hours.
  await page.getByTestId("streamer-clock").selectOption("replay");
  await page.getByTestId("streamer-start").click();
  await page.getByTestId("sentiment-start").click();
  await page.getByTestId("indexer-start").click();
  await expect.poll(() => number(page, "search-documents"), { timeout: 90_000 }).toBeGreaterThan(1000);

  // Search "service", NEGATIVE only: every hit is NEGATIVE and contains the word.
  await page.getByTestId("search-q").fill("service");
  await page.getByTestId("search-sentiment").selectOption("NEGATIVE");
  await page.getByTestId("search-submit").click();
  const hits = page.getByTestId("search-hit");
  await expect(hits.first()).toBeVisible();
  expect(await hits.count()).toBeGreaterThan(0);
  for (const text of await hits.locator("td.excerpt").allInnerTexts()) {
    expect(text.toLowerCase()).toContain("service");
  }
  for (const label of await hits.getByTestId("hit-sentiment").allInnerTexts()) {
    expect(label).toBe("NEGATIVE");
  }
  await expect(page.getByTestId("search-total")).toContainText("matching documents");

  // The search engine's aggregations: bars per sentiment, per stars and over time, all non-zero.
  for (const chart of ["chart-sentiment", "chart-stars", "chart-time"]) {
    await expect.poll(async () => (await barHeights(page, chart)).length).toBeGreaterThan(2);
    expect((await barHeights(page, chart)).every((h) => h > 0)).toBe(true);
  }
  await expect(page.getByTestId("percentiles")).toContainText("p50");
  await page.locator("#cell-5").screenshot({ path: "screenshots/06-search.png" });
  await page.locator("#cell-5 .three-col").screenshot({ path: "screenshots/07-search-charts.png" });
});
