SELECT e.__rid, f."rate" AS "rate"
FROM __entities AS e
ASOF LEFT JOIN (
  SELECT * FROM (
    SELECT "driver_id", __event_ts, __created_ts, __ingested_at, __seq, "rate" FROM read_parquet(['/repo/data/offline/some_view/v1/parts/part-1.parquet']) WHERE (__shadowed_until IS NULL OR __shadowed_until > 1704085200000000) AND __ingested_at <= 1704085200000000
    UNION ALL SELECT "driver_id", __event_ts, __created_ts, 1704085200000000::BIGINT AS __ingested_at, __seq, "rate" FROM read_parquet(['/repo/data/offline/some_view/v1/parts/part-2.parquet']) WHERE (__shadowed_until IS NULL OR __shadowed_until > 1704085200000000)
  )
  QUALIFY row_number() OVER (PARTITION BY "driver_id", __event_ts ORDER BY __created_ts DESC NULLS LAST, __ingested_at DESC, __seq DESC) = 1
) AS f
ON e."driver_id" = f."driver_id" AND e.__ts >= f.__event_ts
