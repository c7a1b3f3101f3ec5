import { expect, test, type APIRequestContext, type Locator, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { stopAllStages } from "./reset";

// Issue 17, the seeds' other datasets: cell 1 picks tweets or companies and says what changes;
// tweets are labelled by cell 3 and cell 4 lists their top hashtags per window; companies are
// skipped by cell 3, which says why, and cell 4 lists their top countries and industries per
// window. Every cell's words follow the dataset; the trace (cell 7) follows a tweet by its tweet_id
// through every hop and a company by its company_id through the hops it takes; the A/B view
// (cell 3) compares classifiers on tweets without stars and says companies have no text.
// Runs on a server of its own: PIPEBOOK_E2E_SUITE=datasets npx playwright test.

// Where the report's screenshots of the new views go (the notes folder when it exists).
const shots = process.env.PIPEBOOK_SHOTS_DIR ?? "screenshots/seed-datasets";

// A record of `dataset` among the newest of `reviews`, read through the API as the message
// browser reads them.
async function newestRecordOf(request: APIRequestContext, dataset: string): Promise<Record<string, unknown>> {
  const topics = await (await request.get("/api/kafka/topics")).json();
  const reviews = topics.find((t: { name: string }) => t.name === "reviews");
  for (const p of reviews.partitions as { id: number; low: number; high: number }[]) {
    const offset = Math.max(p.low, p.high - 50);
    const page = await (
      await request.get(`/api/kafka/topics/reviews/messages?partition=${p.id}&offset=${offset}&limit=50`)
    ).json();
    for (const m of (page.messages ?? page) as { value: string }[]) {
      const value = JSON.parse(m.value);
      if (value.dataset === dataset) return value;
    }
  }
  throw new Error(`no ${dataset} record among the newest of reviews`);
}

// A screenshot of `what` with a margin, taken from the whole page scrolled to its top, so the
// sticky top bar stays up there instead of covering it.
async function shot(page: Page, what: Locator, path: string) {
  await what.scrollIntoViewIfNeeded();
  const box = await what.boundingBox();
  if (box === null) throw new Error(`nothing to photograph for ${path}`);
  const top = box.y + (await page.evaluate(() => window.scrollY));
  await page.evaluate(() => window.scrollTo(0, 0));
  const width = page.viewportSize()?.width ?? 1280;
  const x = Math.max(0, box.x - 12);
  await page.screenshot({
    path,
    fullPage: true,
    clip: { x, y: Math.max(0, top - 12), width: Math.min(width - x, box.width + 24), height: box.height + 24 },
  });
}

// Traces `id` in cell 7 and waits until `hop` shows `state`.
async function trace(page: Page, id: string, hop: string, state: string) {
  await page.getByTestId("trace-id").fill(id);
  await page.getByTestId("trace-submit").click();
  await expect(page.getByTestId(`trace-hop-${hop}`)).toHaveAttribute("data-state", state, { timeout: 60_000 });
}

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

  // Every cell words what streams: tweets, keyed by user, followed by tweet_id.
  await expect(page.locator("#cell-3 h3", { hasText: "Latest labelled tweets" })).toBeVisible();
  await expect(page.getByTestId("confusion-no-stars")).toContainText("Tweets carry no stars");
  await expect(page.locator("#cell-4")).toContainText("tweets counted in windows");
  await expect(page.locator("#cell-5")).toContainText("Each document's id is its tweet_id");
  await expect(page.getByTestId("trace-explain")).toContainText("Follow one tweet");
  await expect(page.getByTestId("trace-next")).toHaveText("Trace the next tweet");
  await expect(page.getByTestId("lesson-dataset-note").first()).toContainText("Written for Yelp reviews");
  await expect(page.getByTestId("incidents-dataset-note")).toContainText("Incidents replay Yelp reviews");
  await expect(page.getByTestId("incidents-dataset-note")).toContainText("streamer of tweets");

  // Cell 7 follows a tweet by its tweet_id through every hop, the index included.
  await page.getByTestId("indexer-start").click();
  const tweet = await newestRecordOf(page.request, "tweets");
  await trace(page, String(tweet.tweet_id), "search", "found");
  for (const hop of ["socket", "reviews", "sentiment", "window", "search"]) {
    await expect(page.getByTestId(`trace-hop-${hop}`)).toHaveAttribute("data-state", "found");
  }
  await expect(page.getByTestId("trace-summary")).toContainText(`Tweet tweet_id = ${tweet.tweet_id}`);
  await expect(page.getByTestId("trace-hop-reviews")).toContainText(`Keyed by user "${tweet.user}"`);
  await expect(page.getByTestId("trace-hop-search")).toContainText("Its document id is its tweet_id");
  await expect(page.getByTestId("trace-hop-window")).toContainText("the tweet's created_at");
  mkdirSync(shots, { recursive: true });
  for (const [width, name] of [[1280, "desktop"], [390, "390"]] as const) {
    await page.setViewportSize({ width, height: 900 });
    await shot(page, page.locator("#cell-7"), `${shots}/datasets-trace-tweets-${name}.png`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });

  // Cell 3's A/B view on tweets: agreement and throughput, accuracy n/a (no stars).
  await page.getByTestId("compare-a").selectOption("lexicon");
  await page.getByTestId("compare-b").selectOption("textblob");
  await page.getByTestId("compare-run").click();
  await expect(page.getByTestId("compare-agree")).toContainText(/agree on \d+ of \d+ tweets/, { timeout: 60_000 });
  await expect(page.getByTestId("compare-accuracy").first()).toHaveText("n/a — no stars");
  await expect(page.getByTestId("compare-stars")).toContainText("n/a — tweets carry no stars");
  await expect(page.getByTestId("compare-scores")).toContainText("Tweets/s");
  await expect(page.getByTestId("compare-matrix").locator("tbody tr")).toHaveCount(3);
  for (const [width, name] of [[1280, "desktop"], [390, "390"]] as const) {
    await page.setViewportSize({ width, height: 900 });
    await shot(page, page.getByTestId("compare-panel"), `${shots}/datasets-ab-tweets-${name}.png`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByTestId("indexer-stop").click();
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

  // Cell 7 follows a company by its company_id through the hops it takes: sentiment writes it
  // on unlabelled, the windows count it, the indexer leaves it out — said, not left waiting.
  const company = await newestRecordOf(page.request, "companies");
  await trace(page, String(company.company_id), "window", "found");
  await expect(page.getByTestId("trace-hop-sentiment")).toHaveAttribute("data-state", "skipped");
  await expect(page.getByTestId("trace-hop-sentiment").getByTestId("hop-state")).toHaveText("not labelled: no text");
  await expect(page.getByTestId("trace-hop-search")).toHaveAttribute("data-state", "skipped");
  await expect(page.getByTestId("trace-hop-search").getByTestId("hop-state")).toHaveText("not indexed: no text");
  await expect(page.getByTestId("trace-summary")).toContainText("nothing more to wait for");
  await expect(page.getByTestId("trace-hop-reviews")).toContainText(`Keyed by company_id "${company.company_id}"`);
  await shot(page, page.locator("#cell-7"), `${shots}/datasets-trace-companies-desktop.png`);
  // Cell 3's A/B view says plainly that companies have no text to compare.
  await expect(page.getByTestId("compare-panel").getByTestId("compare-no-text").first()).toContainText(
    "Streaming company records: they have no text field",
  );
  await expect(page.locator("#cell-5")).toContainText("the indexer skips them");
  await page.getByTestId("aggregate-stop").click();
  await page.getByTestId("sentiment-stop").click();
});
