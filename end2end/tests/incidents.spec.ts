import { expect, test, type Page } from "@playwright/test";
import { stopAllStages } from "./reset";

// A learner solves two incidents through cell 8: a search outage (fixed in cell 5) and a hot key
// (found from the partitions' figures). Same seed, same incident.

async function startIncident(page: Page, id: string, seed: string) {
  await page.locator('input[name="incident_seed"]').fill(seed);
  await page.getByTestId(`incident-start-${id}`).click();
  await expect(page.getByTestId("incident-phase")).toHaveText("running", { timeout: 90_000 });
  await expect(page.getByTestId("incident-figures")).toBeVisible();
}

async function figure(page: Page, name: string, column: number): Promise<number> {
  const row = page.getByTestId("incident-figures").locator("tr", { hasText: name });
  const text = await row.locator("td").nth(column).innerText();
  return Number(text.replace(/[,+]/g, ""));
}

test("a learner solves a search outage and finds a hot key", async ({ page, request }) => {
  test.setTimeout(300_000);
  await stopAllStages(request);
  await page.goto("/#cell-8");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  await expect(page.getByTestId("incident-list")).toContainText("A search outage");

  // 1 · Search outage: the hints come one at a time, the fix is the cell 5 button.
  await startIncident(page, "search-outage", "17");
  await expect(page.getByTestId("incident-writeup")).toHaveCount(0);
  await page.getByTestId("incident-hint").click();
  await expect(page.getByTestId("incident-hints").locator("li")).toHaveCount(1);
  await page.getByTestId("incident-hint").click();
  await expect(page.getByTestId("incident-hints").locator("li")).toHaveCount(2);
  await expect(page.getByTestId("search-resume")).toBeVisible({ timeout: 30_000 });
  // The story: the enriched reviews wait in the indexer's lag while the backend is down.
  await expect.poll(() => figure(page, "indexer lag", 2), { timeout: 60_000 }).toBeGreaterThan(0);
  await page.getByTestId("incident-figures").scrollIntoViewIfNeeded();
  await page.screenshot({ path: "screenshots/incidents-running-desktop.png", fullPage: false });
  await page.getByTestId("search-resume").click();
  await expect(page.getByTestId("incident-writeup")).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId("incident-phase")).toHaveText("solved");
  // The sticky top bar would cover the cell's top.
  const unstick = ".topbar { position: static !important; }";
  await page.locator("#cell-8").screenshot({ path: "screenshots/incidents-solved-desktop.png", style: unstick });

  // 2 · Hot key: the busiest partition in the figures is the answer; a wrong one is told so.
  await startIncident(page, "hot-key", "42");
  const counts = [];
  for (const p of [0, 1, 2]) counts.push(await figure(page, `records in reviews-${p}`, 1));
  const hot = counts.indexOf(Math.max(...counts));
  const wrong = (hot + 1) % 3;
  await page.getByTestId(`incident-choice-${wrong}`).click();
  await expect(page.getByTestId("incident-verdict")).toContainText("Not that");
  await page.getByTestId(`incident-choice-${hot}`).click();
  await expect(page.getByTestId("incident-writeup")).toBeVisible({ timeout: 60_000 });
  await expect(page.getByTestId("incident-progress")).toContainText("1 of 1");

  // The same seed gives the same before-figures.
  await startIncident(page, "hot-key", "42");
  const again = [];
  for (const p of [0, 1, 2]) again.push(await figure(page, `records in reviews-${p}`, 1));
  expect(again).toEqual(counts);

  await page.setViewportSize({ width: 390, height: 844 });
  await page.locator("#cell-8").screenshot({ path: "screenshots/incidents-390.png", style: unstick });
  await stopAllStages(request);
});
