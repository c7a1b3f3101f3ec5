import type { APIRequestContext } from "@playwright/test";

// Every spec shares one server: stop whatever an earlier spec left running, through the same API
// the UI uses (a 409 "not running" is fine).
export async function stopAllStages(request: APIRequestContext) {
  for (const stage of ["indexer", "parquet", "aggregate", "sentiment", "producer", "streamer"]) {
    await request.post(`/api/stages/${stage}/stop`, { data: {} });
  }
}
