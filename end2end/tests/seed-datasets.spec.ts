import { expect, test, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { stopAllStages } from "./reset";

// Issue 17, the seeds' other datasets: cell 1 picks tweets or companies and says what changes;
// tweets are labelled by cell 3 and cell 4 lists their top hashtags per window; companies are
// skipped by cell 3, which says why, and cell 4 lists their top countries and industries per
// window. Runs on a server of its own: PIPEBOOK_E2E_SUITE=datasets npx playwright test.

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

async function waitForHydration(page: Page) {
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
}

test("switching the dataset to tweets and to companies explains it, labels tweets and counts companies by country", async ({
  page,
}) => {
  await page.goto("/");
  await waitForHydration(page);
  const cell1 = page.locator("#cell-1");
  const dataset = page.getByTestId("streamer-dataset");
  const explanation = page.getByTestId("dataset-explanation");
  await expect(dataset).toHaveValue("yelp");
  await expect(explanation).toContainText("Yelp reviews");
  mkdirSync("screenshots/seed-datasets", { recursive: true });

  await dataset.selectOption("tweets");
  await expect(explanation).toContainText("keyed by user");
  await page.getByTestId("streamer-source").selectOption({ index: 0 }); // the generator
  await page.getByLabel("Stop after").fill("200");
  await page.getByTestId("streamer-start").click();
  await expect(page.getByTestId("streamer-sent")).toHaveText("200", { timeout: 30_000 });
  // The counter names what the streamer sends: tweets, not reviews.
  await expect(cell1.locator(".stat-unit").first()).toHaveText("tweets sent");
  await cell1.screenshot({ path: "screenshots/seed-datasets/cell1-tweets-1280.png" });

  await page.getByTestId("sentiment-start").click();
  const latest = page.getByTestId("latest-reviews");
  await expect(latest).toContainText("#", { timeout: 30_000 }); // tweets carry hashtags
  await page.locator("#cell-3").screenshot({ path: "screenshots/seed-datasets/cell3-tweets-1280.png" });
  // Cell 4 counts the labelled tweets' hashtags per window and lists the top ones.
  await page.getByTestId("aggregate-start").click();
  await expect(page.getByTestId("top-hashtags")).toContainText("#", { timeout: 30_000 });
  await page.locator("#cell-4").screenshot({ path: "screenshots/seed-datasets/cell4-tweets-1280.png" });
  await page.getByTestId("aggregate-stop").click();
  await page.getByTestId("sentiment-stop").click();

  await dataset.selectOption("companies");
  await expect(explanation).toContainText("no text");
  await page.getByLabel("Stop after").fill("20");
  await page.getByTestId("streamer-start").click();
  await expect(page.getByTestId("streamer-sent")).toHaveText("20", { timeout: 30_000 });
  await cell1.screenshot({ path: "screenshots/seed-datasets/cell1-companies-1280.png" });
  // Cell 3 skips them, saying why; cell 4 counts them by country and by industry.
  await page.getByTestId("sentiment-start").click();
  const skipped = page.getByTestId("sentiment-skipped");
  await expect(skipped).toContainText("20 company records skipped", { timeout: 30_000 });
  await expect(skipped).toContainText("no text to classify");
  // Written on, not labelled: the labelled count of this run stays at 0.
  await expect(page.getByTestId("sentiment-produced")).toHaveText("0");
  await page.locator("#cell-3").screenshot({ path: "screenshots/seed-datasets/cell3-companies-1280.png" });
  await page.getByTestId("aggregate-start").click();
  await expect(page.getByTestId("top-countries")).toContainText("France", { timeout: 30_000 });
  await expect(page.getByTestId("top-industries")).toContainText("Technology");
  await page.locator("#cell-4").screenshot({ path: "screenshots/seed-datasets/cell4-companies-1280.png" });
  await page.getByTestId("aggregate-stop").click();
  await page.getByTestId("sentiment-stop").click();
});
