// The read-only viewer token the test server is started with (playwright.config.ts). On
// loopback the operator needs none; this one opens the viewer's page (viewer.spec.ts).
export const viewerToken = "e2e-viewer-token-0123456789";
