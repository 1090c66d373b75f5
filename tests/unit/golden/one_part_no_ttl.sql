SELECT e.__rid, f."rate" AS "rate", f."trips" AS "trips"
FROM __entities AS e
ASOF LEFT JOIN (
  SELECT "driver_id", __event_ts, "rate", "trips" FROM read_parquet(['/repo/data/offline/some_view/v1/parts/part-1.parquet']) WHERE __shadowed_until IS NULL
) AS f
ON e."driver_id" = f."driver_id" AND e.__ts >= f.__event_ts
