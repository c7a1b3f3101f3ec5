import { expect, test, type Page } from "@playwright/test";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

async function number(page: Page, testId: string): Promise<number> {
  return Number((await page.getByTestId(testId).innerText()).replace(/,/g, ""));
}

test("two workers label reviews live; killing one rebalances and the lag returns to 0", async ({ page }) => {
  await page.goto("/#cell-3");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  await page.getByLabel("Rate (reviews/s)").fill("1000");
  await page.getByTestId("streamer-start").click();
  await page.getByLabel("Workers", { exact: true }).fill("2");
  await page.getByTestId("sentiment-start").click();

  // Both workers join the group and share the three partitions.
  const workers = page.getByTestId("workers").locator("tbody tr.worker-running");
  await expect(workers).toHaveCount(2);
  // The latest-reviews table and the lag chart fill.
  await expect(page.getByTestId("latest-reviews").locator("tbody tr").first()).toBeVisible();
  await expect(page.getByTestId("lag-chart").locator("path.lag-line")).toHaveCount(3);
  await expect.poll(() => number(page, "sentiment-produced")).toBeGreaterThan(0);
  await page.locator("#cell-3").screenshot({ path: "screenshots/04-sentiment.png" });

  // Kill a worker: a rebalance event appears and one worker is left with all partitions.
  await page.getByTestId("kill-worker").first().click();
  await expect(page.getByTestId("rebalances").locator("li.event-killed")).toHaveCount(1);
  await expect(workers).toHaveCount(1);
  await expect(workers.first().locator(".partitions-cell")).toHaveText(
    "reviews-0, reviews-1, reviews-2",
    { timeout: 30_000 },
  );

  // Stop the source: the surviving worker catches up and the lag returns to 0.
  await page.getByTestId("streamer-stop").click();
  await expect.poll(() => number(page, "sentiment-lag"), { timeout: 60_000 }).toBe(0);
  await page.locator("#cell-3").screenshot({ path: "screenshots/05-sentiment-after-kill.png" });
});
