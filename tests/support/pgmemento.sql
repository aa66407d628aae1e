-- Our own SQL for pgMemento 0.7's documented layout (release 0.7.4), for tests: the `pgmemento`
-- schema with its log tables, sequences and indexes, and triggers that write the rows pgMemento's
-- own triggers write:
--   * transaction_log: one row per transaction (txid_current(), transaction_timestamp(),
--     pg_backend_pid(), session_user, inet_client_addr(), inet_client_port(), application_name,
--     and the `pgmemento.session_info` setting parsed as JSON, or as a JSON string if it is not
--     JSON); unique on (txid_time, txid).
--   * table_event_log: one row per table, operation and statement timestamp, written by a BEFORE
--     ... FOR EACH STATEMENT trigger (so also for statements that touch no row). op_id / name:
--     1 CREATE TABLE (and RECREATE TABLE), 11 REINIT TABLE, 12 RENAME TABLE, 2 ADD COLUMN,
--     21 ADD AUDIT_ID, 22 RENAME COLUMN, 3 INSERT, 4 UPDATE, 5 ALTER COLUMN, 6 DROP COLUMN,
--     7 DELETE, 8 TRUNCATE, 81 DROP AUDIT_ID, 9 DROP TABLE.
--   * event_key: the ';'-joined epoch of transaction_timestamp(), epoch of statement_timestamp(),
--     txid, op_id, table name and schema name (numeric epochs with 6 decimals on PostgreSQL 14+).
--   * row_log, by AFTER ... FOR EACH ROW triggers (flags log_old_data, default true, and
--     log_new_data, default false, chosen per table in create_table_audit):
--       INSERT: old_data NULL; new_data the whole new row (audit id included) if log_new_data.
--       UPDATE: old_data the old values of the changed columns if log_old_data; new_data their
--         new values if log_new_data; columns compare as the text of their JSON values (so
--         numeric 3 -> 3.00 counts as a change); no row when nothing changed (the event is still
--         logged). A second change of the same row under the same event_key (same statement
--         timestamp, e.g. two UPDATEs in one function call) is merged in: old_data keeps the
--         older values, new_data the newer ones, and a side not logged becomes {}, not NULL.
--       DELETE: old_data the whole old row if log_old_data (else NULL); new_data NULL.
--       TRUNCATE: if log_old_data, a BEFORE TRUNCATE trigger logs every row, ordered by audit id,
--         with old_data the whole row; new_data NULL.
--   * audit_schema_log, audit_table_log, audit_column_log: written when auditing starts, with
--     txid_range (transaction_log.id, ) as numranges open at the top.
-- pgmemento.create_table_audit(tablename, schemaname = 'public', audit_id_column_name =
-- 'pgmemento_audit_id', log_old_data = true, log_new_data = false, log_state = false) starts
-- auditing a table: the first call for a schema first records the schema (session_info
-- {"pgmemento_init": {...}}), then it creates the triggers, logs an ADD AUDIT_ID event, adds
-- the audit id column (bigint, unique, not null, default nextval('pgmemento.audit_id_seq')),
-- which numbers existing rows, registers the table and its columns, and with log_state logs the
-- existing rows under an INSERT event. pgMemento's event triggers for DDL, its views and its
-- restore/revert functions are not reproduced.

CREATE SCHEMA pgmemento;

CREATE TABLE pgmemento.transaction_log (
    id serial CONSTRAINT transaction_log_pk PRIMARY KEY,
    txid bigint NOT NULL,
    txid_time timestamptz NOT NULL,
    process_id integer,
    user_name text,
    client_name text,
    client_port integer,
    application_name text,
    session_info jsonb
);
CREATE UNIQUE INDEX transaction_log_unique_idx ON pgmemento.transaction_log (txid_time, txid);
CREATE INDEX transaction_log_session_idx ON pgmemento.transaction_log USING gin (session_info);

