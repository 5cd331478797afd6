-- sqlembed migration 020: what each row's vector was computed from (text hash + model id), so
-- embed_rows re-embeds only rows whose text or model changed. Runs once; never edit after release.
CREATE TABLE sqlembed.embedding_state (
    source_table nvarchar(300) NOT NULL,   -- QUOTENAME(schema).QUOTENAME(table)
    row_key      nvarchar(450) NOT NULL,   -- the key as text
    content_hash binary(32)    NOT NULL,   -- HASHBYTES('SHA2_256', CAST(text AS nvarchar(max)))
    model_id     nvarchar(200) NOT NULL,   -- the service's model id, precision included
    embedded_at  datetime2(3)  NOT NULL CONSTRAINT DF_sqlembed_embedding_state_at DEFAULT SYSUTCDATETIME(),
    CONSTRAINT PK_sqlembed_embedding_state PRIMARY KEY (source_table, row_key)
);
GO
