CREATE EXTENSION IF NOT EXISTS hstore;
CREATE SCHEMA audit;
CREATE TABLE audit.logged_actions (
    event_id bigserial PRIMARY KEY,
    schema_name text NOT NULL,
    table_name text NOT NULL,
    relid oid NOT NULL,
    session_user_name text,
    action_tstamp_tx timestamptz NOT NULL,
    action_tstamp_stm timestamptz NOT NULL,
    action_tstamp_clk timestamptz NOT NULL,
    transaction_id bigint,
    application_name text,
    client_addr inet,
    client_port integer,
    client_query text,
    action text NOT NULL CHECK (action IN ('I', 'D', 'U', 'T')),
    row_data hstore,
    changed_fields hstore,
    statement_only boolean NOT NULL
);
CREATE FUNCTION audit.if_modified_func() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $body$
DECLARE
    r audit.logged_actions;
    excluded text[] := ARRAY[]::text[];
BEGIN
    IF TG_ARGV[1] IS NOT NULL THEN
        excluded := TG_ARGV[1]::text[];
    END IF;
    r := ROW(nextval('audit.logged_actions_event_id_seq'), TG_TABLE_SCHEMA::text,
             TG_TABLE_NAME::text, TG_RELID, session_user::text, current_timestamp,
             statement_timestamp(), clock_timestamp(), txid_current(),
             current_setting('application_name'), inet_client_addr(), inet_client_port(),
             current_query(), substring(TG_OP, 1, 1), NULL, NULL, 'f');
    IF NOT TG_ARGV[0]::boolean IS DISTINCT FROM 'f'::boolean THEN
        r.client_query := NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND TG_LEVEL = 'ROW' THEN
        r.row_data := hstore(OLD.*) - excluded;
        r.changed_fields := (hstore(NEW.*) - r.row_data) - excluded;
        IF r.changed_fields = hstore('') THEN
            RETURN NULL;
        END IF;
    ELSIF TG_OP = 'DELETE' AND TG_LEVEL = 'ROW' THEN
        r.row_data := hstore(OLD.*) - excluded;
    ELSIF TG_OP = 'INSERT' AND TG_LEVEL = 'ROW' THEN
        r.row_data := hstore(NEW.*) - excluded;
    ELSIF TG_LEVEL = 'STATEMENT' THEN
        r.statement_only := 't';
    ELSE
        RAISE EXCEPTION 'audit.if_modified_func: unexpected % %', TG_OP, TG_LEVEL;
    END IF;
    INSERT INTO audit.logged_actions VALUES (r.*);
    RETURN NULL;
END
$body$;
