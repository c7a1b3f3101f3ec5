import { expect, test } from "@playwright/test";
import { stopAllStages } from "./reset";
import { viewerToken } from "./tokens";

// A teacher runs the pipeline; a learner opens the read-only link on a laptop or a phone and
// watches it live, with every control that changes something disabled — and refused by the
// server if forced.
test.beforeEach(async ({ request }) => {
  await stopAllStages(request);
});

test("the viewer link shows the operator's live pipeline with its controls disabled", async ({ page, browser }) => {
  // The operator (loopback: no token needed) starts streaming.
  await page.goto("/");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  await page.getByLabel("Rate (reviews/s)").fill("200");
  await page.getByTestId("streamer-start").click();
  await expect(page.locator("#cell-1 .pill").first()).toHaveText("running");

  // A learner opens the viewer link in a browser of their own.
  const learner = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const view = await learner.newPage();
  await view.goto(`/?token=${viewerToken}`);
  // The token is swapped for a cookie and leaves the address bar.
  await expect(view).toHaveURL(/\/$/);
  await expect(view.getByTestId("viewer-banner")).toContainText("Read-only view");
  await expect(view.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });

  // Live: the teacher's stream grows on the learner's screen.
  const onScreen = async () => Number((await view.getByTestId("reviews-high-sum").innerText()).replace(/,/g, ""));
  await expect.poll(onScreen, { timeout: 15_000 }).toBeGreaterThan(0);
  const first = await onScreen();
  await expect.poll(onScreen, { timeout: 15_000 }).toBeGreaterThan(first);
  await expect(view.locator("#cell-1 .pill").first()).toHaveText("running");

  // Every control that changes the pipeline is disabled …
  for (const id of ["streamer-stop", "sentiment-start", "aggregate-start", "indexer-start", "lab-run", "fault-malformed", "broker-toggle"]) {
    await expect(view.getByTestId(id).first(), id).toBeDisabled();
  }
  // … while reading still works: search and browse are enabled.
  await expect(view.getByTestId("search-submit")).toBeEnabled();
  await expect(view.getByTestId("browse")).toBeEnabled();

  // Forced from the viewer's page, a change is refused by the server.
  const forced = await view.evaluate(async () => {
    const r = await fetch("/api/stages/streamer/stop", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    return { status: r.status, body: await r.json() };
  });
  expect(forced.status).toBe(403);
  expect(forced.body.error).toContain("read-only");
  await expect(page.locator("#cell-1 .pill").first()).toHaveText("running");

  await view.screenshot({ path: "screenshots/viewer/viewer-1280.png", fullPage: false });
  await view.setViewportSize({ width: 390, height: 844 });
  await view.waitForTimeout(300);
  await view.screenshot({ path: "screenshots/viewer/viewer-390.png", fullPage: false });
  // On a phone the top bar scrolls away with the page instead of covering it.
  const bar = await view.locator("header.topbar").boundingBox();
  await view.mouse.wheel(0, 1200);
  await view.waitForTimeout(300);
  const scrolled = await view.locator("header.topbar").boundingBox();
  expect(scrolled && bar && scrolled.y < bar.y).toBeTruthy();
  await view.screenshot({ path: "screenshots/viewer/viewer-390-scrolled.png", fullPage: false });

  // The operator stops; the learner sees it.
  await page.getByTestId("streamer-stop").click();
  await expect(view.locator("#cell-1 .pill").first()).toHaveText("stopped", { timeout: 15_000 });
  await learner.close();
});

test("a page of another site cannot drive the workbench", async ({ page, request }) => {
  // What a learner's other tab could send: a "simple" cross-site request needs no preflight.
  const plain = await request.post("/api/stages/streamer/start", {
    headers: { "content-type": "text/plain" },
    data: "{}",
  });
  expect(plain.status()).toBe(403);
  const crossSite = await request.post("/api/stages/streamer/start", {
    headers: { origin: "http://evil.example" },
    data: {},
  });
  expect(crossSite.status()).toBe(403);
  await page.goto("/");
  await expect(page.locator("#cell-1 .pill").first()).toHaveText("stopped");
});
