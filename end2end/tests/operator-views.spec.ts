import { expect, test, type Locator, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { inferDeadLetters, startUpdatingPipeline } from "./pipeline";
import { stopAllStages } from "./reset";

// The operator's views, each filled with live data and shot at 1280 px in the light and the dark
// theme: the pipeline strip, the reset form with a dry run's table, the live tail, a topic's
// schema with the dead letters grouped, the cell 4 changelog and the stage health panels.

test.afterEach(async ({ request }) => {
  await stopAllStages(request);
});

// From the top of `first` to the bottom of `last`, in page coordinates (a range can be taller
// than the window), across the cell's width or, with `narrow`, the elements' own (up to the
// cell's "Try this" box, which floats over their right side). The live feed renders the page
// again each second, which can move the range between measuring and capturing: measured again
// after the capture, a range that moved is shot again.
async function shootRange(page: Page, first: Locator, last: Locator, path: string, narrow = false) {
  // Just below the sticky top bar, which would otherwise cover the range's top in the capture.
  await first.evaluate((el) => {
    el.scrollIntoView({ block: "start" });
    window.scrollBy(0, -((document.querySelector(".topbar")?.getBoundingClientRect().height ?? 0) + 24));
  });
  const lastHandle = await last.elementHandle();
  const measure = () =>
    first.evaluate(
      (el, [end, narrow]) => {
        const a = el.getBoundingClientRect();
        const b = (end as Element).getBoundingClientRect();
        const section = el.closest("section");
        const cell = narrow || !section ? a : section.getBoundingClientRect();
        let right = Math.max(cell.right, b.right) + 8;
        const aside = narrow ? section?.querySelector(".try-this")?.getBoundingClientRect() : undefined;
        const x = Math.min(cell.left, b.left) - 8;
        if (aside && aside.left > x) right = Math.min(right, aside.left - 8);
        return { x, y: a.top + window.scrollY - 12, width: right - x, height: b.bottom - a.top + 24 };
      },
      [lastHandle, narrow] as const,
    );
  for (let attempt = 0; ; attempt++) {
    const clip = await measure();
    await page.screenshot({ path, fullPage: true, clip });
    const after = await measure();
    const moved = Math.abs(after.y - clip.y) > 1 || Math.abs(after.height - clip.height) > 1;
    if (!moved) return;
    if (attempt >= 10) throw new Error(`${path}: the range kept moving`);
  }
}

test("the operator views in both themes", async ({ page, request }) => {
  test.setTimeout(600_000);
  mkdirSync("screenshots", { recursive: true });
  await stopAllStages(request);
  await page.goto("/");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  await startUpdatingPipeline(request);
  // Malformed records, for the dead letters' reasons.
  expect((await request.post("/api/faults/malformed", { data: { count: 5 } })).ok()).toBeTruthy();

  // Stage health: each consumer stage's panel with its load and sparkline.
  for (const stage of ["sentiment", "aggregate", "indexer"]) {
    await expect(page.getByTestId(`${stage}-load`)).toContainText("ms", { timeout: 90_000 });
    const spark = page.getByTestId(`${stage}-load`).getByTestId("rates-sparkline");
    await expect
      .poll(async () => ((await spark.locator("path.spark-input").getAttribute("d")) ?? "").split(",").length, {
        timeout: 60_000,
      })
      .toBeGreaterThan(3);
  }
  await expect(page.getByTestId("pipeline-strip")).toContainText("sentiment");

  // The reset form's dry run (allowed while the group has members): back 10 on every partition.
  const form = page.getByTestId("reset-form");
  await form.scrollIntoViewIfNeeded();
  await form.locator("select[name=reset-group]").selectOption("pipebook-sentiment");
  await form.locator("select[name=reset-to]").selectOption("shift");
  await form.locator("input[name=reset-value]").fill("-10");
  await page.getByTestId("reset-dry-run").click();
  await expect(page.getByTestId("reset-headline")).toContainText("Dry run for pipebook-sentiment, nothing committed");
  await expect(page.getByTestId("reset-table").locator("tbody tr")).toHaveCount(3);

  // The live tail of reviews, paused so the shots hold still.
  await page.locator("#cell-2 select[name=tail-topic]").selectOption("reviews");
  await page.getByTestId("tail-start").click();
  const tailRows = page.getByTestId("tail-rows").locator("tr");
  await expect.poll(() => tailRows.count(), { timeout: 60_000 }).toBeGreaterThan(5);
  await page.getByTestId("tail-pause").click();
  await expect(page.getByTestId("tail-status")).toContainText("paused");

  // The dead letters' schema and reasons.
  await inferDeadLetters(page);
  await expect(page.getByTestId("schema-fields").locator("tbody tr").first()).toBeVisible();

  // The changelog in update mode, read until an update is among the newest results.
  const markers = page.getByTestId("changelog").locator("td.marker");
  await expect
    .poll(
      async () => {
        await page.getByTestId("changelog-read").click();
        await expect.poll(() => markers.count(), { timeout: 30_000 }).toBeGreaterThan(0);
        return new Set(await markers.allInnerTexts()).has("+U");
      },
      { timeout: 90_000, intervals: [2_000] },
    )
    .toBe(true);

  // The stages keep running: a stopped stage has no health panel (its figures are the running
  // loop's), so the two themes show figures a few seconds apart.
  await page.setViewportSize({ width: 1280, height: 900 });
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    await expect(page.locator("html")).toHaveAttribute("data-theme", scheme);
    await page.evaluate(() => window.scrollTo(0, 0));
    const strip = page.getByTestId("pipeline-strip");
    await shootRange(page, strip, strip, `screenshots/operator-strip-${scheme}.png`, true);
    const resetTitle = page.locator("#cell-2 h3", { hasText: "Reset a group's offsets" });
    await shootRange(page, resetTitle, page.getByTestId("reset-table"), `screenshots/operator-reset-${scheme}.png`);
    await shootRange(
      page,
      page.locator("#cell-2 h3", { hasText: "Live tail" }),
      page.getByTestId("tail-view"),
      `screenshots/operator-tail-${scheme}.png`,
    );
    await shootRange(
      page,
      page.getByTestId("schema"),
      page.getByTestId("dead-letter-reasons"),
      `screenshots/operator-schema-dlq-${scheme}.png`,
    );
    // The table scrolls inside its box: the box is what shows.
    await shootRange(
      page,
      page.getByTestId("changelog-read"),
      page.locator("#cell-4 .changelog-box"),
      `screenshots/operator-changelog-${scheme}.png`,
    );
    for (const stage of ["sentiment", "aggregate", "indexer"]) {
      const panel = page.getByTestId(`${stage}-load`);
      await shootRange(page, panel, panel, `screenshots/operator-health-${stage}-${scheme}.png`, true);
    }
  }
});
