-- Our own SQL for supa_audit's documented layout, for tests: the `audit.operation` enum, the
-- `audit.record_version` table, and triggers that record `to_jsonb(NEW)` / `to_jsonb(OLD)`,
-- `now()` as `ts`, and a record id derived from the table and its primary key.

CREATE SCHEMA audit;
CREATE TYPE audit.operation AS ENUM ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE');
CREATE TABLE audit.record_version (
    id bigserial PRIMARY KEY,
    record_id uuid,
    old_record_id uuid,
    op audit.operation NOT NULL,
    ts timestamptz NOT NULL DEFAULT (now()),
    table_oid oid NOT NULL,
    table_schema name NOT NULL,
    table_name name NOT NULL,
    record jsonb,
    old_record jsonb,
    CHECK (coalesce(record_id, old_record_id) IS NOT NULL OR op = 'TRUNCATE'),
    CHECK (op IN ('INSERT', 'UPDATE') = (record_id IS NOT NULL)),
    CHECK (op IN ('INSERT', 'UPDATE') = (record IS NOT NULL)),
    CHECK (op IN ('UPDATE', 'DELETE') = (old_record_id IS NOT NULL)),
    CHECK (op IN ('UPDATE', 'DELETE') = (old_record IS NOT NULL))
);
CREATE INDEX record_version_record_id ON audit.record_version (record_id)
    WHERE record_id IS NOT NULL;
CREATE INDEX record_version_old_record_id ON audit.record_version (old_record_id)
    WHERE old_record_id IS NOT NULL;
CREATE INDEX record_version_ts ON audit.record_version USING brin (ts);
CREATE INDEX record_version_table_oid ON audit.record_version (table_oid);

CREATE FUNCTION audit.primary_key_columns(entity_oid oid) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(pa.attname::text ORDER BY pa.attnum), ARRAY[]::text[])
    FROM pg_index pi
    JOIN pg_attribute pa ON pi.indrelid = pa.attrelid AND pa.attnum = ANY (pi.indkey)
    WHERE pi.indrelid = $1 AND pi.indisprimary
$$;

CREATE FUNCTION audit.to_record_id(entity_oid oid, pkey_cols text[], rec jsonb) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN rec IS NULL THEN NULL
                ELSE md5(entity_oid::text || (SELECT jsonb_agg(rec -> c) FROM unnest(pkey_cols) c)::text)::uuid
           END
$$;

CREATE FUNCTION audit.insert_update_delete_trigger() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
DECLARE
    pkey_cols text[] := audit.primary_key_columns(TG_RELID);
    record_jsonb jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
    old_record_jsonb jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
BEGIN
    INSERT INTO audit.record_version (record_id, old_record_id, op, table_oid, table_schema,
                                      table_name, record, old_record)
    VALUES (audit.to_record_id(TG_RELID, pkey_cols, record_jsonb),
            audit.to_record_id(TG_RELID, pkey_cols, old_record_jsonb),
            TG_OP::audit.operation, TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME,
            record_jsonb, old_record_jsonb);
    RETURN coalesce(NEW, OLD);
END $$;

CREATE FUNCTION audit.truncate_trigger() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO audit.record_version (op, table_oid, table_schema, table_name)
    VALUES (TG_OP::audit.operation, TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME);
    RETURN coalesce(OLD, NEW);
END $$;

CREATE FUNCTION audit.enable_tracking(regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF audit.primary_key_columns($1) = ARRAY[]::text[] THEN
        RAISE EXCEPTION 'Table % can not be audited because it has no primary key', $1;
    END IF;
    EXECUTE format('CREATE TRIGGER audit_i_u_d AFTER INSERT OR UPDATE OR DELETE ON %s
                    FOR EACH ROW EXECUTE PROCEDURE audit.insert_update_delete_trigger()', $1);
    EXECUTE format('CREATE TRIGGER audit_t AFTER TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE PROCEDURE audit.truncate_trigger()', $1);
END $$;
