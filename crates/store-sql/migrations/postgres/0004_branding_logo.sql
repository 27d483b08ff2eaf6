-- The consent screen shows the project's logo (an https URL), like its name and homepage.

ALTER TABLE project_branding ADD COLUMN logo_url TEXT NOT NULL DEFAULT '';
