SELECT e.__rid, CASE WHEN f.__event_ts >= e.__ts - to_microseconds(604800000000::BIGINT) THEN f."spend" END AS "spend", CASE WHEN f.__event_ts >= e.__ts - to_microseconds(604800000000::BIGINT) THEN f."odd""name" END AS "user_region__odd""name"
FROM __entities AS e
ASOF LEFT JOIN (
  SELECT * FROM (
    SELECT "user_id", "region", __event_ts, __created_ts, 1704070800000000::BIGINT AS __ingested_at, __seq, "spend", "odd""name" FROM read_parquet(['/repo/data/offline/some_view/v1/parts/part-1.parquet']) WHERE __shadowed_until IS NULL
    UNION ALL SELECT "user_id", "region", __event_ts, __created_ts, 1704074400000000::BIGINT AS __ingested_at, __seq, "spend", "odd""name" FROM read_parquet(['/repo/data/offline/some_view/v1/parts/part-2.parquet']) WHERE __shadowed_until IS NULL
  )
  QUALIFY row_number() OVER (PARTITION BY "user_id", "region", __event_ts ORDER BY __created_ts DESC NULLS LAST, __ingested_at DESC, __seq DESC) = 1
) AS f
ON e."user_id" = f."user_id" AND e."region" = f."region" AND e.__ts >= f.__event_ts
