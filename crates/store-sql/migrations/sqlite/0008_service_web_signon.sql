-- Web single sign-on: the URL prefixes a service's `continue` may start with, and where its
-- sign-outs are sent (a URL the browser loads, a URL tessera POSTs to). Empty means none.

ALTER TABLE services ADD COLUMN web_prefixes TEXT NOT NULL DEFAULT '';
ALTER TABLE services ADD COLUMN logout_url TEXT NOT NULL DEFAULT '';
ALTER TABLE services ADD COLUMN backchannel_logout_url TEXT NOT NULL DEFAULT '';
