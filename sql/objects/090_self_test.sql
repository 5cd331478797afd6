-- sqlembed objects 090: what a DBA runs first. Each step reports ok / FAILED and how to fix it.
--   EXEC sqlembed.self_test;                                      -- the setup
--   EXEC sqlembed.self_test @table = N'dbo.docs', @vector_column = N'embedding';   -- and a table
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER PROCEDURE sqlembed.self_test
    @table         nvarchar(300) = NULL,
    @vector_column sysname = NULL
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @steps TABLE (step int, name nvarchar(100), ok bit, detail nvarchar(4000), fix nvarchar(4000));
    DECLARE @cred nvarchar(4000), @model sysname, @dims int, @base nvarchar(4000), @response nvarchar(max),
            @error nvarchar(max), @rc int, @v VECTOR($(SQLEMBED_DIMENSIONS));
    SELECT @cred = credential_name, @model = external_model, @dims = dimensions, @base = base_url FROM sqlembed.config();

    INSERT @steps SELECT 1, N'external rest endpoint enabled', CASE WHEN CAST(value_in_use AS int) = 1 THEN 1 ELSE 0 END,
        CONCAT(N'value_in_use = ', CAST(value_in_use AS int)),
        N'A sysadmin runs: EXECUTE sp_configure ''external rest endpoint enabled'', 1; RECONFIGURE WITH OVERRIDE;'
    FROM sys.configurations WHERE name = N'external rest endpoint enabled';

    INSERT @steps SELECT 2, N'credential', CASE WHEN @cred = N'' OR EXISTS (
            SELECT 1 FROM sys.database_scoped_credentials WHERE name = @cred) THEN 1 ELSE 0 END,
        CASE WHEN @cred = N'' THEN N'no credential configured (service without API keys)' ELSE @cred END,
        N'Deploy again with the API key: SQLEMBED_API_KEY=... sqlembed db deploy (a database master key must exist).';

    INSERT @steps SELECT 3, N'external model', CASE WHEN EXISTS (SELECT 1 FROM sys.external_models WHERE name = @model)
            THEN 1 ELSE 0 END,
        (SELECT CONCAT(name, N' -> ', location, N' (', api_format, N')') FROM sys.external_models WHERE name = @model),
        N'Deploy again: sqlembed db deploy (objects/030_external_model.sql).';

    EXEC @rc = sqlembed.invoke @path = N'/readyz', @method = N'GET', @response = @response OUTPUT, @error = @error OUTPUT;
    INSERT @steps SELECT 4, N'service answers over HTTPS', CASE WHEN @rc = 0 THEN 1 ELSE 0 END,
        CASE WHEN @rc = 0 THEN CONCAT(@base, N' ready, model ', JSON_VALUE(@response, '$.result.model')) ELSE @error END,
        N'Check the URL, that the service runs with --tls-cert/--tls-key, that SQL Server trusts its CA '
        + N'(sqlembed tls selfsigned prints how) and that the certificate names the host in the URL.';

    SET @error = NULL;
    EXEC @rc = sqlembed.embed_text @text = N'sqlembed self test', @embedding = @v OUTPUT, @error = @error OUTPUT;
    INSERT @steps SELECT 5, N'round trip (sqlembed.embed_text)', CASE WHEN @rc = 0 AND @v IS NOT NULL THEN 1 ELSE 0 END,
        CASE WHEN @rc = 0 THEN CONCAT(N'VECTOR(', VECTORPROPERTY(@v, 'Dimensions'), N') returned') ELSE @error END,
        CONCAT(N'If the service answered but no VECTOR(', @dims, N') came back, SQLEMBED_DIMENSIONS does not match the model.');

    BEGIN TRY
        SET @v = AI_GENERATE_EMBEDDINGS(N'sqlembed self test' USE MODEL $(SQLEMBED_EXTERNAL_MODEL));
        INSERT @steps SELECT 6, N'AI_GENERATE_EMBEDDINGS', CASE WHEN @v IS NULL THEN 0 ELSE 1 END,
            CASE WHEN @v IS NULL THEN N'returned NULL' ELSE N'returned a vector' END,
            N'Check the external_rest_endpoint_summary / ai_generate_embeddings_summary extended events; '
            + N'GRANT EXECUTE ON EXTERNAL MODEL to the caller.';
    END TRY
    BEGIN CATCH
        INSERT @steps VALUES (6, N'AI_GENERATE_EMBEDDINGS', 0, ERROR_MESSAGE(),
            N'Check the external model''s LOCATION and CREDENTIAL, and EXECUTE permission on it.');
    END CATCH;

    IF @table IS NOT NULL
    BEGIN
        DECLARE @vlen int = (SELECT max_length FROM sys.columns WHERE object_id = OBJECT_ID(@table, N'U')
                             AND name = @vector_column AND TYPE_NAME(user_type_id) = N'vector');
        INSERT @steps VALUES (7, N'VECTOR column matches the model', CASE WHEN (@vlen - 8) / 4 = @dims THEN 1 ELSE 0 END,
            CASE WHEN @vlen IS NULL THEN CONCAT(@table, N'.', @vector_column, N' is not a VECTOR column')
                 ELSE CONCAT(@table, N'.', @vector_column, N' is VECTOR(', (@vlen - 8) / 4, N'), the model gives ', @dims) END,
            CONCAT(N'Use VECTOR(', @dims, N') columns, or deploy with SQLEMBED_DIMENSIONS matching the column (<= the model''s).'));
    END;

    SELECT step, name, CASE ok WHEN 1 THEN N'ok' ELSE N'FAILED' END AS result, detail,
           CASE ok WHEN 1 THEN NULL ELSE fix END AS fix
    FROM @steps ORDER BY step;
    RETURN CASE WHEN EXISTS (SELECT 1 FROM @steps WHERE ok = 0) THEN 1 ELSE 0 END;
END;
GO
