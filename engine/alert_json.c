/* engine/alert_json.c - not yet written. */
typedef int eng_alert_json_placeholder_t;
