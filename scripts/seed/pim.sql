-- A small product-information (PIM) schema with deterministic data, for the demo and the tests.
-- Idempotent: drops and recreates its own objects. About 5,000 rows; jsonb, numeric, timestamps, indexes.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
BEGIN;
DROP TABLE IF EXISTS product_attributes, products, attributes, categories CASCADE;
DROP VIEW IF EXISTS active_products;
DROP FUNCTION IF EXISTS product_count(integer);

CREATE TABLE categories (
    id          serial PRIMARY KEY,
    parent_id   integer REFERENCES categories (id),
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT '2024-12-01 00:00:00+00'
);

CREATE TABLE attributes (
    id          serial PRIMARY KEY,
    code        text NOT NULL UNIQUE,
    label       text NOT NULL,
    data_type   text NOT NULL CHECK (data_type IN ('text', 'number', 'boolean', 'json'))
);

CREATE TABLE products (
    id          bigserial PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    category_id integer NOT NULL REFERENCES categories (id),
    price       numeric(12, 2) NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    specs       jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL
);
CREATE INDEX products_category_idx ON products (category_id);
CREATE INDEX products_specs_idx ON products USING gin (specs);

CREATE TABLE product_attributes (
    product_id   bigint  NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    attribute_id integer NOT NULL REFERENCES attributes (id),
    value        jsonb   NOT NULL,
    PRIMARY KEY (product_id, attribute_id)
);

INSERT INTO categories (name) SELECT 'Category ' || g FROM generate_series(1, 20) g;
UPDATE categories SET parent_id = 1 + (id % 5) WHERE id > 5;

INSERT INTO attributes (code, label, data_type)
SELECT 'attr_' || g, 'Attribute ' || g, (ARRAY['text', 'number', 'boolean', 'json'])[1 + g % 4]
FROM generate_series(1, 12) g;

INSERT INTO products (sku, name, category_id, price, active, specs, updated_at)
SELECT format('SKU-%s', lpad(g::text, 6, '0')),
       'Product ' || g || ' ' || md5(g::text),
       1 + g % 20,
       round((g * 7.31) % 1000 + 0.99, 2),
       g % 11 <> 0,
       jsonb_build_object('weight_g', g % 900, 'color', (ARRAY['red', 'green', 'blue', 'black'])[1 + g % 4],
                          'tags', jsonb_build_array('t' || g % 7, 't' || g % 13)),
       timestamptz '2024-12-01 00:00:00+00' + (g || ' minutes')::interval
FROM generate_series(1, 1500) g;

INSERT INTO product_attributes (product_id, attribute_id, value)
SELECT p.id, a.id, to_jsonb(p.id * a.id % 97)
FROM products p JOIN attributes a ON (p.id + a.id) % 4 = 0;

CREATE VIEW active_products AS SELECT id, sku, name, price FROM products WHERE active;

CREATE FUNCTION product_count(category integer) RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT count(*) FROM products WHERE category_id = category $$;
COMMIT;
ANALYZE;
