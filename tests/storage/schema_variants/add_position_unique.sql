-- links with UNIQUE (alert_id, position) again (dropped by 003_lean.sql)
ALTER TABLE alert_indicators ADD UNIQUE (alert_id, position);
