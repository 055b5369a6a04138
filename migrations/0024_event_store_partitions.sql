-- event_store partitioned by month of recording (PostgreSQL declarative partitioning), so that
-- old months can be archived and dropped whole instead of deleted row by row, and each month's
-- indexes stay the size of a month (docs/operations.md, "The event store's lifecycle").
--
-- Partitioned by recorded_at, the database's clock, not by occurred_at, the event's own time:
-- every insert lands in the current month, so partitions made a few months ahead always cover
-- it; an occurred_at far in the past or future (a replay, a test clock) changes nothing; and a
-- month's partition holds a contiguous run of seq, so archiving the oldest months cuts the
-- beginning off the replay order and leaves the rest as it was.
--
-- A partitioned table enforces a unique key only within each partition, and only if the key
-- includes recorded_at, which a redelivered event does not repeat. The two keys that make the
-- store exactly-once therefore move to event_store_keys, a small table of every event id and
-- aggregate version ever recorded, archived months included: a BEFORE INSERT trigger claims the
-- event's id there first and skips the row when it is taken (what ON CONFLICT (event_id) DO
-- NOTHING did), and the aggregate's version is unique there (a forked history still fails the
-- insert, under the same constraint name as before).
--
-- Apply with the workers stopped (make up does: migrations run before the workers start). On a
-- database that holds events the copy takes about a minute per million events; seq values are
-- kept, and the read models are not folded again (their trigger is created after the copy).

-- The functions that take an event_store row are dropped with the old table (they depend on its
-- row type). Keep their current text, to create them again for the new table of the same name.
CREATE TEMPORARY TABLE event_store_row_functions ON COMMIT DROP AS
    SELECT pg_get_functiondef(p.oid) AS definition
    FROM pg_proc p
    WHERE (SELECT reltype FROM pg_class WHERE oid = 'event_store'::regclass)
          = ANY (p.proargtypes::oid[]);

ALTER TABLE event_store RENAME TO event_store_unpartitioned;
ALTER SEQUENCE event_store_seq_seq OWNED BY NONE;

-- The same columns in the same order (SELECT * FROM event_store feeds read_models_apply).
CREATE TABLE event_store (
    event_id           uuid        NOT NULL,
    event_type         text        NOT NULL,
    schema_version     integer     NOT NULL,
    aggregate_type     text        NOT NULL,
    aggregate_id       text        NOT NULL,
    aggregate_version  integer     NOT NULL CHECK (aggregate_version >= 1),
    merchant_id        text        NOT NULL,
    occurred_at        timestamptz NOT NULL,
    causation_id       text        NOT NULL,
    payload            jsonb       NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    kafka_partition    integer,
    kafka_offset       bigint,
    seq                bigint      NOT NULL DEFAULT nextval('event_store_seq_seq')
) PARTITION BY RANGE (recorded_at);

ALTER SEQUENCE event_store_seq_seq OWNED BY event_store.seq;

-- Rows of a month without a partition land here rather than fail the projection: the money
-- path never stops for housekeeping. It stays empty while the partition job runs; rows found
-- here move into their month's partition when it is made (event_store_add_partition), and
-- checkout_event_store_default_partition_rows alerts meanwhile.
CREATE TABLE event_store_default PARTITION OF event_store DEFAULT;

-- Every event id and aggregate version ever recorded. Append-only like event_store; never
-- archived (a redelivered event of an archived month is still recognised), about 100 bytes an
-- event.
CREATE TABLE event_store_keys (
    event_id           uuid        PRIMARY KEY,
    aggregate_type     text        NOT NULL,
    aggregate_id       text        NOT NULL,
    aggregate_version  integer     NOT NULL,
    recorded_at        timestamptz NOT NULL
);

-- Archived months: where their events went (docs/operations.md). A month listed here without
-- restored_at has no rows in event_store, so a rebuild of the read models must refuse to run.
CREATE TABLE event_store_archives (
    month        date        PRIMARY KEY CHECK (month = date_trunc('month', month)),
    file         text        NOT NULL,
    sha256       text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    events       bigint      NOT NULL CHECK (events >= 0),
    first_seq    bigint,
    last_seq     bigint,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    archived_by  text        NOT NULL,
    restored_at  timestamptz
);

