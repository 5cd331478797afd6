-- sqlembed migration 040: where change-driven syncs got to. One row per (source table, vector
-- target): the Change Tracking version the last successful sync reached and the embedding variant
-- it ran with (a different model, size or chunking needs a full comparison instead). Keyed by a
-- hash for the same reason as embedding_state (index key size limits). Runs once; never edit.
CREATE TABLE sqlembed.sync_state (
    source_table nvarchar(600) NOT NULL,
    target       nvarchar(600) NOT NULL,
    sync_key     AS CAST(HASHBYTES('SHA2_256', source_table + NCHAR(0) + target) AS binary(32)) PERSISTED NOT NULL,
    variant      nvarchar(200) NOT NULL,
    last_version bigint        NOT NULL,
    updated_at   datetime2(3)  NOT NULL CONSTRAINT DF_sqlembed_sync_state_at DEFAULT SYSUTCDATETIME(),
    CONSTRAINT PK_sqlembed_sync_state PRIMARY KEY CLUSTERED (sync_key)
);
GO