CREATE TABLE pgmemento.table_event_log (
    id serial CONSTRAINT table_event_log_pk PRIMARY KEY,
    transaction_id integer NOT NULL CONSTRAINT table_event_log_txid_fk
        REFERENCES pgmemento.transaction_log (id) MATCH FULL ON DELETE CASCADE ON UPDATE CASCADE,
    stmt_time timestamptz NOT NULL,
    op_id smallint NOT NULL,
    table_operation text,
    table_name text NOT NULL,
    schema_name text NOT NULL,
    event_key text NOT NULL
);
CREATE INDEX table_event_log_fk_idx ON pgmemento.table_event_log (transaction_id);
CREATE UNIQUE INDEX table_event_log_event_idx ON pgmemento.table_event_log (event_key);

CREATE TABLE pgmemento.row_log (
    id bigserial CONSTRAINT row_log_pk PRIMARY KEY,
    audit_id bigint NOT NULL,
    event_key text NOT NULL,
    old_data jsonb,
    new_data jsonb
);
CREATE INDEX row_log_audit_idx ON pgmemento.row_log (audit_id);
CREATE UNIQUE INDEX row_log_event_audit_idx ON pgmemento.row_log (event_key, audit_id);
CREATE INDEX row_log_old_data_idx ON pgmemento.row_log USING gin (old_data);
CREATE INDEX row_log_new_data_idx ON pgmemento.row_log USING gin (new_data);

CREATE TABLE pgmemento.audit_schema_log (
    id serial CONSTRAINT audit_schema_log_pk PRIMARY KEY,
    log_id integer NOT NULL,
    schema_name text NOT NULL,
    default_audit_id_column text NOT NULL,
    default_log_old_data boolean DEFAULT true,
    default_log_new_data boolean DEFAULT false,
    trigger_create_table boolean DEFAULT false,
    txid_range numrange
);

CREATE TABLE pgmemento.audit_table_log (
    id serial CONSTRAINT audit_table_log_pk PRIMARY KEY,
    log_id integer NOT NULL,
    relid oid,
    table_name text NOT NULL,
    schema_name text NOT NULL,
    audit_id_column text NOT NULL,
    log_old_data boolean NOT NULL,
    log_new_data boolean NOT NULL,
    txid_range numrange
);
CREATE INDEX table_log_idx ON pgmemento.audit_table_log (log_id);
CREATE INDEX table_log_name_idx ON pgmemento.audit_table_log (table_name, schema_name);
CREATE INDEX table_log_range_idx ON pgmemento.audit_table_log USING gist (txid_range);

CREATE TABLE pgmemento.audit_column_log (
    id serial CONSTRAINT audit_column_log_pk PRIMARY KEY,
    audit_table_id integer NOT NULL CONSTRAINT audit_column_log_fk
        REFERENCES pgmemento.audit_table_log (id) MATCH FULL ON DELETE CASCADE ON UPDATE CASCADE,
    column_name text NOT NULL,
    ordinal_position integer,
    data_type text,
    column_default text,
    not_null boolean,
    txid_range numrange
);
CREATE INDEX column_log_table_idx ON pgmemento.audit_column_log (audit_table_id);
CREATE INDEX column_log_column_idx ON pgmemento.audit_column_log (column_name);
CREATE INDEX column_log_range_idx ON pgmemento.audit_column_log USING gist (txid_range);

CREATE SEQUENCE pgmemento.audit_id_seq MINVALUE 0 MAXVALUE 2147483647 START 1;
CREATE SEQUENCE pgmemento.schema_log_id_seq MINVALUE 0 MAXVALUE 2147483647 START 1;
CREATE SEQUENCE pgmemento.table_log_id_seq MINVALUE 0 MAXVALUE 2147483647 START 1;

CREATE FUNCTION pgmemento.version(OUT full_version text, OUT major_version integer,
                                  OUT minor_version integer, OUT revision integer,
                                  OUT build_id text) RETURNS record LANGUAGE sql AS $$
    SELECT 'pgMemento 0.7.4'::text, 0, 7, 4, '100'::text
$$;

