SELECT e.__rid, CASE WHEN f.__event_ts >= e.__ts - to_microseconds(86400000000::BIGINT) THEN f."rate" END AS "rate"
FROM __entities AS e
ASOF LEFT JOIN (
  SELECT "driver_id", __event_ts, "rate" FROM read_parquet(['/repo/data/offline/some_view/v1/parts/part-1.parquet', '/repo/data/offline/some_view/v1/parts/part-2.parquet']) WHERE __shadowed_until IS NULL
) AS f
ON e."driver_id" = f."driver_id" AND e.__ts >= f.__event_ts