-- The month's partition of event_store, made unless it exists: event_store_y2026m12 holds the
-- events recorded in December 2026 (UTC). Rows the default partition took for that month move
-- into it, in this transaction. Returns the partition's name, or NULL if it was there already.
CREATE FUNCTION event_store_add_partition(month date) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    name      text := 'event_store_' || to_char(first_day, '"y"YYYY"m"MM');
    low       timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    high      timestamptz := (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    strays    bigint;
BEGIN
    -- One maker at a time: the leader's timer and an operator's command may meet.
    PERFORM pg_advisory_xact_lock(hashtext('crypto-checkout event_store partitions'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO strays FROM event_store_default
        WHERE recorded_at >= low AND recorded_at < high;
    IF strays = 0 THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF event_store FOR VALUES FROM (%L) TO (%L)',
                       name, low, high);
    ELSE
        -- A partition cannot be made over rows the default partition holds. Detached, the
        -- default partition loses the triggers it had from event_store, so its rows can move
        -- (not change: the same bytes, seq and recorded_at) into the new month, which is then
        -- attached without firing an insert trigger: nothing is claimed or folded twice.
        ALTER TABLE event_store DETACH PARTITION event_store_default;
        EXECUTE format('CREATE TABLE %I (LIKE event_store INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       name);
        EXECUTE format('INSERT INTO %I SELECT * FROM event_store_default'
                       ' WHERE recorded_at >= %L AND recorded_at < %L', name, low, high);
        DELETE FROM event_store_default WHERE recorded_at >= low AND recorded_at < high;
        EXECUTE format('ALTER TABLE event_store ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       name, low, high);
        ALTER TABLE event_store ATTACH PARTITION event_store_default DEFAULT;
    END IF;
    -- A statement trigger on event_store does not fire for a TRUNCATE of one partition.
    EXECUTE format('CREATE TRIGGER event_store_no_truncate BEFORE TRUNCATE ON %I'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION event_store_refuse_change()', name);
    RETURN name;
END
$$;

-- The partitions of this month and the next `ahead` months (UTC), those missing made now. The
-- leader runs it hourly (agents/event_partitions.py); `checkout events partitions` too.
CREATE FUNCTION event_store_add_partitions(ahead integer) RETURNS SETOF text
    LANGUAGE sql AS $$
    SELECT made FROM (
        SELECT event_store_add_partition(
                   (date_trunc('month', now() AT TIME ZONE 'UTC') + n * interval '1 month')::date
               ) AS made
        FROM generate_series(0, ahead) AS n
    ) m WHERE made IS NOT NULL
$$;

CREATE TRIGGER event_store_no_truncate
    BEFORE TRUNCATE ON event_store_default
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_refuse_change();

-- The months of the events there are, and the next three.
SELECT event_store_add_partition(month::date)
FROM generate_series(
         date_trunc('month', (SELECT coalesce(min(recorded_at), now())
                              FROM event_store_unpartitioned) AT TIME ZONE 'UTC'),
         date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months',
         interval '1 month'
     ) AS month;

INSERT INTO event_store SELECT * FROM event_store_unpartitioned;
INSERT INTO event_store_keys (event_id, aggregate_type, aggregate_id, aggregate_version,
                              recorded_at)
    SELECT event_id, aggregate_type, aggregate_id, aggregate_version, recorded_at
    FROM event_store_unpartitioned;

DROP TABLE event_store_unpartitioned CASCADE;

DO $$
DECLARE
    definition text;
BEGIN
    FOR definition IN SELECT f.definition FROM event_store_row_functions f LOOP
        EXECUTE definition;
    END LOOP;
END
$$;

-- The keys and indexes of migrations 0007, 0012 and 0016, now per partition (made on each
-- partition by PostgreSQL, present and future).
ALTER TABLE event_store_keys
    ADD CONSTRAINT event_store_aggregate_version_key
        UNIQUE (aggregate_type, aggregate_id, aggregate_version);
ALTER TABLE event_store ADD CONSTRAINT event_store_pkey PRIMARY KEY (event_id, recorded_at);
CREATE INDEX event_store_seq_idx ON event_store (seq);
CREATE INDEX event_store_merchant_time_idx
    ON event_store (merchant_id, occurred_at, aggregate_id, aggregate_version);
CREATE INDEX event_store_payment_invoice_idx
    ON event_store ((payload -> 'data' ->> 'invoice_id'))
    WHERE event_type = 'PaymentDetected';

-- Claims the event's keys before the row is stored; NULL (the row skipped) when its id is
-- taken, so the read models' AFTER INSERT trigger does not fire for a redelivered event.
CREATE FUNCTION event_store_claim_keys() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_store_keys (event_id, aggregate_type, aggregate_id, aggregate_version,
                                  recorded_at)
    VALUES (NEW.event_id, NEW.aggregate_type, NEW.aggregate_id, NEW.aggregate_version,
            NEW.recorded_at)
    ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER event_store_claim_keys
    BEFORE INSERT ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_claim_keys();
CREATE TRIGGER event_store_append_only
    BEFORE UPDATE OR DELETE ON event_store
    FOR EACH ROW EXECUTE FUNCTION event_store_refuse_change();
CREATE TRIGGER event_store_no_truncate
    BEFORE TRUNCATE ON event_store
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_refuse_change();
CREATE TRIGGER event_store_read_models
    AFTER INSERT ON event_store
    FOR EACH ROW EXECUTE FUNCTION read_models_on_event();

CREATE TRIGGER event_store_keys_append_only
    BEFORE UPDATE OR DELETE ON event_store_keys
    FOR EACH ROW EXECUTE FUNCTION event_store_refuse_change();
CREATE TRIGGER event_store_keys_no_truncate
    BEFORE TRUNCATE ON event_store_keys
    FOR EACH STATEMENT EXECUTE FUNCTION event_store_refuse_change();
