-- without the three filtered list indexes (source, severity, status)
DROP INDEX alerts_source_idx, alerts_severity_idx, alerts_status_idx;