CREATE FUNCTION pgmemento.get_operation_id(operation text) RETURNS smallint
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT op.id::smallint
    FROM (VALUES ('CREATE TABLE', 1), ('RECREATE TABLE', 1), ('REINIT TABLE', 11),
                 ('RENAME TABLE', 12), ('ADD COLUMN', 2), ('ADD AUDIT_ID', 21),
                 ('RENAME COLUMN', 22), ('INSERT', 3), ('UPDATE', 4), ('ALTER COLUMN', 5),
                 ('DROP COLUMN', 6), ('DELETE', 7), ('TRUNCATE', 8), ('DROP AUDIT_ID', 81),
                 ('DROP TABLE', 9)) AS op (name, id)
    WHERE op.name = $1
$$;

-- The event key of the current statement for one table and operation.
CREATE FUNCTION pgmemento.current_event_key(tablename text, schemaname text, op_id smallint)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT extract(epoch FROM transaction_timestamp())::text || ';'
        || extract(epoch FROM statement_timestamp())::text || ';'
        || txid_current()::text || ';' || op_id::text || ';' || tablename || ';' || schemaname
$$;

-- Writes the current transaction's transaction_log row once and returns its id, which is kept
-- for the rest of the transaction in the setting `pgmemento.t<txid>`.
CREATE FUNCTION pgmemento.log_transaction(current_txid bigint) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    info text;
    info_json jsonb;
    log_id integer;
BEGIN
    BEGIN
        info := current_setting('pgmemento.session_info');
        info_json := CASE WHEN coalesce(info, '') = '' THEN NULL ELSE info::jsonb END;
    EXCEPTION
        WHEN undefined_object THEN info_json := NULL;
        WHEN invalid_text_representation THEN info_json := to_jsonb(info);
        WHEN others THEN info_json := NULL;
    END;
    INSERT INTO pgmemento.transaction_log (txid, txid_time, process_id, user_name, client_name,
                                           client_port, application_name, session_info)
    VALUES (current_txid, transaction_timestamp(), pg_backend_pid(), session_user,
            inet_client_addr(), inet_client_port(), current_setting('application_name'), info_json)
    ON CONFLICT (txid_time, txid) DO NOTHING
    RETURNING id INTO log_id;
    IF log_id IS NULL THEN
        log_id := current_setting('pgmemento.t' || current_txid)::integer;
    ELSE
        PERFORM set_config('pgmemento.t' || current_txid, log_id::text, true);
    END IF;
    RETURN log_id;
END $$;

