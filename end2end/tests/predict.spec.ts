import { expect, test, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { stopAllStages } from "./reset";

// Predict, observe, explain: the learner answers a step's question, does the task, and the step
// shows the live figures, whether the prediction held and why. Screenshots of both states at a
// laptop and a phone width, light and dark.

async function shoot(page: Page, name: string) {
  mkdirSync("screenshots", { recursive: true });
  for (const [width, height] of [[1280, 800], [390, 844]]) {
    await page.setViewportSize({ width, height });
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await expect(page.locator("html")).toHaveAttribute("data-theme", scheme);
      const box = page.locator("#cell-1 .try-this");
      await box.scrollIntoViewIfNeeded();
      await box.screenshot({ path: `screenshots/predict-${name}-${width}-${scheme}.png` });
      if (name === "outcome") {
        await page.evaluate(() => window.scrollTo(0, 0));
        await page.locator(".topbar").screenshot({ path: `screenshots/predict-topbar-${width}-${scheme}.png` });
      }
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

test("a learner predicts, runs the task and sees what happened", async ({ page, request }) => {
  await stopAllStages(request);
  await request.post("/api/lesson/reset", { data: {} });
  await page.goto("/");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  const question = page.getByTestId("predict-stream");
  await expect(question).toContainText("Predict first");
  await expect(page.getByTestId("predictions-right")).toHaveText("0 / 0");
  const spread = page.getByTestId("predict-stream-1");
  await spread.click();
  await expect(spread).toHaveAttribute("aria-pressed", "true");
  await shoot(page, "question");

  await page.getByLabel("Rate (reviews/s)").fill("400");
  await page.getByTestId("streamer-start").click();
  const outcome = page.getByTestId("outcome-stream");
  await expect(outcome).toBeVisible({ timeout: 60_000 });
  await expect(outcome).toHaveAttribute("data-held", "true");
  await expect(outcome).toContainText("What happened: Stored in topic reviews, spread over its partitions");
  // The figures are the live ones: at least 100 acknowledged.
  const acknowledged = outcome.locator("tr", { hasText: "reviews acknowledged" }).locator("td").last();
  expect(Number((await acknowledged.innerText()).replace(/\D/g, ""))).toBeGreaterThanOrEqual(100);
  await expect(page.getByTestId("predictions-right")).toHaveText("1 / 1");
  await page.getByTestId("streamer-stop").click();
  await shoot(page, "outcome");
});
