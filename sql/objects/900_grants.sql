-- sqlembed objects 900 (last): who holds what (sql/README.md, "Permission model").
--
-- sqlembed_user (the application's role): EXECUTE on the public procedures, SELECT on the view of
-- its own jobs, EXECUTE on the external model. Nothing else: no EXECUTE ANY EXTERNAL ENDPOINT and
-- no REFERENCES on the credential (either would let a member send requests from the database
-- server to any HTTPS address, with or without the API key: CIS SQL Server 2025 3.15), no right on
-- sqlembed's tables (they hold every embedded table's keys and every caller's jobs), no EXECUTE on
-- sqlembed.invoke. Members also need rights on their own tables: embed_rows and search read and
-- update them through dynamic SQL, which runs with the caller's rights (no ownership chaining
-- there), and submit_job checks the caller's rights before any job starts.
--
-- sqlembed_invoker (a user without login, impersonated only by sqlembed.invoke): exactly
-- EXECUTE ANY EXTERNAL ENDPOINT and REFERENCES on the deployment's credential.
--
-- Rights earlier versions gave the role are revoked here (REVOKE of a right not held is a no-op),
-- so a redeploy brings an existing database to this model.
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
GRANT SELECT ON OBJECT::sqlembed.my_jobs TO sqlembed_user;
REVOKE SELECT ON OBJECT::sqlembed.embedding_state FROM sqlembed_user;
REVOKE SELECT ON OBJECT::sqlembed.jobs FROM sqlembed_user;
REVOKE EXECUTE ANY EXTERNAL ENDPOINT FROM sqlembed_user;
GRANT EXECUTE ANY EXTERNAL ENDPOINT TO sqlembed_invoker;
GO
DECLARE @model sysname = N'$(SQLEMBED_EXTERNAL_MODEL)', @cred nvarchar(4000) = N'$(SQLEMBED_CREDENTIAL)',
        @sql nvarchar(max), @name nvarchar(4000), @grant nvarchar(max), @revoke nvarchar(max);
IF EXISTS (SELECT 1 FROM sys.external_models WHERE name = @model)
BEGIN
    SET @sql = REPLACE(N'GRANT EXECUTE ON EXTERNAL MODEL::{model} TO sqlembed_user;', N'{model}', QUOTENAME(@model));
    EXEC sys.sp_executesql @sql;
END;
-- Every credential (deploy runs as the owner, who may read sys.database_scoped_credentials): the
-- role holds REFERENCES on none, the invoker on the deployment's credential only. Names are
-- bracketed by hand: QUOTENAME returns NULL past 128 characters and a credential name is a URL.
SET @grant = N'GRANT REFERENCES ON DATABASE SCOPED CREDENTIAL::{credential} TO sqlembed_invoker;';
SET @revoke = N'REVOKE REFERENCES ON DATABASE SCOPED CREDENTIAL::{credential} FROM {principal};';
DECLARE credentials CURSOR LOCAL FAST_FORWARD FOR SELECT name FROM sys.database_scoped_credentials;
OPEN credentials;
FETCH NEXT FROM credentials INTO @name;
WHILE @@FETCH_STATUS = 0
BEGIN
    SET @sql = REPLACE(REPLACE(@revoke, N'{credential}', N'[' + REPLACE(@name, N']', N']]') + N']'),
                       N'{principal}', N'sqlembed_user');
    EXEC sys.sp_executesql @sql;
    SET @sql = CASE WHEN @name = @cred THEN REPLACE(@grant, N'{credential}', N'[' + REPLACE(@name, N']', N']]') + N']')
                    ELSE REPLACE(REPLACE(@revoke, N'{credential}', N'[' + REPLACE(@name, N']', N']]') + N']'),
                                 N'{principal}', N'sqlembed_invoker') END;
    EXEC sys.sp_executesql @sql;
    FETCH NEXT FROM credentials INTO @name;
END;
CLOSE credentials;
DEALLOCATE credentials;
GO