-- Writes one table_event_log row per table, operation and statement timestamp; returns its
-- event key, or NULL if the event was already logged.
CREATE FUNCTION pgmemento.log_table_event(tablename text, schemaname text, op_type text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    op smallint := pgmemento.get_operation_id(op_type);
    key text;
BEGIN
    INSERT INTO pgmemento.table_event_log (transaction_id, stmt_time, op_id, table_operation,
                                           table_name, schema_name, event_key)
    VALUES (pgmemento.log_transaction(txid_current()), statement_timestamp(), op, op_type,
            tablename, schemaname, pgmemento.current_event_key(tablename, schemaname, op))
    ON CONFLICT (event_key) DO NOTHING
    RETURNING event_key INTO key;
    RETURN key;
END $$;

-- Statement-level trigger function (pgmemento_transaction_trigger).
CREATE FUNCTION pgmemento.log_statement() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pgmemento.log_table_event(TG_TABLE_NAME, TG_TABLE_SCHEMA, TG_OP);
    RETURN NULL;
END $$;

-- Logs every row of a table, whole, as old_data under the given event key.
CREATE FUNCTION pgmemento.log_old_table_state(tablename text, schemaname text, table_event_key text,
                                              audit_id_column_name text DEFAULT 'pgmemento_audit_id')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    EXECUTE format('INSERT INTO pgmemento.row_log (audit_id, event_key, old_data)
                    SELECT t.%1$I, $1, to_jsonb(t) FROM %2$I.%3$I AS t ORDER BY t.%1$I
                    ON CONFLICT (event_key, audit_id) DO NOTHING',
                   audit_id_column_name, schemaname, tablename)
        USING table_event_key;
END $$;

-- BEFORE TRUNCATE trigger function (pgmemento_truncate_trigger); TG_ARGV[0]: audit id column.
CREATE FUNCTION pgmemento.log_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    key text;
BEGIN
    FOR key IN
        SELECT e.event_key FROM pgmemento.table_event_log e
        WHERE e.transaction_id = current_setting('pgmemento.t' || txid_current())::integer
          AND e.table_name = TG_TABLE_NAME AND e.schema_name = TG_TABLE_SCHEMA AND e.op_id = 8
    LOOP
        PERFORM pgmemento.log_old_table_state(TG_TABLE_NAME, TG_TABLE_SCHEMA, key, TG_ARGV[0]);
    END LOOP;
    RETURN NULL;
END $$;

-- Row-level trigger functions. TG_ARGV: audit id column, log_old_data, log_new_data.
CREATE FUNCTION pgmemento.log_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO pgmemento.row_log (audit_id, event_key, new_data)
    VALUES ((to_jsonb(NEW) ->> TG_ARGV[0])::bigint,
            pgmemento.current_event_key(TG_TABLE_NAME, TG_TABLE_SCHEMA, 3::smallint),
            CASE WHEN TG_ARGV[2] = 'true' THEN to_json(NEW)::jsonb END);
    RETURN NULL;
END $$;

CREATE FUNCTION pgmemento.log_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    old_row jsonb := to_jsonb(OLD);
    new_row jsonb := to_jsonb(NEW);
    old_delta jsonb;
    new_delta jsonb;
BEGIN
    IF TG_ARGV[1] = 'true' THEN
        SELECT coalesce(jsonb_object_agg(o.key, o.value), '{}') INTO old_delta
        FROM jsonb_each(old_row) AS o
        WHERE new_row ->> o.key IS DISTINCT FROM old_row ->> o.key;
    END IF;
    IF TG_ARGV[2] = 'true' THEN
        SELECT coalesce(jsonb_object_agg(n.key, n.value), '{}') INTO new_delta
        FROM jsonb_each(new_row) AS n
        WHERE old_row ->> n.key IS DISTINCT FROM new_row ->> n.key;
    END IF;
    IF old_delta <> '{}' OR new_delta <> '{}' THEN
        INSERT INTO pgmemento.row_log AS r (audit_id, event_key, old_data, new_data)
        VALUES ((new_row ->> TG_ARGV[0])::bigint,
                pgmemento.current_event_key(TG_TABLE_NAME, TG_TABLE_SCHEMA, 4::smallint),
                old_delta, new_delta)
        ON CONFLICT (event_key, audit_id) DO UPDATE
        SET old_data = coalesce(excluded.old_data, '{}') || coalesce(r.old_data, '{}'),
            new_data = coalesce(r.new_data, '{}') || coalesce(excluded.new_data, '{}');
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION pgmemento.log_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    INSERT INTO pgmemento.row_log (audit_id, event_key, old_data)
    VALUES ((to_jsonb(OLD) ->> TG_ARGV[0])::bigint,
            pgmemento.current_event_key(TG_TABLE_NAME, TG_TABLE_SCHEMA, 7::smallint),
            CASE WHEN TG_ARGV[1] = 'true' THEN to_json(OLD)::jsonb END);
    RETURN NULL;
END $$;

CREATE FUNCTION pgmemento.create_table_log_trigger(tablename text, schemaname text DEFAULT 'public',
                                                   audit_id_column_name text DEFAULT 'pgmemento_audit_id',
                                                   log_old_data boolean DEFAULT true,
                                                   log_new_data boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    tbl text := format('%I.%I', schemaname, tablename);
    -- the row triggers' arguments are the words 'true' / 'false'
    flag_old text := CASE WHEN log_old_data THEN 'true' ELSE 'false' END;
    flag_new text := CASE WHEN log_new_data THEN 'true' ELSE 'false' END;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl::regclass
                                          AND tgname = 'pgmemento_transaction_trigger') THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TRIGGER pgmemento_transaction_trigger
                    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE PROCEDURE pgmemento.log_statement()', tbl);
    IF log_old_data THEN
        EXECUTE format('CREATE TRIGGER pgmemento_truncate_trigger BEFORE TRUNCATE ON %s
                        FOR EACH STATEMENT EXECUTE PROCEDURE pgmemento.log_truncate(%L)',
                       tbl, audit_id_column_name);
    END IF;
    EXECUTE format('CREATE TRIGGER pgmemento_insert_trigger AFTER INSERT ON %s
                    FOR EACH ROW EXECUTE PROCEDURE pgmemento.log_insert(%L, %s, %s)',
                   tbl, audit_id_column_name, flag_old, flag_new);
    EXECUTE format('CREATE TRIGGER pgmemento_update_trigger AFTER UPDATE ON %s
                    FOR EACH ROW EXECUTE PROCEDURE pgmemento.log_update(%L, %s, %s)',
                   tbl, audit_id_column_name, flag_old, flag_new);
    EXECUTE format('CREATE TRIGGER pgmemento_delete_trigger AFTER DELETE ON %s
                    FOR EACH ROW EXECUTE PROCEDURE pgmemento.log_delete(%L, %s)',
                   tbl, audit_id_column_name, flag_old);
END $$;

-- Logs the ADD AUDIT_ID event and adds the audit id column, which numbers the existing rows.
CREATE FUNCTION pgmemento.create_table_audit_id(tablename text, schemaname text DEFAULT 'public',
                                                audit_id_column_name text DEFAULT 'pgmemento_audit_id')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM pgmemento.log_table_event(tablename, schemaname, 'ADD AUDIT_ID');
    EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %I bigint
                    DEFAULT nextval(''pgmemento.audit_id_seq''::regclass) UNIQUE NOT NULL',
                   schemaname, tablename, audit_id_column_name);
