-- sqlembed objects 090: what a DBA runs first. Each step reports ok / FAILED and how to fix it.
--   EXEC sqlembed.self_test;                                      -- the setup
--   EXEC sqlembed.self_test @table = N'dbo.docs', @vector_column = N'embedding';   -- and a table
-- Writes nothing (the error log aside), so it can run as any member of sqlembed_user, inside any
-- transaction: XACT_ABORT OFF, so a failing step is a FAILED row, never a doomed caller transaction.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER PROCEDURE sqlembed.self_test
    @table         nvarchar(300) = NULL,
    @vector_column sysname = NULL
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    DECLARE @steps TABLE (step int, name nvarchar(100), ok bit, detail nvarchar(4000), fix nvarchar(4000));
    DECLARE @cred nvarchar(4000), @use_cred bit, @model sysname, @dims int, @vtype varchar(10), @base nvarchar(4000),
            @rest_retry bit, @response nvarchar(max), @error nvarchar(max), @rc int, @text nvarchar(max),
            @v VECTOR($(SQLEMBED_DIMENSIONS)$(SQLEMBED_VECTOR_TYPE_SUFFIX));
    SELECT @cred = credential_name, @use_cred = use_credential, @model = external_model, @dims = dimensions,
           @vtype = vector_type, @base = base_url, @rest_retry = rest_retry_count
    FROM sqlembed.config();

    -- Azure SQL Database and Fabric have it on (and no sp_configure); the row still reads 1.
    INSERT @steps SELECT 1, N'external rest endpoint enabled', CASE WHEN CAST(value_in_use AS int) = 1 THEN 1 ELSE 0 END,
        CONCAT(N'value_in_use = ', CAST(value_in_use AS int)),
        N'A sysadmin runs: EXECUTE sp_configure ''external rest endpoint enabled'', 1; RECONFIGURE WITH OVERRIDE;'
    FROM sys.configurations WHERE name = N'external rest endpoint enabled';

    -- Decided at deploy time by the owner (sys.database_scoped_credentials is invisible here).
    INSERT @steps VALUES (2, N'credential', 1,
        CASE WHEN @use_cred = 1 THEN CONCAT(N'calls carry the API key of credential ', @cred)
             ELSE N'no credential: calls go out without an API key (the service must run without keys)' END
        + CASE WHEN @rest_retry = 1 THEN N'' ELSE N'; this build has no @retry_count, calls are not retried' END,
        NULL);

    INSERT @steps SELECT 3, N'external model', CASE WHEN EXISTS (SELECT 1 FROM sys.external_models WHERE name = @model)
            THEN 1 ELSE 0 END,
        COALESCE((SELECT CONCAT(name, N' -> ', location, N' (', api_format, N')') FROM sys.external_models WHERE name = @model),
                 CONCAT(@model, N' not found or not visible')),
        N'Deploy again: sqlembed db deploy (objects/030_external_model.sql); GRANT EXECUTE ON EXTERNAL MODEL to the caller.';

    EXEC @rc = sqlembed.invoke @path = N'/readyz', @method = N'GET', @response = @response OUTPUT, @error = @error OUTPUT;
    INSERT @steps SELECT 4, N'service answers over HTTPS', CASE WHEN @rc = 0 THEN 1 ELSE 0 END,
        CASE WHEN @rc = 0 THEN CONCAT(@base, N' ready, model ', JSON_VALUE(@response, '$.result.model')) ELSE @error END,
        N'Check the URL, that the service runs with --tls-cert/--tls-key, that SQL Server trusts its CA '
        + N'(sqlembed tls selfsigned prints how) and that the certificate names the host in the URL.';

    SET @error = NULL;
    EXEC @rc = sqlembed.embed_text @text = N'sqlembed self test', @embedding = @v OUTPUT, @error = @error OUTPUT;
    INSERT @steps SELECT 5, N'round trip (sqlembed.embed_text)', CASE WHEN @rc = 0 AND @v IS NOT NULL THEN 1 ELSE 0 END,
        CASE WHEN @rc = 0 THEN CONCAT(N'VECTOR(', VECTORPROPERTY(@v, 'Dimensions'), N', ', VECTORPROPERTY(@v, 'BaseType'),
                                      N') returned') ELSE @error END,
        CASE WHEN @rc = 401 THEN N'The service refused the API key: deploy again with SQLEMBED_API_KEY set to one of its keys.'
             ELSE CONCAT(N'If the service answered but no VECTOR(', @dims, N') came back, SQLEMBED_DIMENSIONS does not ',
                         N'match the model.') END;

    -- Through text, as sqlembed.query_vector does: a float32 vector does not convert to a float16
    -- VECTOR (Msg 42238), its JSON text converts to either.
    SET @v = NULL;
    BEGIN TRY
        SET @text = CAST(AI_GENERATE_EMBEDDINGS(N'sqlembed self test' USE MODEL $(SQLEMBED_EXTERNAL_MODEL)) AS nvarchar(max));
        SET @v = TRY_CAST(@text AS VECTOR($(SQLEMBED_DIMENSIONS)$(SQLEMBED_VECTOR_TYPE_SUFFIX)));
        INSERT @steps SELECT 6, N'AI_GENERATE_EMBEDDINGS', CASE WHEN @v IS NULL THEN 0 ELSE 1 END,
            CASE WHEN @text IS NULL THEN N'returned NULL'
                 WHEN @v IS NULL THEN CONCAT(N'returned a vector that is not VECTOR(', @dims, N', ', @vtype, N')')
                 ELSE N'returned a vector' END,
            N'Check the external_rest_endpoint_summary / ai_generate_embeddings_summary extended events; '
            + N'sqlembed_user holds EXECUTE on the external model (sql/README.md, permission model).';
    END TRY
    BEGIN CATCH
        INSERT @steps VALUES (6, N'AI_GENERATE_EMBEDDINGS', 0, ERROR_MESSAGE(),
            N'Check the external model''s LOCATION and CREDENTIAL, and EXECUTE permission on it; '
            + N'sqlembed.search and embed_text do not depend on this step (sql/README.md, permission model).');
    END CATCH;

    IF @table IS NOT NULL
    BEGIN
        DECLARE @oid int = OBJECT_ID(@table, N'U'), @vdims int, @vbase nvarchar(20), @readonly bit;
        SELECT @vdims = vector_dimensions, @vbase = vector_base_type_desc FROM sys.columns
        WHERE object_id = @oid AND name = @vector_column AND TYPE_NAME(user_type_id) = N'vector';
        SET @readonly = CASE WHEN EXISTS (SELECT 1 FROM sys.vector_indexes WHERE object_id = @oid
            AND ISNULL(TRY_CAST(JSON_VALUE(build_parameters, '$.Version') AS int), 0) < 3) THEN 1 ELSE 0 END;
        INSERT @steps VALUES (7, N'VECTOR column matches the deployment',
            CASE WHEN @vdims = @dims AND @vbase = @vtype THEN 1 ELSE 0 END,
            CASE WHEN @vdims IS NULL THEN CONCAT(@table, N'.', @vector_column, N' is not a VECTOR column (or not visible)')
                 ELSE CONCAT(@table, N'.', @vector_column, N' is VECTOR(', @vdims, N', ', @vbase, N'), the deployment embeds ',
                             N'VECTOR(', @dims, N', ', @vtype, N')') END,
            CONCAT(N'Use VECTOR(', @dims, N', ', @vtype, N') columns, or deploy with SQLEMBED_DIMENSIONS and ',
                   N'SQLEMBED_VECTOR_TYPE matching the column (dimensions <= the model''s).'));
        INSERT @steps VALUES (8, N'table is writable', CASE WHEN @readonly = 1 THEN 0 ELSE 1 END,
            CASE WHEN @readonly = 1 THEN N'a vector index makes it read-only (SQL Server 2025)' ELSE N'no read-only vector index' END,
            N'DROP INDEX <name> ON the table before embed_rows or a bulk job, then create the index again.');
    END;

    SELECT step, name, CASE ok WHEN 1 THEN N'ok' ELSE N'FAILED' END AS result, detail,
           CASE ok WHEN 1 THEN NULL ELSE fix END AS fix
    FROM @steps ORDER BY step;
    RETURN CASE WHEN EXISTS (SELECT 1 FROM @steps WHERE ok = 0) THEN 1 ELSE 0 END;
END;
GO
