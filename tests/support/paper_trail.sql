-- Our own SQL for what PaperTrail writes, for tests: the `versions` table its Rails migration
-- creates (with object_changes and transaction_id), and a trigger standing in for the
-- application's model callbacks, which writes each version's `object` (the record before the
-- change) and `object_changes` in the YAML PaperTrail's default serializer writes (Psych's
-- layout: BigDecimal tagged, times in UTC with nanoseconds and " Z", binary strings tagged
-- !binary, nil as nothing). Model names are Rails' (customers -> Customer).

CREATE TABLE versions (
    id bigserial PRIMARY KEY,
    item_type character varying NOT NULL,
    item_id bigint NOT NULL,
    event character varying NOT NULL,
    whodunnit character varying,
    object text,
    object_changes text,
    transaction_id bigint,
    created_at timestamp without time zone
);
CREATE INDEX index_versions_on_item_type_and_item_id ON versions (item_type, item_id);
CREATE INDEX index_versions_on_transaction_id ON versions (transaction_id);

-- One value (as to_jsonb gives it) of type `typ` in Psych's YAML, after "key:".
CREATE FUNCTION pt_yaml_value(j jsonb, typ text, indent text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t text := j #>> '{}';
    v numeric;
    body text;
    whole text;
    part text;
    digits text;
    exponent int;
BEGIN
    IF j IS NULL OR jsonb_typeof(j) = 'null' THEN
        RETURN '';
    ELSIF typ LIKE 'numeric%' THEN
        v := t::numeric;
        IF v = 0 THEN
            RETURN ' !ruby/object:BigDecimal 18:0.0';
        END IF;
        body := trim_scale(abs(v))::text;
        whole := split_part(body, '.', 1);
        part := split_part(body, '.', 2);
        IF whole <> '0' THEN
            digits := rtrim(whole || part, '0');
            exponent := length(whole);
        ELSE
            digits := ltrim(part, '0');
            exponent := -(length(part) - length(ltrim(part, '0')));
        END IF;
        RETURN ' !ruby/object:BigDecimal 18:' || CASE WHEN v < 0 THEN '-' ELSE '' END
               || '0.' || digits || 'e' || exponent;
    ELSIF typ = 'timestamp with time zone' THEN
        RETURN ' ' || to_char(t::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '000 Z';
    ELSIF typ = 'bytea' THEN
        RETURN ' !binary |-' || E'\n' || indent || '  ' || replace(encode(t::bytea, 'base64'), E'\n', '');
    ELSIF typ IN ('json', 'jsonb') THEN
        RETURN ' ' || j::text;
    ELSIF jsonb_typeof(j) = 'array' THEN
        IF jsonb_array_length(j) = 0 THEN
            RETURN ' []';
        END IF;
        RETURN (SELECT string_agg(E'\n' || indent || '-' || pt_yaml_value(e, 'text', indent), '' ORDER BY n)
                FROM jsonb_array_elements(j) WITH ORDINALITY AS a(e, n));
    ELSIF jsonb_typeof(j) = 'string' THEN
        RETURN ' ' || to_json(t)::text;
    ELSE
        RETURN ' ' || t;
    END IF;
END $$;

-- A record as Psych writes a Hash of its attributes.
CREATE FUNCTION pt_yaml_object(rel oid, r jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT '---' || string_agg(E'\n' || a.attname || ':'
               || pt_yaml_value(r -> a.attname::text, format_type(a.atttypid, a.atttypmod), ''),
               '' ORDER BY a.attnum) || E'\n'
    FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- Each changed attribute as a pair [old, new].
CREATE FUNCTION pt_yaml_changes(rel oid, old jsonb, new jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT '---' || coalesce(string_agg(E'\n' || a.attname || ':' || E'\n-'
               || pt_yaml_value(old -> a.attname::text, format_type(a.atttypid, a.atttypmod), '  ')
               || E'\n-'
               || pt_yaml_value(new -> a.attname::text, format_type(a.atttypid, a.atttypmod), '  '),
               '' ORDER BY a.attnum), '') || E'\n'
    FROM pg_attribute a
    WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
      AND (old -> a.attname::text) IS DISTINCT FROM (new -> a.attname::text)
      AND NOT (coalesce(old -> a.attname::text, 'null') = 'null'
               AND coalesce(new -> a.attname::text, 'null') = 'null')
$$;

CREATE FUNCTION paper_trail_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    model text := (SELECT string_agg(initcap(w), '') FROM regexp_split_to_table(rtrim(TG_TABLE_NAME, 's'), '_') w);
    old_row jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
    new_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
    first_of_tx text := current_setting('paper_trail.first', true);
    version_id bigint := nextval('versions_id_seq');
    tx bigint;
BEGIN
    -- PaperTrail's transaction_id: the id of the transaction's first version.
    IF first_of_tx IS NULL OR first_of_tx = '' OR split_part(first_of_tx, ':', 1)::bigint <> txid_current() THEN
        PERFORM set_config('paper_trail.first', txid_current() || ':' || version_id, true);
        tx := version_id;
    ELSE
        tx := split_part(first_of_tx, ':', 2)::bigint;
    END IF;
    INSERT INTO versions (id, item_type, item_id, event, whodunnit, object, object_changes,
                          transaction_id, created_at)
    VALUES (version_id, model, (coalesce(new_row, old_row) ->> 'id')::bigint,
            CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'destroy' END,
            nullif(current_setting('paper_trail.whodunnit', true), ''),
            CASE WHEN old_row IS NULL THEN NULL ELSE pt_yaml_object(TG_RELID, old_row) END,
            pt_yaml_changes(TG_RELID, coalesce(old_row, '{}'), coalesce(new_row, '{}')),
            tx, now() AT TIME ZONE 'UTC');
    RETURN NULL;
END $$;