END $$;

-- Records a table and its columns (all but the audit id column) as audited from now on.
CREATE FUNCTION pgmemento.register_audit_table(audit_table_name text, audit_schema_name text,
                                               audit_id_column_name text, log_old_data boolean,
                                               log_new_data boolean)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    tbl oid := format('%I.%I', audit_schema_name, audit_table_name)::regclass;
    since numrange := numrange(current_setting('pgmemento.t' || txid_current())::numeric, NULL, '(]');
    tab_id integer;
BEGIN
    SELECT id INTO tab_id FROM pgmemento.audit_table_log
    WHERE table_name = audit_table_name AND schema_name = audit_schema_name
      AND lower(txid_range) IS NOT NULL AND upper(txid_range) IS NULL;
    IF tab_id IS NOT NULL THEN
        RETURN tab_id;
    END IF;
    INSERT INTO pgmemento.audit_table_log (log_id, relid, schema_name, table_name, audit_id_column,
                                           log_old_data, log_new_data, txid_range)
    VALUES (nextval('pgmemento.table_log_id_seq'), tbl, audit_schema_name, audit_table_name,
            audit_id_column_name, log_old_data, log_new_data, since)
    RETURNING id INTO tab_id;
    INSERT INTO pgmemento.audit_column_log (audit_table_id, column_name, ordinal_position,
                                            column_default, not_null, data_type, txid_range)
    SELECT tab_id, a.attname, a.attnum, pg_get_expr(d.adbin, d.adrelid, true), a.attnotnull,
           substr(format_type(a.atttypid, a.atttypmod),
                  strpos(format_type(a.atttypid, a.atttypmod), '.') + 1),
           since
    FROM pg_attribute a
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname <> audit_id_column_name
    ORDER BY a.attnum;
    RETURN tab_id;
END $$;

