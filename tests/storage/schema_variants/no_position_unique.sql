-- links without UNIQUE (alert_id, position): the primary key alone
ALTER TABLE alert_indicators DROP CONSTRAINT alert_indicators_alert_id_position_key;
