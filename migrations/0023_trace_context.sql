-- The W3C trace context (a `traceparent`) of the work that queued a webhook delivery, so that
-- the dispatcher's attempts join that trace (docs/operations.md, "Traces and logs"). Null when
-- tracing was off, and for replays (no request or event started them).
ALTER TABLE webhook_deliveries ADD COLUMN trace_context text;