-- Logs the rows present when auditing starts as inserted (new_data only with log_new_data).
CREATE FUNCTION pgmemento.log_table_baseline(tablename text, schemaname text DEFAULT 'public',
                                             audit_id_column_name text DEFAULT 'pgmemento_audit_id',
                                             log_new_data boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    tbl text := format('%I.%I', schemaname, tablename);
    has_rows boolean;
    order_by text;
    key text;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT FROM %s)', tbl) INTO STRICT has_rows;
    IF NOT has_rows THEN
        RETURN;
    END IF;
    key := pgmemento.log_table_event(tablename, schemaname, 'INSERT');
    IF key IS NULL THEN
        RETURN;
    END IF;
    -- primary key columns in table column order, as pgMemento lists them
    SELECT string_agg(format('t.%I', a.attname), ', ' ORDER BY a.attnum) INTO order_by
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = tbl::regclass AND i.indisprimary;
    EXECUTE format('INSERT INTO pgmemento.row_log (audit_id, event_key, new_data)
                    SELECT t.%1$I, $1, CASE WHEN $2 THEN to_json(t)::jsonb END FROM %2$s AS t
                    WHERE NOT EXISTS (SELECT FROM pgmemento.row_log r WHERE r.audit_id = t.%1$I)
                    ORDER BY %3$s
                    ON CONFLICT (event_key, audit_id) DO NOTHING',
                   audit_id_column_name, tbl, coalesce(order_by, format('t.%I', audit_id_column_name)))
        USING key, log_new_data;
END $$;

-- Records a schema as audited; the transaction is logged with session_info
-- {"pgmemento_init": {...}} holding the settings.
CREATE FUNCTION pgmemento.init(schemaname text DEFAULT 'public',
                               audit_id_column_name text DEFAULT 'pgmemento_audit_id',
                               log_old_data boolean DEFAULT true, log_new_data boolean DEFAULT false,
                               log_state boolean DEFAULT false,
                               trigger_create_table boolean DEFAULT false,
                               except_tables text[] DEFAULT '{}')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    log_id integer;
BEGIN
    IF EXISTS (SELECT 1 FROM pgmemento.audit_schema_log
               WHERE schema_name = schemaname AND upper(txid_range) IS NULL) THEN
        RETURN;
    END IF;
    PERFORM set_config('pgmemento.session_info',
                       jsonb_build_object('pgmemento_init', jsonb_build_object(
                           'schema_name', schemaname,
                           'default_audit_id_column', audit_id_column_name,
                           'default_log_old_data', log_old_data,
                           'default_log_new_data', log_new_data,
                           'log_state', log_state,
                           'trigger_create_table', trigger_create_table,
                           'except_tables', except_tables))::text,
                       true);
    log_id := pgmemento.log_transaction(txid_current());
    INSERT INTO pgmemento.audit_schema_log (log_id, schema_name, default_audit_id_column,
                                            default_log_old_data, default_log_new_data,
                                            trigger_create_table, txid_range)
    VALUES (nextval('pgmemento.schema_log_id_seq'), schemaname, audit_id_column_name, log_old_data,
            log_new_data, trigger_create_table, numrange(log_id, NULL, '(]'));
END $$;

CREATE FUNCTION pgmemento.create_table_audit(tablename text, schemaname text DEFAULT 'public',
                                             audit_id_column_name text DEFAULT 'pgmemento_audit_id',
                                             log_old_data boolean DEFAULT true,
                                             log_new_data boolean DEFAULT false,
                                             log_state boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgmemento.audit_schema_log
                   WHERE schema_name = schemaname AND upper(txid_range) IS NULL) THEN
        PERFORM pgmemento.init(schemaname, audit_id_column_name, log_old_data, log_new_data,
                               log_state, false,
                               (SELECT array_agg(c.relname::text ORDER BY c.oid)
                                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                WHERE n.nspname = schemaname AND c.relname <> tablename
                                  AND c.relkind = 'r'));
    END IF;
    PERFORM pgmemento.create_table_log_trigger(tablename, schemaname, audit_id_column_name,
                                               log_old_data, log_new_data);
    PERFORM pgmemento.create_table_audit_id(tablename, schemaname, audit_id_column_name);
    PERFORM pgmemento.register_audit_table(tablename, schemaname, audit_id_column_name,
                                           log_old_data, log_new_data);
    IF log_state THEN
        PERFORM pgmemento.log_table_baseline(tablename, schemaname, audit_id_column_name,
                                             log_new_data);
    END IF;
END $$;
