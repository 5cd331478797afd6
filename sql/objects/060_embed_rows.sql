-- sqlembed objects 060: pull mode. Embeds the rows of a table whose vector is NULL or whose text or
-- model changed since they were embedded, in requests of at most @batch_bytes, through the service's
-- keyed batch route. Results are applied set-based; a failed call or a failed row leaves existing
-- vectors as they are (a NULL is never written over a vector).
--
--   EXEC sqlembed.embed_rows @table = N'dbo.docs', @key_column = N'id', @text_column = N'body',
--                            @vector_column = N'embedding';
--
-- Request body (POST /v1/sqlserver/embed, docs/api.md), as the FOR JSON below builds it:
-- BEGIN REQUEST EXAMPLE
-- {"model":"all-minilm","dimensions":384,"inputs":[{"id":"1","text":"first row"},{"id":"2","text":"second row"}]}
-- END REQUEST EXAMPLE
-- Response read with OPENJSON: $.result.model_id, $.result.embeddings[*].id/.embedding, $.result.errors[*].id/.error
--
-- @where is a trusted predicate on the table (alias t), run with the caller's permissions; it may
-- not contain ';' or comments. Keys are sent as text and compared with the key column's own type.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER PROCEDURE sqlembed.embed_rows
    @table         nvarchar(300),
    @key_column    sysname,
    @text_column   sysname,
    @vector_column sysname,
    @batch_bytes   int = 1000000,
    @where         nvarchar(max) = NULL,
    @rows_embedded int = NULL OUTPUT,
    @rows_failed   int = NULL OUTPUT,
    @rows_skipped  int = NULL OUTPUT,
    @error         nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SELECT @rows_embedded = 0, @rows_failed = 0, @rows_skipped = 0, @error = NULL;
    DECLARE @rc int = 0, @problem nvarchar(4000) = NULL, @code int = 400, @locked bit = 0;
    DECLARE @started datetime2(3) = SYSUTCDATETIME(), @batches int = 0;
    DECLARE @object_id int = OBJECT_ID(@table, N'U');
    DECLARE @dims int, @model nvarchar(200);
    SELECT @dims = dimensions, @model = model FROM sqlembed.config();

    -- Identifiers: resolved against the catalog, then quoted; nothing user-typed is spliced raw.
    DECLARE @src nvarchar(300) = QUOTENAME(OBJECT_SCHEMA_NAME(@object_id)) + N'.' + QUOTENAME(OBJECT_NAME(@object_id));
    DECLARE @kq nvarchar(260), @tq nvarchar(260), @vq nvarchar(260), @ktype sysname, @ttype sysname, @vtype sysname,
            @vlen int;
    SELECT @kq = QUOTENAME(name), @ktype = TYPE_NAME(system_type_id) FROM sys.columns
        WHERE object_id = @object_id AND name = @key_column;
    SELECT @tq = QUOTENAME(name), @ttype = TYPE_NAME(system_type_id) FROM sys.columns
        WHERE object_id = @object_id AND name = @text_column;
    SELECT @vq = QUOTENAME(name), @vtype = TYPE_NAME(user_type_id), @vlen = max_length FROM sys.columns
        WHERE object_id = @object_id AND name = @vector_column;

    IF @object_id IS NULL
        SELECT @problem = CONCAT(N'table not found: ', @table), @code = 404;
    ELSE IF @kq IS NULL OR @tq IS NULL OR @vq IS NULL
        SELECT @problem = CONCAT(N'column not found in ', @src, N': ',
            CASE WHEN @kq IS NULL THEN @key_column WHEN @tq IS NULL THEN @text_column ELSE @vector_column END), @code = 404;
    ELSE IF @ktype NOT IN (N'int', N'bigint', N'smallint', N'tinyint', N'uniqueidentifier', N'nvarchar', N'varchar', N'nchar', N'char')
        SET @problem = CONCAT(N'key column type ', @ktype, N' is not supported (integer, uniqueidentifier or character keys)');
    ELSE IF @ttype NOT IN (N'nvarchar', N'varchar', N'nchar', N'char', N'ntext', N'text')
        SET @problem = CONCAT(N'text column type ', @ttype, N' is not a character type');
    ELSE IF @vtype <> N'vector'
        SET @problem = CONCAT(N'column ', @vector_column, N' is ', @vtype, N', not VECTOR(', @dims, N')');
    -- float32 vectors store 4 bytes per dimension plus an 8-byte header (contract D1).
    ELSE IF (@vlen - 8) / 4 <> @dims
        SET @problem = CONCAT(N'column ', @vector_column, N' is VECTOR(', (@vlen - 8) / 4, N') but the model gives ', @dims,
                              N' dimensions (SQLEMBED_DIMENSIONS)');
    ELSE IF @batch_bytes NOT BETWEEN 1000 AND 100000000
        SET @problem = N'@batch_bytes must be between 1000 and 100000000 (the 100 MB request limit, contract A7)';
    ELSE IF @where LIKE N'%;%' OR @where LIKE N'%--%' OR @where LIKE N'%/*%'
        SET @problem = N'@where may not contain '';'' or comments';
    IF @problem IS NOT NULL
        GOTO done;

    -- One embed_rows per table at a time; a second caller fails fast instead of doubling the work.
    DECLARE @lock int;
    DECLARE @resource nvarchar(255) = LEFT(N'sqlembed.embed_rows ' + @src, 255);
    EXEC @lock = sys.sp_getapplock @Resource = @resource, @LockMode = N'Exclusive', @LockOwner = N'Session', @LockTimeout = 0;
    IF @lock < 0
    BEGIN
        SELECT @problem = CONCAT(N'embed_rows is already running on ', @src), @code = 409;
        GOTO done;
    END;
    SET @locked = 1;

    -- The service's model id (precision included) decides which stored vectors are stale.
    DECLARE @ready nvarchar(max), @model_id nvarchar(200);
    EXEC @rc = sqlembed.invoke @path = N'/readyz', @method = N'GET', @response = @ready OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        GOTO done;
    SET @model_id = JSON_VALUE(@ready, '$.result.model');

    CREATE TABLE #pending (seq int IDENTITY(1, 1) PRIMARY KEY, k nvarchar(450) COLLATE DATABASE_DEFAULT NOT NULL,
                           bytes bigint NOT NULL);
    CREATE TABLE #batch (seq int NOT NULL, k nvarchar(450) COLLATE DATABASE_DEFAULT NOT NULL PRIMARY KEY,
                         txt nvarchar(max) NULL, h binary(32) NULL, run bigint NOT NULL);
    CREATE TABLE #result (k nvarchar(450) COLLATE DATABASE_DEFAULT NOT NULL PRIMARY KEY, embedding nvarchar(max) NULL);
    CREATE TABLE #applied (k nvarchar(450) COLLATE DATABASE_DEFAULT NOT NULL PRIMARY KEY);

    DECLARE @filter nvarchar(max) = ISNULL(N' AND (' + @where + N')', N'');
    DECLARE @sql nvarchar(max);
    -- One scan finds the pending rows; texts are fetched per batch by key.
    SET @sql = N'
        INSERT #pending (k, bytes)
        SELECT c.k, c.bytes
        FROM (SELECT CAST(t.' + @kq + N' AS nvarchar(450)) AS k,
                     HASHBYTES(''SHA2_256'', CAST(t.' + @tq + N' AS nvarchar(max))) AS h,
                     DATALENGTH(t.' + @tq + N') + 40 AS bytes,
                     CASE WHEN t.' + @vq + N' IS NULL THEN 1 ELSE 0 END AS missing
              FROM ' + @src + N' AS t
              WHERE t.' + @tq + N' IS NOT NULL AND DATALENGTH(t.' + @tq + N') > 0' + @filter + N') AS c
        LEFT JOIN sqlembed.embedding_state AS s ON s.source_table = @src AND s.row_key = c.k
        WHERE c.missing = 1 OR s.row_key IS NULL OR s.content_hash <> c.h OR s.model_id <> @model_id
        ORDER BY c.k;
        SELECT @skipped = COUNT(*) FROM ' + @src + N' AS t
        WHERE (t.' + @tq + N' IS NULL OR DATALENGTH(t.' + @tq + N') = 0)' + @filter + N';';
    EXEC sys.sp_executesql @sql, N'@src nvarchar(300), @model_id nvarchar(200), @skipped int OUTPUT',
         @src = @src, @model_id = @model_id, @skipped = @rows_skipped OUTPUT;

    DECLARE @fetch nvarchar(max) = N'
        UPDATE b SET b.txt = CAST(t.' + @tq + N' AS nvarchar(max)),
                     b.h = HASHBYTES(''SHA2_256'', CAST(t.' + @tq + N' AS nvarchar(max)))
        FROM #batch AS b JOIN ' + @src + N' AS t ON t.' + @kq + N' = b.k;';
    DECLARE @apply nvarchar(max) = N'
        UPDATE t SET t.' + @vq + N' = CAST(r.embedding AS VECTOR(' + CAST(@dims AS nvarchar(10)) + N'))
        OUTPUT r.k INTO #applied (k)
        FROM ' + @src + N' AS t JOIN #result AS r ON t.' + @kq + N' = r.k
        WHERE TRY_CAST(r.embedding AS VECTOR(' + CAST(@dims AS nvarchar(10)) + N')) IS NOT NULL;';

    DECLARE @last int = 0, @payload nvarchar(max), @response nvarchar(max), @n int;
    WHILE 1 = 1
    BEGIN
        TRUNCATE TABLE #batch;
        TRUNCATE TABLE #result;
        TRUNCATE TABLE #applied;
        INSERT #batch (seq, k, run)
        SELECT TOP (2048) seq, k, SUM(bytes) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING)
        FROM #pending WHERE seq > @last ORDER BY seq;
        IF @@ROWCOUNT = 0
            BREAK;
        -- Keep rows within the byte budget; a single larger row still goes alone.
        DELETE b FROM #batch AS b WHERE b.run > @batch_bytes AND EXISTS (SELECT 1 FROM #batch AS x WHERE x.run < b.run);
        SELECT @last = MAX(seq), @n = COUNT(*) FROM #batch;
        EXEC sys.sp_executesql @fetch;
        DELETE FROM #batch WHERE txt IS NULL OR DATALENGTH(txt) = 0;  -- deleted or emptied since the scan

        SET @payload = (SELECT @model AS model, @dims AS dimensions,
                               JSON_QUERY((SELECT k AS id, txt AS text FROM #batch ORDER BY seq FOR JSON PATH)) AS inputs
                        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER);
        IF @payload IS NULL OR JSON_QUERY(@payload, '$.inputs') IS NULL
            CONTINUE;
        EXEC @rc = sqlembed.invoke @path = N'/v1/sqlserver/embed', @payload = @payload,
                                   @response = @response OUTPUT, @error = @error OUTPUT;
        SET @batches += 1;
        IF @rc <> 0
            GOTO done;  -- nothing of this batch was applied; earlier batches stay

        INSERT #result (k, embedding)
        SELECT id, embedding FROM OPENJSON(@response, '$.result.embeddings')
            WITH (id nvarchar(450) '$.id', embedding nvarchar(max) '$.embedding' AS JSON)
        WHERE id IS NOT NULL;
        BEGIN TRANSACTION;
            EXEC sys.sp_executesql @apply;
            MERGE sqlembed.embedding_state AS s
            USING (SELECT a.k, b.h FROM #applied AS a JOIN #batch AS b ON b.k = a.k) AS x
               ON s.source_table = @src AND s.row_key = x.k
            WHEN MATCHED THEN UPDATE SET content_hash = x.h, model_id = @model_id, embedded_at = SYSUTCDATETIME()
            WHEN NOT MATCHED THEN INSERT (source_table, row_key, content_hash, model_id) VALUES (@src, x.k, x.h, @model_id);
        COMMIT TRANSACTION;
        SET @rows_embedded += (SELECT COUNT(*) FROM #applied);
        DECLARE @failed int = (SELECT COUNT(*) FROM #batch AS b WHERE NOT EXISTS (SELECT 1 FROM #applied AS a WHERE a.k = b.k));
        IF @failed > 0
        BEGIN
            SET @rows_failed += @failed;
            INSERT sqlembed.error_log (source, code, message, detail)
            VALUES (N'sqlembed.embed_rows', 422, CONCAT(@failed, N' row(s) of ', @src, N' not embedded'),
                    JSON_QUERY(@response, '$.result.errors'));
        END;
    END;

done:
    IF @@TRANCOUNT > 0 AND XACT_STATE() <> 0
        ROLLBACK TRANSACTION;
    IF @locked = 1
        EXEC sys.sp_releaseapplock @Resource = @resource, @LockOwner = N'Session';
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.embed_rows', 'code': @code, 'message': @problem);
        SET @rc = @code;
    END;
    SELECT @rows_embedded AS rows_embedded, @rows_failed AS rows_failed, @rows_skipped AS rows_skipped,
           @batches AS requests, DATEDIFF(millisecond, @started, SYSUTCDATETIME()) AS elapsed_ms, @error AS error;
    RETURN @rc;
END;
GO
