// The README's API examples, as a TypeScript developer writes them with a client generated from
// openapi.yaml (openapi-typescript) and openapi-fetch. CTest contract_client_typescript
// generates the types into the build directory (the module "offlineq-api", mapped by the
// tsconfig it writes there) and runs `tsc --strict --noEmit` on this file: if the spec turns a
// field into `never`, makes an optional field required, or types an answer wrongly, this file
// stops compiling. It is type-checked only, never run; the `@ts-expect-error` lines are the
// mistakes the types must refuse.
import createClient from "openapi-fetch";
import type { components, paths } from "offlineq-api";

type Operation = components["schemas"]["Operation"];
type OperationResult = components["schemas"]["OperationResult"];
type EnqueueRequest = components["schemas"]["EnqueueRequest"];
type ErrorCode = components["schemas"]["Error"]["error"]["code"];

/** An error answer's code. 414 and 431 may come from the HTTP library as a short HTML page. */
export function errorCode(e: components["schemas"]["Error"] | string): ErrorCode | "html" {
  return typeof e === "string" ? "html" : e.error.code;
}

export function client(baseUrl = "http://127.0.0.1:8080", apiKey?: string) {
  return createClient<paths>({
    baseUrl,
    headers: apiKey ? { Authorization: `Bearer ${apiKey}` } : {},
  });
}

/** The upstream's answer of a finished operation, whatever the result holds. */
export function upstreamStatus(op: Operation): number | null {
  const r = op.result;
  if (r === null || "$enc2" in r || "$enc" in r) return null; // none yet, or still sealed
  // @ts-expect-error -- a conflict's fields are optional: not every result has them
  const remoteEtag: string = r.remote_etag;
  void remoteEtag;
  return r.status_code;
}

/** What conflict resolution did, from result.resolution / winner / remote / sent. */
export function describeResolution(r: OperationResult): string {
  switch (r.resolution) {
    case undefined:
      return `HTTP ${r.status_code}` + (r.etag ? ` (ETag ${r.etag})` : "") +
        (r.last_modified ? `, Last-Modified ${r.last_modified}` : "");
    case "last_write_wins":
      return `last write wins: ${r.winner ?? "?"} side`;
    case "manual_remote":
    case "remote_wins":
      return `kept the remote document ${JSON.stringify(r.remote)}`;
    default:
      return `${r.resolution}: sent ${JSON.stringify(r.sent)}, remote ETag ${r.remote_etag ?? "none"}`;
  }
}

