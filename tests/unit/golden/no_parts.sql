SELECT e.__rid, CASE WHEN f.__event_ts >= e.__ts - to_microseconds(86400000000::BIGINT) THEN f."spend" END AS "spend"
FROM __entities AS e
ASOF LEFT JOIN (
  SELECT NULL AS "user_id", NULL AS "region", NULL::TIMESTAMPTZ AS __event_ts, NULL AS "spend" WHERE false
) AS f
ON e."user_id" = f."user_id" AND e."region" = f."region" AND e.__ts >= f.__event_ts
