-- sqlembed objects 900 (last): the role sqlembed_user, with exactly what the procedures need.
-- Members also need permissions on their own tables: embed_rows and search read and update them
-- through dynamic SQL, which runs with the caller's rights (no ownership chaining there), and
-- submit_job checks SELECT and UPDATE on the table in the caller's name before any job starts.
-- sqlembed_user needs no CONTROL and never sees sys.database_scoped_credentials: whether calls
-- carry the credential was decided at deploy time (objects/020_config.sql).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
IF DATABASE_PRINCIPAL_ID(N'sqlembed_user') IS NULL
    CREATE ROLE sqlembed_user AUTHORIZATION dbo;
GO
GRANT EXECUTE ON OBJECT::sqlembed.embed_text TO sqlembed_user;
GRANT EXECUTE ON OBJECT::sqlembed.embed_rows TO sqlembed_user;
GRANT EXECUTE ON OBJECT::sqlembed.submit_job TO sqlembed_user;
GRANT EXECUTE ON OBJECT::sqlembed.job_status TO sqlembed_user;
GRANT EXECUTE ON OBJECT::sqlembed.cancel_job TO sqlembed_user;
GRANT EXECUTE ON OBJECT::sqlembed.search TO sqlembed_user;
GRANT EXECUTE ON OBJECT::sqlembed.search_chunks TO sqlembed_user;
GRANT EXECUTE ON OBJECT::sqlembed.create_vector_index TO sqlembed_user;
GRANT EXECUTE ON OBJECT::sqlembed.self_test TO sqlembed_user;
-- embed_rows reads the state table from dynamic SQL (no ownership chaining there); its writes are static.
GRANT SELECT ON OBJECT::sqlembed.embedding_state TO sqlembed_user;
GRANT SELECT ON OBJECT::sqlembed.jobs TO sqlembed_user;
-- sp_invoke_external_rest_endpoint (contract A3).
GRANT EXECUTE ANY EXTERNAL ENDPOINT TO sqlembed_user;
GO
DECLARE @model sysname = N'$(SQLEMBED_EXTERNAL_MODEL)', @cred nvarchar(4000) = N'$(SQLEMBED_CREDENTIAL)', @sql nvarchar(max);
IF EXISTS (SELECT 1 FROM sys.external_models WHERE name = @model)
BEGIN
    SET @sql = REPLACE(N'GRANT EXECUTE ON EXTERNAL MODEL::{model} TO sqlembed_user;', N'{model}', QUOTENAME(@model));
    EXEC sys.sp_executesql @sql;
END;
-- Deploy runs as the owner, who may read sys.database_scoped_credentials.
IF @cred <> N'' AND EXISTS (SELECT 1 FROM sys.database_scoped_credentials WHERE name = @cred)
BEGIN
    SET @sql = REPLACE(N'GRANT REFERENCES ON DATABASE SCOPED CREDENTIAL::{credential} TO sqlembed_user;',
                       N'{credential}', N'[' + REPLACE(@cred, N']', N']]') + N']');
    EXEC sys.sp_executesql @sql;
END;
GO
