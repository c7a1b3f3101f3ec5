import { expect, test } from "@playwright/test";

// The notebook must stay usable on a phone-sized screen: no horizontal scrolling of the page.
test("the notebook fits a narrow screen without horizontal scrolling", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto("/");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: "screenshots/06-narrow.png", fullPage: true });
});

// Notebook ergonomics: keys move between cells and run the focused one; theme and font size
// toggle and are remembered over a reload.
test("J/K move between cells, Shift+Enter runs the focused cell, theme and size are remembered", async ({
  page,
  request,
}) => {
  await request.post("/api/stages/streamer/stop", { data: {} });
  await page.goto("/");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  // The page is server-rendered from the live state: its buttons come alive (enabled) once the
  // wasm has hydrated it, and a key pressed before then presses a disabled button.
  await expect(page.getByTestId("streamer-start")).toBeEnabled();

  await page.keyboard.press("j");
  await expect(page).toHaveURL(/#cell-2$/);
  await page.keyboard.press("j");
  await expect(page).toHaveURL(/#cell-3$/);
  await page.keyboard.press("k");
  await page.keyboard.press("k");
  await expect(page).toHaveURL(/#cell-1$/);
  await expect(page.locator("#cell-1")).toBeFocused();
  // Shift+Enter presses the focused cell's main button: cell 1 starts streaming.
  await page.keyboard.press("Shift+Enter");
  await expect(page.locator("#cell-1 .pill").first()).toHaveText("running", { timeout: 20_000 });
  await request.post("/api/stages/streamer/stop", { data: {} });

  const theme = await page.locator("html").getAttribute("data-theme");
  await page.getByTestId("toggle-theme").click();
  const other = theme === "dark" ? "light" : "dark";
  await expect(page.locator("html")).toHaveAttribute("data-theme", other);
  await page.getByTestId("toggle-size").click();
  await expect(page.locator("html")).toHaveAttribute("data-size", "large");
  await page.reload();
  await expect(page.locator("html")).toHaveAttribute("data-theme", other);
  await expect(page.locator("html")).toHaveAttribute("data-size", "large");
  await page.screenshot({ path: "screenshots/07-large-font.png" });
  // Back to normal for the specs that follow.
  await page.getByTestId("toggle-size").click();
  await page.getByTestId("toggle-theme").click();
});

// A page load leaves the browser's console clean: no failed request (a missing favicon is a
// 404 logged as an error), no script error, while the page hydrates and loads its deferred cells.
test("loading the notebook logs no console error", async ({ page }) => {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`${message.text()} (${message.location().url})`);
  });
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("response", (response) => {
    if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
  });
  await page.goto("/");
  await expect(page.getByTestId("cluster")).toContainText("running", { timeout: 60_000 });
  // Hydrated, the deferred cells too: the notebook's controls are enabled only then (Compare
  // in cell 3 is, whatever runs).
  await expect(page.getByTestId("compare-run")).toBeEnabled();
  // The browser asks for the page's icon after the load event (the live feed keeps a request
  // open, so there is no network idle to wait for): give it a moment to answer.
  await page.waitForTimeout(1_500);
  expect(errors).toEqual([]);
});
