-- sqlembed objects 900 (last): the role sqlembed_user, with exactly what the procedures need.
-- Members also need permissions on their own tables (embed_rows and search read and update them
-- through dynamic SQL, which runs with the caller's rights).
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
    SET @sql = N'GRANT EXECUTE ON EXTERNAL MODEL::' + QUOTENAME(@model) + N' TO sqlembed_user;';
    EXEC sys.sp_executesql @sql;
END;
IF EXISTS (SELECT 1 FROM sys.database_scoped_credentials WHERE name = @cred)
BEGIN
    SET @sql = N'GRANT REFERENCES ON DATABASE SCOPED CREDENTIAL::[' + REPLACE(@cred, N']', N']]') + N'] TO sqlembed_user;';
    EXEC sys.sp_executesql @sql;
END;
GO
