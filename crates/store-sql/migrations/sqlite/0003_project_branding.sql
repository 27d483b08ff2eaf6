-- What a project's consent screen shows besides the client's name: the product name people know,
-- a homepage and a support address. Set by the project's owner; the verified flag stays admin-only.

CREATE TABLE project_branding (
    project_id    TEXT   NOT NULL PRIMARY KEY REFERENCES projects (id),
    product_name  TEXT   NOT NULL,
    homepage      TEXT   NOT NULL,
    support_email TEXT   NOT NULL,
    updated_at    BIGINT NOT NULL
);
