import { expect, test } from "@playwright/test";
import { stopAllStages } from "./reset";

test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

test("the next review is traced hop by hop until every hop is found", async ({ page, request }) => {
  await page.goto("/#cell-7");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  // A live pipeline: streamer + producer, sentiment, aggregate and indexer.
  await page.getByLabel("Rate (reviews/s)").fill("200");
  await page.getByTestId("streamer-start").click();
  await page.getByTestId("sentiment-start").click();
  await page.getByTestId("aggregate-start").click();
  await page.getByTestId("indexer-start").click();

  await page.getByTestId("trace-next").click();
  const hops = ["socket", "reviews", "sentiment", "window", "search"];
  // The timeline refreshes every second until the review has reached every hop.
  for (const hop of hops) {
    await expect(page.getByTestId(`trace-hop-${hop}`)).toHaveAttribute("data-state", "found", {
      timeout: 60_000,
    });
  }
  await expect(page.getByTestId("trace-summary")).toContainText("nothing more to wait for");
  await expect(page.getByTestId("trace-hop-reviews").getByTestId("hop-place")).toHaveText(
    /^reviews\[\d\]@\d+$/,
  );
  await expect(page.getByTestId("trace-hop-sentiment").getByTestId("hop-latency")).toHaveText(/^\+[\d,]+ ms$/);
  await expect(page.getByTestId("trace-hop-window").getByTestId("hop-windows").locator("li")).not.toHaveCount(0);
  // The input now holds the traced id; the API answers the same trace for it.
  const reviewId = await page.getByTestId("trace-id").inputValue();
  expect(reviewId.length).toBeGreaterThan(0);
  const answer = await request.get(`/api/trace?review_id=${encodeURIComponent(reviewId)}`);
  expect(answer.status()).toBe(200);
  expect((await answer.json()).review_id).toBe(reviewId);
  await page.locator("#cell-7").screenshot({ path: "screenshots/08-trace.png" });

  // An unknown id: the server's 404 message is shown.
  await page.getByTestId("trace-id").fill("no-such-review");
  await page.getByTestId("trace-submit").click();
  await expect(page.locator("#cell-7 .error")).toContainText("no record with id \"no-such-review\"", {
    timeout: 30_000,
  });
});
