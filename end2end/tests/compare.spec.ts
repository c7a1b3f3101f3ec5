import { expect, test } from "@playwright/test";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

test("workers label with TextBlob; the A/B view compares VADER and TextBlob on the same reviews", async ({ page }) => {
  await page.goto("/#cell-3");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  await page.getByLabel("Rate (reviews/s)").fill("1000");
  await page.getByTestId("streamer-start").click();
  // Records in `reviews` to compare on.
  await expect
    .poll(
      async () => {
        const topics = await (await page.request.get("/api/kafka/topics")).json();
        const reviews = topics.find((t: { name: string }) => t.name === "reviews");
        return reviews ? reviews.partitions.reduce((n: number, p: { high: number }) => n + p.high, 0) : 0;
      },
      { timeout: 60_000 },
    )
    .toBeGreaterThan(300);

  // The stage with TextBlob: the latest reviews say who labelled them.
  await page.locator("select[name=classifier]").selectOption("textblob");
  await page.getByTestId("sentiment-start").click();
  await expect(page.getByTestId("latest-reviews").locator("tbody tr").first()).toContainText("textblob");

  // A/B: VADER against TextBlob.
  await page.getByTestId("compare-a").selectOption("lexicon");
  await page.getByTestId("compare-b").selectOption("textblob");
  await page.getByTestId("compare-run").click();
  const result = page.getByTestId("compare-result");
  await expect(result).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId("compare-agree")).toContainText(/agree on \d+ of 200 reviews/);
  await expect(page.getByTestId("compare-matrix").locator("tbody tr")).toHaveCount(3);
  await expect(page.getByTestId("compare-scores")).toContainText("lexicon");
  await expect(page.getByTestId("compare-scores")).toContainText("textblob");
  await expect(page.getByTestId("compare-rows").locator("tbody tr").first()).toBeVisible();
  await page.getByTestId("streamer-stop").click();
  await result.scrollIntoViewIfNeeded();
  await page.locator("#cell-3").screenshot({ path: "screenshots/06-sentiment-compare.png" });

  // On a phone every table of the comparison fits its width: none scrolls sideways (each A/B
  // figure is a row, with A and B as the two columns).
  await page.setViewportSize({ width: 390, height: 844 });
  const tables = result.locator("table");
  await expect(tables).toHaveCount(3);
  for (const table of await tables.all()) {
    const [scroll, client] = await table.evaluate((t) => [t.scrollWidth, t.clientWidth]);
    expect(scroll, await table.getAttribute("data-testid")).toBeLessThanOrEqual(client);
  }
  await expect(page.getByTestId("compare-scores").locator("tbody th")).toHaveText([
    "Classifier",
    "Agrees with stars",
    "Reviews/s",
    "Latency",
    "Fallbacks",
  ]);
  await result.screenshot({ path: "screenshots/06-sentiment-compare-390.png" });
});
