import { expect, type APIRequestContext, type Page } from "@playwright/test";

// Starts each stage with its JSON config, in order, and fails naming a stage that was refused.
export async function startStages(
  request: APIRequestContext,
  stages: ReadonlyArray<readonly [string, object]>,
) {
  for (const [stage, body] of stages) {
    const started = await request.post(`/api/stages/${stage}/start`, { data: body });
    expect(started.ok(), `${stage}: ${await started.text()}`).toBeTruthy();
  }
}

// Starts every stage of the pipeline with the aggregate in update mode, so window results are
// revised (−U/+U) and each consumer stage has a health panel.
export async function startUpdatingPipeline(request: APIRequestContext) {
  await startStages(request, [
    ["producer", {}],
    ["sentiment", {}],
    ["aggregate", { output_mode: "update", trigger_ms: 1000 }],
    ["indexer", {}],
    // A seed of its own: earlier specs on this server streamed the default seed's reviews, and
    // the same seed sends the same review ids again, which the windows skip as duplicates (no
    // window would change, so no update would be written).
    ["streamer", { rate: 50, seed: Date.now() % 1_000_000_007 }],
  ]);
}

// Cell 2's schema of reviews.dlq, read again until the dead letters' reasons are listed (the
// sentiment stage writes them there as it meets the malformed records).
export async function inferDeadLetters(page: Page) {
  await page.locator("#cell-2 select[name=topic]").selectOption("reviews.dlq");
  await expect
    .poll(
      async () => {
        await page.getByTestId("schema").click();
        return page.getByTestId("dead-letter-reasons").locator("tbody tr").count();
      },
      { timeout: 60_000, intervals: [2_000] },
    )
    .toBeGreaterThan(0);
}
