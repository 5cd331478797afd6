-- sqlembed migration 030: embedding_state keyed by a hash of (source table, key text).
-- The first design's primary key (nvarchar(300) + nvarchar(450), 1,500 bytes) broke the 900-byte
-- clustered key limit (a warning at deploy, Msg 1946 on long keys) and truncated character keys
-- to 450 characters, so distinct keys could collide. The key text is now stored whole
-- (nvarchar(4000): any key SQL Server can index) and the primary key is SHA-256 of
-- source_table + NCHAR(0) + row_key, a persisted computed column, so every writer (embed_rows and
-- the bulk jobs) addresses a row the same way. `variant` records what else a vector was computed
-- with (dimensions, vector base type, prompt), so changing any of them makes the row pending.
-- Runs once, in one transaction with its journal row; never edit after release.
CREATE TABLE sqlembed.embedding_state_v2 (
    source_table nvarchar(600)  NOT NULL,   -- QUOTENAME(schema) + N'.' + QUOTENAME(table) [+ N'>' + chunk table]
    row_key      nvarchar(4000) NOT NULL,   -- CAST(key AS nvarchar(4000)), computed by SQL Server
    key_hash     AS CAST(HASHBYTES('SHA2_256', source_table + NCHAR(0) + row_key) AS binary(32)) PERSISTED NOT NULL,
    content_hash binary(32)     NOT NULL,   -- HASHBYTES('SHA2_256', CAST(text AS nvarchar(max)))
    model_id     nvarchar(200)  NOT NULL,   -- the service's model id, precision included
    variant      nvarchar(200)  NOT NULL CONSTRAINT DF_sqlembed_embedding_state_variant DEFAULT N'',
    embedded_at  datetime2(3)   NOT NULL CONSTRAINT DF_sqlembed_embedding_state_at2 DEFAULT SYSUTCDATETIME(),
    CONSTRAINT PK_sqlembed_embedding_state_v2 PRIMARY KEY CLUSTERED (key_hash)
);
GO
INSERT sqlembed.embedding_state_v2 (source_table, row_key, content_hash, model_id, embedded_at)
SELECT source_table, row_key, content_hash, model_id, embedded_at FROM sqlembed.embedding_state;
GO
DROP TABLE sqlembed.embedding_state;
GO
EXEC sys.sp_rename N'sqlembed.embedding_state_v2', N'embedding_state', N'OBJECT';
EXEC sys.sp_rename N'sqlembed.PK_sqlembed_embedding_state_v2', N'PK_sqlembed_embedding_state', N'OBJECT';
GO
-- Deletes and re-syncs look rows up by table: one seek instead of a scan of every table's state.
CREATE INDEX IX_sqlembed_embedding_state_source ON sqlembed.embedding_state (source_table) INCLUDE (row_key);
GO
