import { expect, test, type Page } from "@playwright/test";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

// Reads the number shown as the sum of the `reviews` high watermarks.
async function reviewsOnScreen(page: Page): Promise<number> {
  const text = await page.getByTestId("reviews-high-sum").innerText();
  return Number(text.replace(/,/g, ""));
}

async function waitForHydration(page: Page) {
  // The live feed only connects once the wasm has hydrated the page.
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
}

test("streaming at 500 reviews/s grows the reviews offsets live, and stop stops them", async ({ page }) => {
  await page.goto("/");
  await waitForHydration(page);
  await page.screenshot({ path: "screenshots/01-notebook-idle.png", fullPage: true });

  await page.getByLabel("Rate (reviews/s)").fill("500");
  await page.getByTestId("streamer-start").click();

  // Within 10 s of pressing Start the high watermarks sum to > 0 …
  await expect.poll(() => reviewsOnScreen(page), { timeout: 10_000 }).toBeGreaterThan(0);
  const first = await reviewsOnScreen(page);
  // … and keep growing on screen.
  await expect.poll(() => reviewsOnScreen(page), { timeout: 10_000 }).toBeGreaterThan(first);
  await expect(page.locator('[data-topic="reviews"] tbody tr')).toHaveCount(3);
  await page.screenshot({ path: "screenshots/02-streaming.png", fullPage: true });

  await page.getByTestId("streamer-stop").click();
  await expect(page.locator("#cell-1 .pill").first()).toHaveText("stopped");
  // Once in-flight records land, the count holds still.
  await page.waitForTimeout(2_500);
  const settled = await reviewsOnScreen(page);
  await page.waitForTimeout(2_500);
  expect(await reviewsOnScreen(page)).toBe(settled);
});

test("the message browser reads records at an offset, keyed by business", async ({ page }) => {
  await page.goto("/#cell-2");
  await waitForHydration(page);
  await page.getByTestId("streamer-start").click();
  await expect.poll(() => reviewsOnScreen(page), { timeout: 15_000 }).toBeGreaterThan(0);
  await page.getByTestId("streamer-stop").click();
  await page.getByLabel("Partition", { exact: true }).fill("0");
  await page.getByLabel("From offset").fill("0");
  await page.getByTestId("browse").click();
  const rows = page.getByTestId("messages").locator("tr");
  await expect(rows.first()).toBeVisible();
  await expect(rows.first().locator(".offset")).toHaveText("0@0");
  await expect(rows.first().locator(".value")).toContainText("review_id");
  await page.locator("#cell-2").screenshot({ path: "screenshots/03-message-browser.png" });
});

test("a bad config value is refused with a message naming it", async ({ page }) => {
  await page.goto("/");
  await waitForHydration(page);
  await page.getByLabel("Chunk size").fill("0");
  await page.getByTestId("streamer-start").click();
  await expect(page.locator("#cell-1 .error")).toContainText("chunk_size");
});
