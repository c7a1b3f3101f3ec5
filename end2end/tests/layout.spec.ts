import { expect, test } from "@playwright/test";

// The notebook must stay usable on a phone-sized screen: no horizontal scrolling of the page.
test("the notebook fits a narrow screen without horizontal scrolling", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto("/");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: "screenshots/06-narrow.png", fullPage: true });
});
