import { expect, test, type Page } from "@playwright/test";

async function number(page: Page, testId: string): Promise<number> {
  return Number((await page.getByTestId(testId).innerText()).replace(/,/g, ""));
}

test("the delivery lab runs all three modes and counts lost and duplicated records", async ({ page }) => {
  test.setTimeout(240_000);
  await page.goto("/#cell-6");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  await page.getByLabel("Records", { exact: true }).fill("10000");
  await page.getByLabel("Crash after (records)").fill("5000");
  await page.getByTestId("lab-run").click();

  // A progress bar while the run is under way, then the table fills.
  await expect(page.getByTestId("lab-progress")).toBeVisible();
  await expect(page.getByTestId("lab-run")).toBeDisabled();
  await expect(page.getByTestId("lab-lost-at_most_once")).toBeVisible({ timeout: 180_000 });
  await expect(page.getByTestId("lab-dup-at_least_once")).toBeVisible({ timeout: 180_000 });
  await expect(page.getByTestId("lab-progress")).toBeHidden({ timeout: 180_000 });

  // At-most-once loses the crashed batch; at-least-once writes it twice.
  expect(await number(page, "lab-lost-at_most_once")).toBe(500);
  expect(await number(page, "lab-dup-at_most_once")).toBe(0);
  expect(await number(page, "lab-lost-at_least_once")).toBe(0);
  expect(await number(page, "lab-dup-at_least_once")).toBe(500);
  await expect(page.getByTestId("lab-lost-at_most_once")).toHaveClass(/lab-bad/);
  await expect(page.getByTestId("lab-dup-at_least_once")).toHaveClass(/lab-bad/);

  // Exactly-once holds on the embedded broker (transactions through the patch in vendor/).
  await expect(page.getByTestId("lab-lost-exactly_once")).toBeVisible({ timeout: 180_000 });
  expect(await number(page, "lab-lost-exactly_once")).toBe(0);
  expect(await number(page, "lab-dup-exactly_once")).toBe(0);
  await expect(page.getByTestId("lab-lost-exactly_once")).not.toHaveClass(/lab-bad/);
  await expect(page.getByTestId("lab-dup-exactly_once")).not.toHaveClass(/lab-bad/);
  await page.locator("#cell-6").screenshot({ path: "screenshots/10-lab.png" });

  // The server is the source of truth: a reload shows the same results.
  await page.reload();
  await expect(page.getByTestId("lab-dup-at_least_once")).toHaveText("500");
});
