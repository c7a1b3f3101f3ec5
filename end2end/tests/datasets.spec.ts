import { expect, test, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

async function waitForHydration(page: Page) {
  // The live feed only connects once the wasm has hydrated the page.
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
}

// `n` reviews in the Yelp dataset's format, one JSON object per line.
function yelpLines(n: number, tag: string): string {
  const words = ["great tacos", "slow service", "friendly staff", "cold fries", "lovely patio"];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const minute = String(i % 60).padStart(2, "0");
    lines.push(
      JSON.stringify({
        review_id: `${tag}-${String(i).padStart(5, "0")}`,
        user_id: `user-${i % 17}`,
        business_id: `biz-${i % 9}`,
        stars: (i % 5) + 1,
        useful: i % 3,
        funny: 0,
        cool: 1,
        text: `Review ${i}: ${words[i % words.length]}.`,
        date: `2019-03-0${(i % 9) + 1} 12:${minute}:00`,
      }),
    );
  }
  return lines.join("\n") + "\n";
}

test("a dataset uploaded in cell 1 is listed with its line count and streams end to end", async ({ page }) => {
  await page.goto("/");
  await waitForHydration(page);
  const cell = page.locator("#cell-1");
  const picker = page.getByTestId("streamer-source");
  // The built-in generator and the sample dataset the server seeds into an empty folder.
  await expect(picker.locator("option").first()).toHaveText("Built-in generator (seeded)");
  await expect(picker).toContainText("sample-yelp.jsonl");
  await expect(page.getByTestId("sockets-note")).toHaveText(/^Sockets: loopback only/);

  const tag = `e2e${Date.now()}`;
  const name = `${tag}.jsonl`;
  const lines = 150;
  await page.getByTestId("dataset-file").setInputFiles({
    name,
    mimeType: "application/x-ndjson",
    buffer: Buffer.from(yelpLines(lines, tag)),
  });
  await page.getByTestId("dataset-upload").click();
  await expect(page.getByTestId("dataset-uploaded")).toContainText(`${name}`);
  await expect(page.getByTestId("dataset-uploaded")).toContainText("150 lines");
  // Listed with its size and line count, and selected as the source.
  await expect(picker.locator(`option[value="${name}"]`)).toContainText("150 lines");
  await expect(picker).toHaveValue(name);

  mkdirSync("screenshots/datasets", { recursive: true });
  await cell.screenshot({ path: "screenshots/datasets/cell1-uploaded-1280.png" });

  await page.getByTestId("streamer-start").click();
  await expect(page.getByTestId("producer-acked")).toHaveText(String(lines), { timeout: 30_000 });
  await expect(page.getByTestId("streamer-sent")).toHaveText(String(lines));
  await expect(cell.locator(".pill").first()).toHaveText("stopped"); // the file ended
  await cell.screenshot({ path: "screenshots/datasets/cell1-streamed-1280.png" });

  await page.setViewportSize({ width: 390, height: 844 });
  await cell.scrollIntoViewIfNeeded();
  await cell.screenshot({ path: "screenshots/datasets/cell1-streamed-390.png" });
});

test("an upload the server refuses shows its message and changes nothing", async ({ page }) => {
  await page.goto("/");
  await waitForHydration(page);
  const picker = page.getByTestId("streamer-source");
  await expect(picker).toContainText("sample-yelp.jsonl");
  const before = await picker.locator("option").count();

  const name = `notjson${Date.now()}.jsonl`;
  await page.getByTestId("dataset-file").setInputFiles({
    name,
    mimeType: "application/x-ndjson",
    buffer: Buffer.from("stars,text\n5,great tacos\n"),
  });
  await page.getByTestId("dataset-upload").click();
  await expect(page.locator("#cell-1 .error")).toContainText(`${name} line 1: not a JSON object`);
  await page.locator("#cell-1").screenshot({ path: "screenshots/datasets/cell1-refused-1280.png" });

  // A name the server would refuse is caught before sending.
  await page.getByTestId("dataset-file").setInputFiles({
    name: "reviews.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("{}\n"),
  });
  await page.getByTestId("dataset-upload").click();
  await expect(page.locator("#cell-1 .error")).toContainText("name: must end in .jsonl or .json");
  await page.reload();
  await waitForHydration(page);
  await expect(picker.locator("option")).toHaveCount(before);
  await expect(picker).not.toContainText(name);
});
