import { expect, test, type Page } from "@playwright/test";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

async function number(page: Page, testId: string): Promise<number> {
  return Number((await page.getByTestId(testId).innerText()).replace(/[^0-9]/g, ""));
}

/** Reviews drawn in a chart: the sum of its bars' values. */
async function drawn(page: Page, testId: string): Promise<number> {
  const values = await page
    .getByTestId(testId)
    .locator("rect.bar-seg")
    .evaluateAll((rects) => rects.map((r) => Number(r.getAttribute("data-value"))));
  return values.reduce((a, b) => a + b, 0);
}

test("tumbling and sliding windows fill live; late reviews are counted behind the watermark", async ({
  page,
}) => {
  await page.goto("/#cell-4");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  // A live stream (event time = now) through sentiment into the windows.
  await page.getByLabel("Rate (reviews/s)").fill("300");
  await page.getByLabel("Stop after").fill("");
  await page.getByTestId("streamer-clock").selectOption("live");
  await page.getByLabel("Late %").fill("0");
  await page.getByTestId("streamer-start").click();
  await page.getByTestId("sentiment-start").click();

  // Tumbling 1 min, sliding 1 min every 15 s, update mode so open windows are shown changing.
  await page.getByLabel("Tumbling (s)").fill("60");
  await page.getByLabel("Sliding (s)").fill("60");
  await page.getByLabel("Slide (s)").fill("15");
  await page.locator("select[name=output_mode]").selectOption("update");
  await page.getByTestId("aggregate-start").click();

  await expect.poll(() => drawn(page, "chart-tumbling"), { timeout: 60_000 }).toBeGreaterThan(0);
  await expect.poll(() => drawn(page, "chart-sliding")).toBeGreaterThan(0);
  const tumbling = await drawn(page, "chart-tumbling");
  const sliding = await drawn(page, "chart-sliding");
  // The bars grow as reviews keep arriving.
  await expect.poll(() => drawn(page, "chart-tumbling"), { timeout: 30_000 }).toBeGreaterThan(tumbling);
  await expect.poll(() => drawn(page, "chart-sliding"), { timeout: 30_000 }).toBeGreaterThan(sliding);
  await expect(page.getByTestId("aggregate-watermark")).toContainText("behind");
  // State per partition: each of the 3 partitions with its own watermark; the operator's is the least.
  await expect(page.getByTestId("aggregate-partitions").locator("tbody tr")).toHaveCount(3);
  await expect(page.getByTestId("aggregate-operator-watermark")).toContainText("least of the partitions");
  // Average score per stars value: five bars, each noted with its average.
  await expect(page.getByTestId("chart-score-by-stars").locator(".bar-note")).toHaveCount(5);
  expect(await number(page, "aggregate-late")).toBe(0);
  await page.locator("#cell-4").screenshot({ path: "screenshots/08-windows.png" });

  // 20% of reviews two minutes late, with 30 s allowed: the late counter rises.
  await page.getByTestId("streamer-stop").click();
  await page.getByLabel("Late %").fill("20");
  await page.getByLabel("Late by (s)").fill("120");
  await page.getByTestId("streamer-start").click();
  await expect.poll(() => number(page, "aggregate-late"), { timeout: 60_000 }).toBeGreaterThan(10);
  await page.locator("#cell-4").screenshot({ path: "screenshots/09-windows-late.png" });

  // The Parquet sink rolls a file within seconds and lists it with its row count, under its
  // member (from its heartbeat), and only there: not again in a table of its own.
  await page.getByLabel("or after (s)").fill("2");
  await page.getByTestId("parquet-start").click();
  const newest = page.getByTestId("parquet-members").getByTestId("member-files").locator("li").first();
  await expect(newest).toContainText(/date=\S+\.parquet · [\d,]+ rows/, { timeout: 30_000 });
  const path = (await newest.locator("code").textContent()) ?? "";
  expect(path).toContain("date=");
  await expect(page.locator("#cell-4").getByText(path, { exact: true })).toHaveCount(1);
  await page.getByTestId("parquet-stop").click();
});
