-- Our own SQL for what Bemi's worker writes, for tests: its destination table `changes` as the
-- worker's migrations leave it, and a trigger that writes each row change as the worker would
-- from Debezium's event for it (values in Debezium's default JSON encoding; before-images as
-- pgoutput sends them: whole only with REPLICA IDENTITY FULL). The same trigger keeps each
-- Debezium event itself in `debezium_events`, so the events can be written out one per line.

CREATE TABLE changes (
    id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    primary_key varchar(255) NULL,
    "before" jsonb NOT NULL DEFAULT '{}',
    "after" jsonb NOT NULL DEFAULT '{}',
    context jsonb NOT NULL DEFAULT '{}',
    database varchar(255) NOT NULL,
    schema varchar(255) NOT NULL,
    "table" varchar(255) NOT NULL,
    operation text NOT NULL
        CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE', 'TRUNCATE', 'MESSAGE')),
    committed_at timestamptz NOT NULL,
    queued_at timestamptz NOT NULL,
    transaction_id bigint NOT NULL,
    position bigint NOT NULL,
    CONSTRAINT changes_position_table_schema_database_operation_unique
        UNIQUE (position, "table", schema, database, operation)
);
CREATE INDEX changes_committed_at_index ON changes (committed_at);

CREATE TABLE debezium_events (n bigserial PRIMARY KEY, rel oid NOT NULL, event jsonb NOT NULL);