export async function readmeExamples(api = client()): Promise<void> {
  // Enqueue: 201 + Location + the operation.
  const created = await api.POST("/api/offline/queue", {
    body: {
      operation_type: "api_call",
      payload: { endpoint: "/items/42", method: "PUT", data: { name: "Widget" } },
      priority: 5,
      group_key: "item-42",
      dedup_key: "item-42-v7",
      max_attempts: 8,
      delay_s: 30,
    },
  });
  if (created.error !== undefined) {
    // Every error has the shape of Error: a code from the documented list.
    const code = errorCode(created.error);
    if (code === "queue_full") console.log("retry later:", created.response.headers.get("Retry-After"));
    return;
  }
  const op = created.data;
  if (!("status" in op)) throw new Error("return=minimal was not asked for");
  const id: string = op.id;
  console.log(op.status, op.retry_count, op.payload["endpoint"], created.response.headers.get("Location"));

  // Defaults stay optional: the smallest enqueue of each type compiles.
  const smallest: EnqueueRequest[] = [
    { operation_type: "api_call", payload: { endpoint: "/ping" } },
    { operation_type: "metric_log", payload: { run_id: "r1", step: 3, metrics: { loss: 0.21 } } },
    {
      operation_type: "file_upload",
      payload: {
        file_id: "0c9f7ab4-6f7a-4c38-9a5e-6f2b9e1d2c3a",
        endpoint: "/photos",
        field: "photo",
        filename: "cat.png",
        form: { album: "pets" },
      },
    },
    {
      operation_type: "model_push",
      payload: {
        file_id: "0c9f7ab4-6f7a-4c38-9a5e-6f2b9e1d2c3a",
        endpoint: "/models",
        model_name: "resnet",
        metadata: { epochs: 3, tags: ["a", "b"] },
      },
    },
    {
      operation_type: "experiment_sync",
      payload: {
        endpoint: "/experiments/7",
        data: { name: "draft", lr: 0.2 },
        base: { name: "draft", lr: 0.1 },
        modified_at: "2024-01-02T03:04:05.123+05:30",
      },
      conflict_strategy: "merge",
    },
  ];

  // Batch: up to 1000, all or nothing.
  const batch = await api.POST("/api/offline/queue/batch", {
    body: {
      operations: [
        { operation_type: "metric_log", payload: { run_id: "r1", step: 3, metrics: { loss: 0.21 } } },
        ...smallest,
      ],
    },
  });
  for (const item of batch.data?.operations ?? []) console.log(item.id);

  // Prefer: return=minimal: ids only.
  const minimal = await api.POST("/api/offline/queue/batch", {
    params: { header: { Prefer: "return=minimal" } },
    body: { operations: smallest },
  });
  for (const item of minimal.data?.operations ?? []) {
    if ("created" in item) console.log(item.id, item.created ? "stored" : "a live one held the key");
  }

  // The online fast path: wait up to 5 s for the final operation (200) or get it as it is (202).
  const waited = await api.POST("/api/offline/queue", {
    params: { header: { Prefer: "wait=5" } },
    body: { operation_type: "api_call", payload: { endpoint: "/ping" } },
  });
  if (waited.response.status === 200 && waited.data && "result" in waited.data) {
    console.log(waited.data.status, waited.data.result ? upstreamStatus(waited.data) : "no answer");
  }

  // List in execution order and page with next_cursor.
  let cursor: string | undefined;
  do {
    const page = await api.GET("/api/offline/queue", {
      params: { query: { status: "pending,failed", operation_type: "api_call", limit: 100, cursor } },
    });
    if (!page.data) break;
    for (const o of page.data.operations) console.log(o.id, o.status, o.completed_at ?? "not yet");
    cursor = page.data.next_cursor ?? undefined;
  } while (cursor);

  // One operation, its attempts, delete, retry.
  const one = await api.GET("/api/offline/queue/{id}", { params: { path: { id } } });
  const result = one.data?.result ?? null;
  if (result !== null && "status_code" in result) console.log(describeResolution(result));
  if (one.error !== undefined) console.log(errorCode(one.error)); // not_found for an unknown id
  const attempts = await api.GET("/api/offline/queue/{id}/attempts", { params: { path: { id } } });
  for (const a of attempts.data?.attempts ?? []) console.log(a.n, a.outcome, a.status_code ?? "none");
  const deleted = await api.DELETE("/api/offline/queue/{id}", { params: { path: { id } } });
  if (deleted.response.status === 409) console.log("in progress:", deleted.error && errorCode(deleted.error));
  const retried = await api.POST("/api/offline/queue/{id}/retry", { params: { path: { id } } });
  console.log(retried.data?.status);

  // Cheap polling: send the ETag back; 304 has no body.
  const stats = await api.GET("/api/offline/queue/stats");
  const etag = stats.response.headers.get("ETag") ?? undefined;
  if (stats.data) console.log(stats.data.pending, stats.data.by_type["api_call"]?.["pending"], stats.data.oldest_pending_age_s);
  const again = await api.GET("/api/offline/queue/stats", { params: { header: { "If-None-Match": etag } } });
  if (again.response.status === 304) console.log("unchanged");

  // Housekeeping (admin).
  const cleared = await api.POST("/api/offline/queue/clear-completed", { body: { older_than_s: 86400 } });
  console.log(cleared.data?.cleared);
  const redriven = await api.POST("/api/offline/queue/retry-failed", { body: { operation_type: "api_call" } });
  if (redriven.data && "retried" in redriven.data) console.log(redriven.data.retried);
  // Bulk actions over a whole filter: a dry run counts, then the real thing.
  const filter = { status: "failed", error_contains: "HTTP 503", created_after: "2026-12-01T00:00:00Z" } as const;
  const would = await api.POST("/api/offline/queue/delete", { body: { ...filter, dry_run: true } });
  if (would.data && "matched" in would.data) console.log(`would delete ${would.data.matched}`);
  const gone = await api.POST("/api/offline/queue/delete", { body: filter });
  if (gone.data && "deleted" in gone.data) console.log(gone.data.deleted);
  // @ts-expect-error a delete's status cannot be in_progress
  await api.POST("/api/offline/queue/delete", { body: { status: "in_progress" } });

  // Probes.
  const health = await api.GET("/healthz");
  const ready = await api.GET("/readyz");
  console.log(health.data?.status, ready.data?.status ?? (ready.error && errorCode(ready.error)));

  // Online, offline and sync.
  const net = await api.GET("/api/offline/network-status");
  for (const ep of net.data?.endpoints ?? []) console.log(ep.url, ep.reachable, ep.latency_ms);
  await api.POST("/api/offline/check-connectivity");
  await api.POST("/api/offline/sync/stop-auto");
  const pass = await api.POST("/api/offline/sync", { params: { query: { timeout_s: 10 } } });
  if (pass.response.status === 200 && pass.data && "processed" in pass.data) {
    console.log(pass.data.succeeded, pass.data.errors.map((e) => e.id));
  } else if (pass.data && "progress" in pass.data) {
    console.log(`${pass.data.progress.done}/${pass.data.progress.total}`);
  }
  await api.POST("/api/offline/sync/start-auto", { body: { interval_s: 60 } });
  await api.POST("/api/offline/sync/start-auto"); // the body is optional
  const status = await api.GET("/api/offline/sync/status", {
    params: { header: { "If-None-Match": etag } },
  });
  if (status.data) console.log(status.data.is_syncing, status.data.last_result?.processed, status.data.progress?.done);

  // Conflicts: the global strategy, and an operator's answer.
  await api.POST("/api/offline/sync/conflict-strategy", { body: { strategy: "last_write_wins" } });
  const strategy = await api.GET("/api/offline/sync/conflict-strategy");
  console.log(strategy.data?.strategy);
  await api.POST("/api/offline/queue/{id}/resolve", { params: { path: { id } }, body: { resolution: "remote" } });
  await api.POST("/api/offline/queue/{id}/resolve", { params: { path: { id } }, body: { resolution: "local" } });
  const merged = await api.POST("/api/offline/queue/{id}/resolve", {
    params: { path: { id } },
    body: { resolution: "merged", data: { name: "final", lr: 0.2 } },
  });
  if (merged.data?.result && "status_code" in merged.data.result) console.log(describeResolution(merged.data.result));

  // Files: the raw body is the file.
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
  const file = await api.POST("/api/offline/files", {
    body: png as unknown as string, // the spec types a binary body as a string
    bodySerializer: (b) => b,
    headers: { "Content-Type": "image/png" },
  });
  if (file.data) {
    const meta = await api.GET("/api/offline/files/{id}", { params: { path: { id: file.data.file_id } } });
    console.log(meta.data?.size, meta.data?.sha256);
  }
}

// The mistakes the generated types must refuse.
export const refused: EnqueueRequest[] = [
  // @ts-expect-error -- api_call needs an endpoint
  { operation_type: "api_call", payload: { method: "GET" } },
  // @ts-expect-error -- metric_log needs metrics
  { operation_type: "metric_log", payload: { run_id: "r1" } },
  // @ts-expect-error -- not an operation type
  { operation_type: "sms", payload: { endpoint: "/x" } },
  // @ts-expect-error -- priority is a number
  { operation_type: "api_call", payload: { endpoint: "/x" }, priority: "high" },
  // @ts-expect-error -- no such field (unknown fields are refused by the service too)
  { operation_type: "api_call", payload: { endpoint: "/x" }, retries: 3 },
  // @ts-expect-error -- method is one of GET/POST/PUT/PATCH/DELETE
  { operation_type: "api_call", payload: { endpoint: "/x", method: "FETCH" } },
];

export function unnarrowed(op: Operation): number {
  // @ts-expect-error -- result may be null or a SealedValue: narrow it first (upstreamStatus)
  return op.result.status_code;
}
