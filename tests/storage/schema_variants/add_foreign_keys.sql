-- the foreign keys of links and jobs that 003_lean.sql dropped
ALTER TABLE alert_indicators ADD FOREIGN KEY (alert_id) REFERENCES alerts (id) ON DELETE CASCADE;
ALTER TABLE alert_indicators ADD FOREIGN KEY (indicator_id) REFERENCES indicators (id);
ALTER TABLE enrichment_jobs ADD FOREIGN KEY (alert_id) REFERENCES alerts (id) ON DELETE CASCADE;
