import { expect, test, type Locator } from "@playwright/test";
import { startStages } from "./pipeline";
import { stopAllStages } from "./reset";

// A phone: 390 px wide, a touch screen (no hover, so no `<title>` tooltips).
test.use({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

test.afterEach(async ({ request }) => {
  await stopAllStages(request);
});

/** How far `inner`'s box reaches past `outer`'s on the left and on the right (0 when inside). */
async function overhang(inner: Locator, outer: Locator): Promise<number> {
  const [a, b] = [await inner.boundingBox(), await outer.boundingBox()];
  if (!a || !b) throw new Error("not laid out");
  return Math.max(0, b.x - a.x, a.x + a.width - (b.x + b.width));
}

test("on a phone a tap on a chart reads out its values, and the time axis stays inside", async ({
  page,
  request,
}) => {
  await startStages(request, [
    ["producer", {}],
    ["sentiment", {}],
    ["aggregate", { tumbling_secs: 5 }],
    ["streamer", { rate: 100 }],
  ]);
  await page.goto("/#cell-3");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  // The lag chart: tap the newest second; the line under it names each partition's lag.
  const lag = page.getByTestId("lag-chart");
  await expect(lag.locator("path.lag-line")).toHaveCount(3, { timeout: 60_000 });
  const readout = lag.getByTestId("chart-readout");
  await expect(readout).toHaveText(/^Tap or hover/);
  await lag.locator("rect.hover").last().tap();
  // The tapped (newest) second: "now" until the next sample arrives, then "−1 s", … (the readout
  // stays on the second it was given), so the check allows a few seconds.
  await expect(readout).toContainText(/\d\d:\d\d:\d\d UTC \((now|−\d s)\) · reviews-0: [\d,]+ records behind/);
  await expect(lag.locator("rect.picked")).toHaveCount(1);

  // Every time label of the lag chart and of the stage's rates sparkline within its chart.
  for (const chart of [lag, page.locator("#cell-3").getByTestId("rates-sparkline").first()]) {
    const labels = chart.locator(".x-ticks span");
    expect(await labels.count()).toBeGreaterThan(1);
    for (const label of await labels.all()) {
      expect(await overhang(label, chart), await label.innerText()).toBeLessThanOrEqual(0.5);
    }
  }
  await lag.screenshot({ path: "screenshots/charts-lag-tapped-390.png" });

  // A bar chart: cell 4's tumbling windows; a tap on a bar reads out its count.
  await page.goto("/#cell-4");
  const windows = page.getByTestId("chart-tumbling");
  await expect(windows.locator("rect.bar-seg").first()).toBeAttached({ timeout: 60_000 });
  const bar = windows.locator("rect.hover").first();
  await bar.tap();
  await expect(windows.getByTestId("chart-readout")).toContainText(/^\d\d:\d\d:\d\d: [\d,]+/);
  await windows.screenshot({ path: "screenshots/charts-bar-tapped-390.png" });
});

test("by keyboard, a chart takes the focus and the arrow keys step its readout, spoken as it changes", async ({
  page,
  request,
}) => {
  await startStages(request, [
    ["producer", {}],
    ["sentiment", {}],
    ["streamer", { rate: 100 }],
  ]);
  await page.goto("/#cell-3");
  const lag = page.getByTestId("lag-chart");
  await expect(lag.locator("path.lag-line")).toHaveCount(3, { timeout: 60_000 });
  // Wait for a few seconds of samples, so there is a column left of the newest.
  await expect.poll(() => lag.locator("rect.hover").count(), { timeout: 30_000 }).toBeGreaterThan(3);
  const readout = lag.getByTestId("chart-readout");
  await expect(readout).toHaveAttribute("aria-live", "polite");

  // The second a readout names, as seconds of the day (UTC).
  const secondOfDay = async () => {
    const m = (await readout.innerText()).match(/^(\d\d):(\d\d):(\d\d) UTC/);
    if (!m) throw new Error(`no time in the readout: ${await readout.innerText()}`);
    return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
  };

  await lag.focus();
  await expect(lag).toBeFocused();
  await page.keyboard.press("End");
  // The newest second; the readout then stays on it while newer seconds arrive.
  await expect(readout).toContainText(/UTC \((now|−\d+ s)\) · reviews-0: [\d,]+ records behind/);
  await expect(lag.locator("rect.picked")).toHaveCount(1);
  const newest = await secondOfDay();
  await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("ArrowLeft");
  // Two samples back: an earlier second, still with every partition's lag.
  await expect
    .poll(async () => (newest - (await secondOfDay()) + 86_400) % 86_400)
    .toBeGreaterThanOrEqual(2);
  await expect(readout).toContainText(/ · reviews-2: [\d,]+ records behind/);
  await page.keyboard.press("Home");
  await expect
    .poll(async () => (newest - (await secondOfDay()) + 86_400) % 86_400)
    .toBeGreaterThan(2);
  await lag.screenshot({ path: "screenshots/charts-lag-keyboard-390.png" });
  // Tab leaves the chart (the key is the page's, not the chart's).
  await page.keyboard.press("Tab");
  await expect(lag).not.toBeFocused();
});