-- A decimal's unscaled value as the big-endian two's complement bytes Java's
-- BigInteger.toByteArray gives, in base64.
CREATE FUNCTION debezium_decimal(v numeric, s int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    u numeric := trunc(v * (10::numeric ^ s));
    n int := 1;
    m numeric;
    b bytea := '';
BEGIN
    WHILE NOT (u >= -(2::numeric ^ (8 * n - 1)) AND u < 2::numeric ^ (8 * n - 1)) LOOP
        n := n + 1;
    END LOOP;
    m := CASE WHEN u < 0 THEN u + 2::numeric ^ (8 * n) ELSE u END;
    FOR i IN 1..n LOOP
        b := set_byte('\x00'::bytea, 0, (m % 256)::int) || b;
        m := trunc(m / 256);
    END LOOP;
    RETURN encode(b, 'base64');
END $$;

-- One value of type `typ` (format_type), given as to_jsonb gives it, in Debezium's encoding.
CREATE FUNCTION debezium_value(j jsonb, typ text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t text := j #>> '{}';
BEGIN
    IF j IS NULL OR jsonb_typeof(j) = 'null' THEN
        RETURN 'null'::jsonb;
    ELSIF typ LIKE 'numeric(%,%)' THEN
        RETURN to_jsonb(debezium_decimal(t::numeric, substring(typ FROM ',(\d+)\)')::int));
    ELSIF typ = 'numeric' THEN
        RETURN jsonb_build_object('scale', scale(t::numeric),
                                  'value', debezium_decimal(t::numeric, scale(t::numeric)));
    ELSIF typ = 'bytea' THEN
        RETURN to_jsonb(replace(encode(t::bytea, 'base64'), E'\n', ''));
    ELSIF typ = 'date' THEN
        RETURN to_jsonb(t::date - date '1970-01-01');
    ELSIF typ LIKE 'timestamp%without time zone' THEN
        RETURN to_jsonb((extract(epoch FROM t::timestamp) * 1000000)::bigint);
    ELSIF typ = 'timestamp with time zone' THEN
        RETURN to_jsonb(to_char(t::timestamptz AT TIME ZONE 'UTC',
                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
    ELSIF typ IN ('json', 'jsonb') THEN
        RETURN to_jsonb(t);
    ELSE
        RETURN j;
    END IF;
END $$;

-- A row in Debezium's encoding; with key_only, every column outside the primary key is null
-- (what pgoutput's old key gives Debezium).
CREATE FUNCTION debezium_row(rel oid, r jsonb, key_only boolean) RETURNS jsonb LANGUAGE sql AS $$
    SELECT coalesce(jsonb_object_agg(a.attname,
               CASE WHEN key_only AND NOT a.attnum = ANY (k.pk) THEN 'null'::jsonb
                    ELSE debezium_value(r -> a.attname::text, format_type(a.atttypid, a.atttypmod))
               END ORDER BY a.attnum), '{}')
    FROM pg_attribute a,
         (SELECT coalesce((SELECT indkey::int2[] FROM pg_index
                           WHERE indrelid = rel AND indisprimary), '{}') AS pk) k
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- The schema part of a table's events (value.converter.schemas.enable=true).
CREATE FUNCTION debezium_schema(rel oid) RETURNS jsonb LANGUAGE sql AS $$
    WITH columns AS (
        SELECT jsonb_agg(
            jsonb_strip_nulls(jsonb_build_object('field', a.attname, 'optional', NOT a.attnotnull)
            || CASE
                 WHEN t.typ = 'integer' THEN '{"type": "int32"}'
                 WHEN t.typ = 'smallint' THEN '{"type": "int16"}'
                 WHEN t.typ = 'bigint' THEN '{"type": "int64"}'
                 WHEN t.typ = 'boolean' THEN '{"type": "boolean"}'
                 WHEN t.typ = 'real' THEN '{"type": "float32"}'
                 WHEN t.typ = 'double precision' THEN '{"type": "float64"}'
                 WHEN t.typ LIKE 'numeric(%,%)' THEN jsonb_build_object('type', 'bytes',
                      'name', 'org.apache.kafka.connect.data.Decimal',
                      'parameters', jsonb_build_object('scale', substring(t.typ FROM ',(\d+)\)')))
                 WHEN t.typ = 'numeric' THEN
                      '{"type": "struct", "name": "io.debezium.data.VariableScaleDecimal"}'
                 WHEN t.typ = 'bytea' THEN '{"type": "bytes"}'
                 WHEN t.typ = 'date' THEN '{"type": "int32", "name": "io.debezium.time.Date"}'
                 WHEN t.typ LIKE 'timestamp%without time zone' THEN
                      '{"type": "int64", "name": "io.debezium.time.MicroTimestamp"}'
                 WHEN t.typ = 'timestamp with time zone' THEN
                      '{"type": "string", "name": "io.debezium.time.ZonedTimestamp"}'
                 WHEN t.typ IN ('json', 'jsonb') THEN
                      '{"type": "string", "name": "io.debezium.data.Json"}'
                 WHEN t.typ = 'text[]' THEN
                      '{"type": "array", "items": {"type": "string", "optional": true}}'
                 WHEN t.typ = 'integer[]' THEN
                      '{"type": "array", "items": {"type": "int32", "optional": true}}'
                 ELSE '{"type": "string"}'
               END::jsonb) ORDER BY a.attnum) AS fields
        FROM pg_attribute a,
             LATERAL (SELECT format_type(a.atttypid, a.atttypmod) AS typ) t
        WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
    )
    SELECT jsonb_build_object('type', 'struct', 'optional', false,
        'name', 'shop.' || rel::regclass::text || '.Envelope',
        'fields', jsonb_build_array(
            jsonb_build_object('type', 'struct', 'optional', true, 'field', 'before',
                               'fields', columns.fields),
            jsonb_build_object('type', 'struct', 'optional', true, 'field', 'after',
                               'fields', columns.fields),
            '{"type": "struct", "optional": false, "field": "source", "fields": []}'::jsonb,
            '{"type": "string", "optional": false, "field": "op"}'::jsonb))
    FROM columns
$$;

CREATE FUNCTION bemi_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    full_identity boolean := (SELECT relreplident = 'f' FROM pg_class WHERE oid = TG_RELID);
    b jsonb := '{}';
    a jsonb := '{}';
    op text;
    debezium_op text;
    committed timestamptz := date_trunc('milliseconds', now());
    txid bigint := txid_current() % 4294967296;
    pos bigint := (pg_current_wal_insert_lsn() - '0/0')::bigint;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        op := 'TRUNCATE';
        debezium_op := 't';
    ELSIF TG_OP = 'INSERT' THEN
        op := 'CREATE';
        debezium_op := 'c';
        a := debezium_row(TG_RELID, to_jsonb(NEW), false);
    ELSIF TG_OP = 'UPDATE' THEN
        op := 'UPDATE';
        debezium_op := 'u';
        a := debezium_row(TG_RELID, to_jsonb(NEW), false);
        IF full_identity THEN
            b := debezium_row(TG_RELID, to_jsonb(OLD), false);
        ELSIF debezium_row(TG_RELID, to_jsonb(OLD), true)
              <> debezium_row(TG_RELID, to_jsonb(NEW), true) THEN
            b := debezium_row(TG_RELID, to_jsonb(OLD), true);
        END IF;
    ELSE
        op := 'DELETE';
        debezium_op := 'd';
        b := debezium_row(TG_RELID, to_jsonb(OLD), NOT full_identity);
    END IF;
    INSERT INTO changes (primary_key, "before", "after", context, database, schema, "table",
                         operation, committed_at, queued_at, transaction_id, position)
    VALUES ((CASE WHEN op = 'DELETE' THEN b ELSE a END) ->> 'id', b, a,
            coalesce(nullif(current_setting('bemi.context', true), '')::jsonb, '{}'),
            current_database(), TG_TABLE_SCHEMA, TG_TABLE_NAME, op, committed,
            clock_timestamp(), txid, pos);
    INSERT INTO debezium_events (rel, event) VALUES (TG_RELID, jsonb_build_object(
        'before', CASE WHEN b = '{}' THEN NULL ELSE b END,
        'after', CASE WHEN a = '{}' THEN NULL ELSE a END,
        'source', jsonb_build_object('version', '2.5.0.Final', 'connector', 'postgresql',
            'name', 'shop', 'ts_ms', (extract(epoch FROM committed) * 1000)::bigint,
            'snapshot', 'false', 'db', current_database(),
            'sequence', jsonb_build_array(NULL, pos::text)::text,
            'schema', TG_TABLE_SCHEMA, 'table', TG_TABLE_NAME, 'txId', txid, 'lsn', pos,
            'xmin', NULL),
        'op', debezium_op,
        'ts_ms', (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
        'transaction', NULL));
    RETURN NULL;
END $$;
