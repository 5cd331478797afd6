-- sqlembed migration 050: the state key gains the destination (where the vector is written).
-- Until now a state row was keyed by (source table, key) only, so a table embedded into two places
-- (two VECTOR columns, or a column and a target table, or embed_rows and a target_table job)
-- shared one state row per key: each run re-embedded the other's rows, or a changed text's second
-- destination was skipped and kept a stale vector. The destination is
-- QUOTENAME(schema) + N'.' + QUOTENAME(table) + N'.' + QUOTENAME(vector column) of the table the
-- vector is written to (the source table, a target table or a chunk table), built the same way by
-- sqlembed.embed_rows and the bulk jobs (TableInfo.destination).
-- The key is hashed over nvarchar(max): a concatenation of sized nvarchar values is cut at 4,000
-- characters, which would let two long keys share a hash input.
-- Existing rows move where their destination is certain, and are dropped (their rows are embedded
-- once more) where it is not:
--   * chunk-job rows ('[s].[t]>[cs].[cn]') move to the chunk table's one VECTOR column;
--   * other rows move to the source table's VECTOR column when the table has exactly one and no
--     job recorded in sqlembed.jobs wrote it elsewhere (a target or chunk table: conservative);
--   * the rest cannot be attributed (the table had two destinations, so the row may describe
--     either) and are dropped: trusting them could keep a stale vector forever.
-- Runs once, in one transaction with its journal row; never edit after release.
CREATE TABLE sqlembed.embedding_state_v3 (
    source_table nvarchar(600)  NOT NULL,   -- QUOTENAME(schema) + N'.' + QUOTENAME(table)
    destination  nvarchar(800)  NOT NULL,   -- QUOTENAME(schema) + N'.' + QUOTENAME(table) + N'.' + QUOTENAME(vector column)
    row_key      nvarchar(4000) NOT NULL,   -- CAST(key AS nvarchar(4000)), computed by SQL Server
    key_hash     AS CAST(HASHBYTES('SHA2_256', CAST(source_table AS nvarchar(max)) + NCHAR(0) + destination
                                               + NCHAR(0) + row_key) AS binary(32)) PERSISTED NOT NULL,
    content_hash binary(32)     NOT NULL,   -- HASHBYTES('SHA2_256', CAST(text AS nvarchar(max)))
    model_id     nvarchar(200)  NOT NULL,   -- the service's vector id (model, precision, recipe)
    variant      nvarchar(200)  NOT NULL CONSTRAINT DF_sqlembed_embedding_state_variant3 DEFAULT N'',
    embedded_at  datetime2(3)   NOT NULL CONSTRAINT DF_sqlembed_embedding_state_at3 DEFAULT SYSUTCDATETIME(),
    CONSTRAINT PK_sqlembed_embedding_state_v3 PRIMARY KEY CLUSTERED (key_hash)
);
GO
WITH old AS (
    SELECT s.row_key, s.content_hash, s.model_id, s.variant, s.embedded_at,
           CASE WHEN CHARINDEX(N'>', s.source_table) > 0
                THEN LEFT(s.source_table, CHARINDEX(N'>', s.source_table) - 1) ELSE s.source_table END AS source_table,
           CASE WHEN CHARINDEX(N'>', s.source_table) > 0
                THEN SUBSTRING(s.source_table, CHARINDEX(N'>', s.source_table) + 1, 600) ELSE s.source_table END AS written_to,
           CASE WHEN CHARINDEX(N'>', s.source_table) > 0 THEN 1 ELSE 0 END AS chunked
    FROM sqlembed.embedding_state AS s
), one_vector AS (
    -- Tables whose destination is certain: exactly one VECTOR column. The catalog's names carry the
    -- catalog collation, which differs from the database's in a contained database (and on Azure
    -- SQL): relabelled, or the concatenation below is a collation conflict at compile time.
    SELECT c.object_id, MAX(QUOTENAME(c.name)) COLLATE DATABASE_DEFAULT AS vector_column
    FROM sys.columns AS c
    WHERE TYPE_NAME(c.user_type_id) = N'vector'
    GROUP BY c.object_id
    HAVING COUNT(*) = 1
)
INSERT sqlembed.embedding_state_v3 (source_table, destination, row_key, content_hash, model_id, variant, embedded_at)
SELECT o.source_table, o.written_to + N'.' + v.vector_column, o.row_key, o.content_hash, o.model_id, o.variant,
       o.embedded_at
FROM old AS o
JOIN one_vector AS v ON v.object_id = OBJECT_ID(o.written_to)
WHERE o.chunked = 1
   OR NOT EXISTS (SELECT 1 FROM sqlembed.jobs AS j
                  WHERE j.target_table IS NOT NULL AND OBJECT_ID(j.source_table) = OBJECT_ID(o.source_table));
DECLARE @moved bigint = @@ROWCOUNT;
DECLARE @total bigint = (SELECT COUNT_BIG(*) FROM sqlembed.embedding_state);
DECLARE @note nvarchar(400) = CONCAT(N'sqlembed migration 050: ', @moved, N' of ', @total,
    N' state rows moved to their destination; ', @total - @moved,
    N' could not be attributed to one destination and were dropped (those rows are embedded once more).');
PRINT @note;
GO
DROP TABLE sqlembed.embedding_state;
GO
EXEC sys.sp_rename N'sqlembed.embedding_state_v3', N'embedding_state', N'OBJECT';
EXEC sys.sp_rename N'sqlembed.PK_sqlembed_embedding_state_v3', N'PK_sqlembed_embedding_state', N'OBJECT';
GO
-- Deletes and re-syncs look rows up by table and destination: one seek on the table, the
-- destination and key read from the index (INCLUDE has no key-size limit; the key columns do).
CREATE INDEX IX_sqlembed_embedding_state_source ON sqlembed.embedding_state (source_table) INCLUDE (destination, row_key);
GO
