-- sqlembed objects 060: pull mode. Embeds the rows of a table whose vector is NULL or whose text,
-- model, dimensions or vector type changed since they were embedded, in requests of at most
-- @batch_bytes (UTF-8 JSON, as they travel), through the service's keyed batch route.
--
--   EXEC sqlembed.embed_rows @table = N'dbo.docs', @key_column = N'id', @text_column = N'body',
--                            @vector_column = N'embedding';
--
-- Request body (POST /v1/sqlserver/embed, docs/api.md), as the FOR JSON below builds it; ids are
-- the row's position in this run, so keys never travel and never need converting back:
-- BEGIN REQUEST EXAMPLE
-- {"model":"all-minilm","dimensions":384,"input_type":"passage","inputs":[{"id":1,"text":"first row"},{"id":2,"text":"second row"}]}
-- END REQUEST EXAMPLE
-- Response read with OPENJSON: $.result.model_id, $.result.embeddings[*].id/.embedding, $.result.errors[*].id/.error
--
-- Transaction contract (sql/README.md): each batch is applied in its own transaction, committed
-- before the next request, so embed_rows cannot run inside a caller's transaction: it refuses
-- (return 409, nothing touched) when @@TRANCOUNT > 0 at entry. IMPLICIT_TRANSACTIONS is switched
-- off inside (restored on return), so clients with autocommit off can call it as their first
-- statement. XACT_ABORT ON and TRY/CATCH: any failure rolls back the batch in flight, releases the
-- run lease, returns non-zero with @error; batches committed before it stay.
--
-- Permissions: EXECUTE (role sqlembed_user) plus SELECT on the table and UPDATE on the vector
-- column: the table is read and written by dynamic SQL, which runs with the caller's rights.
-- @where is a predicate on the table (alias t), run with those same rights; it may not contain
-- ';' or comments. The state table (sqlembed.embedding_state) and the run leases are read and
-- written only by static SQL in this procedure (ownership chaining): callers hold no right on
-- them, and no @where can reach them.
--
-- State key: (source table, destination, key), the destination being the vector column
-- ([schema].[table].[column]), so two vector columns of one table, or a column and a bulk job's
-- target table, each keep their own state (migration 050). Temporary tables are named
-- #sqlembed_* so they never collide with a caller's own #batch or #result.
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
    SET XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SELECT @rows_embedded = 0, @rows_failed = 0, @rows_skipped = 0, @error = NULL;
    -- 95 MB: the documented 100 MB request limit (contract A7) with a margin for the envelope.
    DECLARE @hard_cap bigint = 95000000;
    DECLARE @rc int = 0, @problem nvarchar(4000) = NULL, @code int = 400, @locked bit = 0;
    DECLARE @started datetime2(3) = SYSUTCDATETIME(), @batches int = 0, @entry_trancount int = @@TRANCOUNT,
            @vanished int = 0;
    DECLARE @object_id int = OBJECT_ID(@table, N'U');
    DECLARE @dims int, @vtype varchar(10), @model nvarchar(200), @timeout_s int;
    SELECT @dims = dimensions, @vtype = vector_type, @model = model, @timeout_s = timeout_s FROM sqlembed.config();

    -- Identifiers: resolved against the catalog, then quoted; nothing user-typed is spliced raw.
    DECLARE @src nvarchar(600) = QUOTENAME(OBJECT_SCHEMA_NAME(@object_id)) + N'.' + QUOTENAME(OBJECT_NAME(@object_id));
    DECLARE @kq nvarchar(260), @tq nvarchar(260), @vq nvarchar(260), @ktype sysname, @klen smallint,
            @kcoll sysname, @ttype sysname, @vtype_name sysname, @vdims int, @vbase nvarchar(20);
    SELECT @kq = QUOTENAME(name), @ktype = TYPE_NAME(system_type_id), @klen = max_length, @kcoll = collation_name
    FROM sys.columns WHERE object_id = @object_id AND name = @key_column;
    SELECT @tq = QUOTENAME(name), @ttype = TYPE_NAME(system_type_id) FROM sys.columns
    WHERE object_id = @object_id AND name = @text_column;
    SELECT @vq = QUOTENAME(name), @vtype_name = TYPE_NAME(user_type_id), @vdims = vector_dimensions,
           @vbase = vector_base_type_desc
    FROM sys.columns WHERE object_id = @object_id AND name = @vector_column;
    -- The key as declared, so the join back to the table compares like with like (and seeks).
    DECLARE @key_decl nvarchar(200) = CASE
        WHEN @ktype IN (N'nvarchar', N'nchar') THEN CONCAT(@ktype, N'(', @klen / 2, N')')
        WHEN @ktype IN (N'varchar', N'char') THEN CONCAT(@ktype, N'(', @klen, N')')
        ELSE @ktype END;
    -- Keys travel as nvarchar in the database's collation; a varchar key is converted back through
    -- ITS column's code page by collating before the cast (a cast first would go through the
    -- database's code page: a Cyrillic key in a Latin1 database would become '?' and never match).
    DECLARE @key_collate nvarchar(200) = CASE WHEN @kcoll IS NULL THEN N'' ELSE N' COLLATE ' + @kcoll END;
    -- Where the vectors go: part of the state key, so two destinations of one table never share state.
    DECLARE @destination nvarchar(800) = @src + N'.' + @vq;

    IF @entry_trancount > 0
        SELECT @problem = CONCAT(N'embed_rows commits each batch as it goes and cannot run inside a transaction ',
                                 N'(@@TRANCOUNT = ', @entry_trancount, N'): commit or roll back first, or call it ',
                                 N'with autocommit'), @code = 409;
    ELSE IF @object_id IS NULL
        SELECT @problem = CONCAT(N'table not found (or no permission on it): ', @table), @code = 404;
    ELSE IF @kq IS NULL OR @tq IS NULL OR @vq IS NULL
        SELECT @problem = CONCAT(N'column not found in ', @src, N': ',
            CASE WHEN @kq IS NULL THEN @key_column WHEN @tq IS NULL THEN @text_column ELSE @vector_column END), @code = 404;
    ELSE IF @ktype NOT IN (N'int', N'bigint', N'smallint', N'tinyint', N'uniqueidentifier', N'nvarchar', N'varchar', N'nchar', N'char')
            OR @klen = -1
        SET @problem = CONCAT(N'key column type ', @ktype, N' is not supported (integer, uniqueidentifier or character keys)');
    ELSE IF @ttype NOT IN (N'nvarchar', N'varchar', N'nchar', N'char', N'ntext', N'text')
        SET @problem = CONCAT(N'text column type ', @ttype, N' is not a character type');
    ELSE IF @vtype_name <> N'vector'
        SET @problem = CONCAT(N'column ', @vector_column, N' is ', @vtype_name, N', not VECTOR(', @dims, N')');
    ELSE IF @vdims <> @dims OR @vbase <> @vtype
        SET @problem = CONCAT(N'column ', @vector_column, N' is VECTOR(', @vdims, N', ', @vbase, N') but the deployment ',
                              N'embeds VECTOR(', @dims, N', ', @vtype, N') (SQLEMBED_DIMENSIONS, SQLEMBED_VECTOR_TYPE)');
    ELSE IF @batch_bytes NOT BETWEEN 1000 AND @hard_cap
        SET @problem = CONCAT(N'@batch_bytes must be between 1000 and ', @hard_cap, N' (the 100 MB request limit, contract A7)');
    ELSE IF @where LIKE N'%;%' OR @where LIKE N'%--%' OR @where LIKE N'%/*%'
        SET @problem = N'@where may not contain '';'' or comments';
    ELSE IF EXISTS (SELECT 1 FROM sys.vector_indexes AS vi WHERE vi.object_id = @object_id
                    AND ISNULL(TRY_CAST(JSON_VALUE(vi.build_parameters, '$.Version') AS int), 0) < 3)
        SELECT @problem = CONCAT(N'', @src, N' has a vector index, which makes it read-only on SQL Server 2025: ',
                                 N'DROP INDEX <name> ON ', @src, N', embed, then create the index again'), @code = 409;
    IF @problem IS NOT NULL
        GOTO report;

    -- One embed_rows per destination at a time; a second caller fails fast instead of doubling the
    -- work. A lease row (migration 060), not a session applock: the applock outlived a client
    -- timeout on a pooled connection. The lease outlasts the longest wait between renewals (one
    -- request to the service, @timeout seconds) twice over; a run whose lease was taken over after
    -- it expired stops at its next renewal. The same session takes its own stale lease back at once.
    DECLARE @token uniqueidentifier = NEWID(), @lease_s int = 2 * @timeout_s + 60, @holder nvarchar(400);
    DECLARE @lease_key binary(32) = CAST(HASHBYTES('SHA2_256', CAST(@destination AS nvarchar(max))) AS binary(32));
    BEGIN TRY
        BEGIN TRANSACTION;
        MERGE sqlembed.run_leases WITH (HOLDLOCK) AS l
        USING (SELECT @lease_key AS lease_key) AS x ON l.lease_key = x.lease_key
        WHEN MATCHED AND (l.expires_at < SYSUTCDATETIME() OR l.session_id = @@SPID) THEN
            UPDATE SET session_id = @@SPID, token = @token, taken_by = SUSER_SNAME(),
                       expires_at = DATEADD(second, @lease_s, SYSUTCDATETIME())
        WHEN NOT MATCHED THEN INSERT (destination, session_id, token, expires_at)
            VALUES (@destination, @@SPID, @token, DATEADD(second, @lease_s, SYSUTCDATETIME()));
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > @entry_trancount
            ROLLBACK TRANSACTION;
        SELECT @problem = CONCAT(N'could not take the run lease: ', ERROR_MESSAGE()), @code = 500;
        GOTO report;
    END CATCH;
    SELECT @holder = CONCAT(N'session ', session_id, N' (', taken_by, N') until ',
                            CONVERT(nvarchar(30), expires_at, 126), N' UTC')
    FROM sqlembed.run_leases WHERE lease_key = @lease_key AND token <> @token;
    IF @holder IS NOT NULL
    BEGIN
        SELECT @problem = CONCAT(N'embed_rows is already running on ', @destination, N': ', @holder), @code = 409;
        GOTO report;
    END;
    SET @locked = 1;

    BEGIN TRY
        -- The service's model id (precision included) and what else the vectors depend on decide
        -- which stored vectors are stale; the bulk jobs write the same two values.
        DECLARE @ready nvarchar(max), @model_id nvarchar(200), @variant nvarchar(200) = CONCAT(N'd', @dims, N';', @vtype);
        EXEC @rc = sqlembed.invoke @path = N'/readyz', @method = N'GET', @response = @ready OUTPUT, @error = @error OUTPUT;
        IF @rc <> 0
            GOTO cleanup;
        -- vector_id: the model id plus its quantization recipe (a rebuilt int8 model is another model).
        SET @model_id = COALESCE(JSON_VALUE(@ready, '$.result.vector_id'), JSON_VALUE(@ready, '$.result.model'));
        SET @variant = CONCAT(@variant, CASE WHEN JSON_VALUE(@ready, '$.result.prompts.passage') IS NOT NULL
                                             THEN N';passage' ELSE N'' END);

        CREATE TABLE #sqlembed_pending (seq int IDENTITY(1, 1) PRIMARY KEY, k nvarchar(4000) COLLATE DATABASE_DEFAULT NOT NULL,
                               bytes bigint NOT NULL);
        CREATE TABLE #sqlembed_batch (seq int NOT NULL PRIMARY KEY, k nvarchar(4000) COLLATE DATABASE_DEFAULT NOT NULL,
                             txt nvarchar(max) COLLATE DATABASE_DEFAULT NULL, h binary(32) NULL, bytes bigint NOT NULL,
                             run bigint NOT NULL);
        CREATE TABLE #sqlembed_result (seq int NOT NULL PRIMARY KEY, embedding nvarchar(max) COLLATE DATABASE_DEFAULT NULL);
        CREATE TABLE #sqlembed_applied (seq int NOT NULL PRIMARY KEY);
        CREATE TABLE #sqlembed_dupes (k nvarchar(4000) COLLATE DATABASE_DEFAULT NOT NULL);

        CREATE TABLE #sqlembed_scan (k nvarchar(4000) COLLATE DATABASE_DEFAULT NOT NULL, h binary(32) NOT NULL,
                                     bytes bigint NOT NULL, missing bit NOT NULL);

        DECLARE @filter nvarchar(max) = ISNULL(N' AND (' + @where + N')', N'');
        -- One scan of the table, with the caller's rights (dynamic SQL): each non-empty row's key,
        -- text hash and size as it will travel (the text escaped for JSON, control characters as
        -- 6-byte \u00XX, measured in UTF-8, plus its envelope). The state table is compared below,
        -- in static SQL: callers hold no permission on it, and a @where cannot reach it.
        DECLARE @scan nvarchar(max) = N'
            INSERT #sqlembed_scan (k, h, bytes, missing)
            SELECT CAST(t.{k} AS nvarchar(4000)) COLLATE DATABASE_DEFAULT,
                   HASHBYTES(''SHA2_256'', CAST(t.{t} AS nvarchar(max))),
                   DATALENGTH(CAST(STRING_ESCAPE(CAST(t.{t} AS nvarchar(max)), ''json'')
                                   COLLATE Latin1_General_100_CI_AS_SC_UTF8 AS varchar(max))) + 32,
                   CASE WHEN t.{v} IS NULL THEN 1 ELSE 0 END
            FROM {src} AS t
            WHERE t.{t} IS NOT NULL AND DATALENGTH(t.{t}) > 0{filter};
            SELECT @skipped = COUNT(*) FROM {src} AS t WHERE (t.{t} IS NULL OR DATALENGTH(t.{t}) = 0){filter};';
        SET @scan = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(@scan,
            N'{src}', @src), N'{k}', @kq), N'{t}', @tq), N'{v}', @vq), N'{filter}', @filter);
        EXEC sys.sp_executesql @scan, N'@skipped int OUTPUT', @skipped = @rows_skipped OUTPUT;
        -- The state key: source table, destination and key (migration 050), as the bulk jobs build it.
        INSERT #sqlembed_pending (k, bytes)
        SELECT c.k, c.bytes
        FROM #sqlembed_scan AS c
        LEFT JOIN sqlembed.embedding_state AS s
            ON s.key_hash = HASHBYTES('SHA2_256', CAST(@src AS nvarchar(max)) + NCHAR(0) + @destination + NCHAR(0) + c.k)
        WHERE c.missing = 1 OR s.key_hash IS NULL OR s.content_hash <> c.h OR s.model_id <> @model_id
              OR s.variant <> @variant
        ORDER BY c.k;
        TRUNCATE TABLE #sqlembed_scan;

        -- Keys that are equal under the key column's collation but not unique (a key column
        -- without a unique index) would receive each other's vectors: they are reported, not embedded.
        IF NOT EXISTS (SELECT 1 FROM sys.indexes AS i JOIN sys.index_columns AS ic
                           ON ic.object_id = i.object_id AND ic.index_id = i.index_id
                       WHERE i.object_id = @object_id AND i.is_unique = 1 AND ic.is_included_column = 0
                       GROUP BY i.index_id
                       HAVING COUNT(*) = 1 AND MAX(CASE WHEN COL_NAME(ic.object_id, ic.column_id) = @key_column THEN 1 ELSE 0 END) = 1)
        BEGIN
            DECLARE @dupscan nvarchar(max) = N'
                INSERT #sqlembed_dupes (k)
                SELECT CAST(t.{k} AS nvarchar(4000)) COLLATE DATABASE_DEFAULT
                FROM {src} AS t
                WHERE t.{k} IN (SELECT d.{k} FROM {src} AS d GROUP BY d.{k} HAVING COUNT(*) > 1);';
            SET @dupscan = REPLACE(REPLACE(@dupscan, N'{src}', @src), N'{k}', @kq);
            EXEC sys.sp_executesql @dupscan;
            IF EXISTS (SELECT 1 FROM #sqlembed_dupes)
            BEGIN
                DECLARE @examples nvarchar(max) = (SELECT TOP (10) k FROM #sqlembed_dupes ORDER BY k FOR JSON PATH);
                -- Exact text, not the database collation: 'A' and 'a' under a BIN2 key are two keys.
                DELETE p FROM #sqlembed_pending AS p
                WHERE EXISTS (SELECT 1 FROM #sqlembed_dupes AS d WHERE d.k COLLATE Latin1_General_BIN2 = p.k COLLATE Latin1_General_BIN2);
                DECLARE @dupcount int = @@ROWCOUNT;
                SET @rows_failed += @dupcount;
                DECLARE @dupmessage nvarchar(4000) = CONCAT(@dupcount, N' row(s) of ', @src, N' share a key value with ',
                                                            N'another row (', @key_column, N' is not unique); not embedded');
                IF @dupcount > 0
                    EXEC sqlembed.log_error @source = N'sqlembed.embed_rows', @code = 409, @message = @dupmessage,
                                            @detail = @examples;
            END;
        END;

        DECLARE @fetch nvarchar(max) = N'
            UPDATE b SET b.txt = CAST(t.{t} AS nvarchar(max)),
                         b.h = HASHBYTES(''SHA2_256'', CAST(t.{t} AS nvarchar(max)))
            FROM #sqlembed_batch AS b JOIN {src} AS t ON t.{k} = CAST(b.k{kc} AS {kt}){kc};';
        SET @fetch = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(@fetch,
            N'{src}', @src), N'{k}', @kq), N'{t}', @tq), N'{kt}', @key_decl), N'{kc}', @key_collate);
        DECLARE @apply nvarchar(max) = N'
            UPDATE t SET t.{v} = TRY_CAST(r.embedding AS VECTOR({dims}{vt}))
            OUTPUT b.seq INTO #sqlembed_applied (seq)
            FROM {src} AS t
            JOIN #sqlembed_batch AS b ON t.{k} = CAST(b.k{kc} AS {kt}){kc}
            JOIN #sqlembed_result AS r ON r.seq = b.seq
            WHERE TRY_CAST(r.embedding AS VECTOR({dims}{vt})) IS NOT NULL;';
        SET @apply = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(@apply,
            N'{src}', @src), N'{k}', @kq), N'{v}', @vq), N'{kt}', @key_decl), N'{kc}', @key_collate),
            N'{dims}', CAST(@dims AS nvarchar(10))), N'{vt}', CASE WHEN @vtype = 'float16' THEN N', float16' ELSE N'' END);

        DECLARE @last int = 0, @first int, @payload nvarchar(max), @response nvarchar(max), @n int,
                @budget bigint = @batch_bytes, @one_bytes bigint, @failed int;
        WHILE 1 = 1
        BEGIN
            TRUNCATE TABLE #sqlembed_batch;
            TRUNCATE TABLE #sqlembed_result;
            TRUNCATE TABLE #sqlembed_applied;
            INSERT #sqlembed_batch (seq, k, bytes, run)
            SELECT TOP (2048) seq, k, bytes, SUM(bytes) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING)
            FROM #sqlembed_pending WHERE seq > @last ORDER BY seq;
            IF @@ROWCOUNT = 0
                BREAK;
            -- Keep rows within the byte budget; a single larger row still goes alone.
            DELETE b FROM #sqlembed_batch AS b WHERE b.run > @budget AND EXISTS (SELECT 1 FROM #sqlembed_batch AS x WHERE x.run < b.run);
            SELECT @first = MIN(seq), @last = MAX(seq), @n = COUNT(*), @one_bytes = MAX(bytes) FROM #sqlembed_batch;
            IF @n = 1 AND @one_bytes > @hard_cap
            BEGIN
                -- Over the request limit on its own: this row fails alone and the run goes on.
                SET @rows_failed += 1;
                DECLARE @toolarge nvarchar(4000) = CONCAT(N'a row of ', @src, N' is ', @one_bytes,
                                                          N' bytes as JSON, over the 100 MB request limit; not embedded');
                DECLARE @toolarge_key nvarchar(max) = (SELECT k AS [key] FROM #sqlembed_batch FOR JSON PATH, WITHOUT_ARRAY_WRAPPER);
                EXEC sqlembed.log_error @source = N'sqlembed.embed_rows', @code = 413, @message = @toolarge,
                                        @detail = @toolarge_key;
                CONTINUE;
            END;
            EXEC sys.sp_executesql @fetch;
            -- Rows deleted or emptied since the scan (or whose key no longer matches back) are
            -- counted as skipped and reported once at the end, never silently dropped.
            -- Out of the pending list too: a batch sent again in halves (413) must not count them twice.
            DELETE p FROM #sqlembed_pending AS p
            WHERE EXISTS (SELECT 1 FROM #sqlembed_batch AS b WHERE b.seq = p.seq AND (b.txt IS NULL OR DATALENGTH(b.txt) = 0));
            DELETE FROM #sqlembed_batch WHERE txt IS NULL OR DATALENGTH(txt) = 0;
            SET @vanished += @@ROWCOUNT;

            SET @payload = (SELECT @model AS model, @dims AS dimensions, 'passage' AS input_type,
                                   JSON_QUERY((SELECT seq AS id, txt AS text FROM #sqlembed_batch ORDER BY seq FOR JSON PATH)) AS inputs
                            FOR JSON PATH, WITHOUT_ARRAY_WRAPPER);
            IF @payload IS NULL OR JSON_QUERY(@payload, '$.inputs') IS NULL
                CONTINUE;
            -- Renew the lease before the longest wait; a lease another run took over ends this one.
            UPDATE sqlembed.run_leases SET expires_at = DATEADD(second, @lease_s, SYSUTCDATETIME())
            WHERE lease_key = @lease_key AND token = @token;
            IF @@ROWCOUNT = 0
            BEGIN
                SELECT @locked = 0, @rc = 409, @error = JSON_OBJECT('source': 'sqlembed.embed_rows', 'code': 409,
                    'message': CONCAT(N'the run lease on ', @destination, N' expired and another run took it; ',
                                      N'this run stops (batches committed so far stay)'));
                GOTO cleanup;
            END;
            EXEC @rc = sqlembed.invoke @path = N'/v1/sqlserver/embed', @payload = @payload,
                                       @response = @response OUTPUT, @error = @error OUTPUT;
            SET @batches += 1;
            IF @rc = 413 AND @n > 1
            BEGIN
                -- The service's body limit is below this budget: the same rows again, in halves.
                SELECT @budget = @budget / 2, @last = @first - 1, @rc = 0, @error = NULL;
                CONTINUE;
            END;
            IF @rc = 413
            BEGIN
                SELECT @rows_failed += 1, @rc = 0;
                DECLARE @rejected nvarchar(4000) = CONCAT(N'the service refused a single row of ', @src, N' as too large');
                DECLARE @rejected_key nvarchar(max) = (SELECT k AS [key] FROM #sqlembed_batch FOR JSON PATH, WITHOUT_ARRAY_WRAPPER);
                EXEC sqlembed.log_error @source = N'sqlembed.embed_rows', @code = 413, @message = @rejected,
                                        @detail = @rejected_key;
                SET @error = NULL;
                CONTINUE;
            END;
            IF @rc <> 0
                GOTO cleanup;  -- nothing of this batch was applied; earlier batches stay

            INSERT #sqlembed_result (seq, embedding)
            SELECT id, embedding FROM OPENJSON(@response, '$.result.embeddings')
                WITH (id int '$.id', embedding nvarchar(max) '$.embedding' AS JSON)
            WHERE id IS NOT NULL;
            BEGIN TRANSACTION;
                EXEC sys.sp_executesql @apply;
                MERGE sqlembed.embedding_state WITH (HOLDLOCK) AS s
                USING (SELECT b.k, b.h FROM #sqlembed_applied AS a JOIN #sqlembed_batch AS b ON b.seq = a.seq) AS x
                   ON s.key_hash = HASHBYTES('SHA2_256', CAST(@src AS nvarchar(max)) + NCHAR(0) + @destination
                                                         + NCHAR(0) + x.k)
                WHEN MATCHED THEN UPDATE SET content_hash = x.h, model_id = @model_id, variant = @variant,
                                             embedded_at = SYSUTCDATETIME()
                WHEN NOT MATCHED THEN INSERT (source_table, destination, row_key, content_hash, model_id, variant)
                                      VALUES (@src, @destination, x.k, x.h, @model_id, @variant);
            COMMIT TRANSACTION;
            SET @rows_embedded += (SELECT COUNT(*) FROM #sqlembed_applied);
            SET @failed = (SELECT COUNT(*) FROM #sqlembed_batch AS b WHERE NOT EXISTS (SELECT 1 FROM #sqlembed_applied AS a WHERE a.seq = b.seq));
            IF @failed > 0
            BEGIN
                SET @rows_failed += @failed;
                DECLARE @notembedded nvarchar(4000) = CONCAT(@failed, N' row(s) of ', @src, N' not embedded');
                DECLARE @row_errors nvarchar(max) = JSON_QUERY(@response, '$.result.errors');
                EXEC sqlembed.log_error @source = N'sqlembed.embed_rows', @code = 422, @message = @notembedded,
                                        @detail = @row_errors;
            END;
        END;
    END TRY
    BEGIN CATCH
        -- Every transaction open here is this procedure's own (it refuses to start inside one).
        IF @@TRANCOUNT > @entry_trancount
            ROLLBACK TRANSACTION;
        SELECT @rc = CASE WHEN ERROR_NUMBER() = 0 THEN 500 ELSE ERROR_NUMBER() END,
               @error = JSON_OBJECT('source': 'sqlembed.embed_rows', 'code': ERROR_NUMBER(), 'message': ERROR_MESSAGE());
    END CATCH;

cleanup:
    IF @@TRANCOUNT > @entry_trancount
        ROLLBACK TRANSACTION;
    IF @locked = 1
    BEGIN
        BEGIN TRY
            DELETE sqlembed.run_leases WHERE lease_key = @lease_key AND token = @token;
        END TRY
        BEGIN CATCH
            SET @locked = 0;  -- the lease expires on its own; the run's own outcome is what to report
        END CATCH;
    END;
report:
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.embed_rows', 'code': @code, 'message': @problem);
        SET @rc = @code;
    END;
    IF @rc <> 0 AND @entry_trancount = 0
    BEGIN
        DECLARE @final nvarchar(4000) = LEFT(JSON_VALUE(@error, '$.message'), 4000);
        EXEC sqlembed.log_error @source = N'sqlembed.embed_rows', @code = @rc, @message = @final;
    END;
    IF @vanished > 0
    BEGIN
        SET @rows_skipped += @vanished;
        DECLARE @gone nvarchar(4000) = CONCAT(@vanished, N' row(s) of ', @src, N' were deleted or emptied after the ',
                                              N'scan, or their key no longer matched; skipped');
        EXEC sqlembed.log_error @source = N'sqlembed.embed_rows', @code = 410, @message = @gone;
    END;
    SELECT @rows_embedded AS rows_embedded, @rows_failed AS rows_failed, @rows_skipped AS rows_skipped,
           @batches AS requests, DATEDIFF(millisecond, @started, SYSUTCDATETIME()) AS elapsed_ms, @error AS error;
    RETURN @rc;
END;
GO
