-- sqlembed objects 080: vector search. The query is embedded through sqlembed.invoke (the model's
-- query prompt where it has one), then searched through the vector index when one matches the
-- column and metric, else by an exact VECTOR_DISTANCE scan. The index's version decides the
-- query form, so one script serves SQL Server 2025 and Azure SQL / Fabric:
--   earlier-version index (SQL Server 2025): VECTOR_SEARCH(..., TOP_N = @top)
--   version 3 index (Azure SQL, Fabric):     SELECT TOP (@top) WITH APPROXIMATE ... ORDER BY s.distance
--                                             (TOP_N is refused there, Msg 42274)
-- Dimensions and base type come from sys.columns.vector_dimensions / vector_base_type_desc.
--   EXEC sqlembed.search @query = N'how do I rotate keys?', @table = N'dbo.docs', @key_column = N'id',
--                        @vector_column = N'embedding', @top = 5;
-- These procedures write nothing and run with XACT_ABORT OFF: inside a caller's
-- `SET XACT_ABORT ON; BEGIN TRAN` a service outage is a return code and an @error, never a
-- rolled-back caller transaction. Results come back as result sets, and search_chunks collects
-- its index hits inside its dynamic batch (no INSERT ... EXEC), so a caller may capture any of
-- them with INSERT ... EXEC (Msg 8164 forbids nesting one).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
-- The query's vector, as JSON text: the column may be float16, and a float32 vector does not
-- convert to float16 (Msg 42238); the text form converts to either (contract D1). Embedded with the
-- model's query prompt where it has one, through sqlembed.invoke rather than AI_GENERATE_EMBEDDINGS:
-- search then needs no right on the external model or the credential beyond what sqlembed_user
-- holds, and an outage is invoke's return code (caught with XACT_ABORT OFF), never an error
-- raised into the caller's transaction. Same service, same route, same vector.
CREATE OR ALTER PROCEDURE sqlembed.query_vector
    @query nvarchar(max),
    @qv    nvarchar(max) = NULL OUTPUT,
    @error nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @qv = NULL;
    SET @error = NULL;
    IF @query IS NULL OR DATALENGTH(@query) = 0
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.search', 'code': 400, 'message': N'@query is NULL or empty');
        RETURN 400;
    END;
    DECLARE @payload nvarchar(max), @response nvarchar(max), @rc int;
    SELECT @payload = JSON_OBJECT('model': model, 'input': @query, 'dimensions': dimensions, 'input_type': 'query')
    FROM sqlembed.config();
    EXEC @rc = sqlembed.invoke @path = N'/api/embed', @payload = @payload,
                               @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    SET @qv = JSON_QUERY(@response, '$.result.embeddings[0]');
    IF @qv IS NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.search', 'code': 502,
                                 'message': 'the service returned no embedding; run EXEC sqlembed.self_test');
        RETURN 502;
    END;
    RETURN 0;
END;
GO
-- Whether a vector index serves this column and metric, and its version (which decides the query form).
CREATE OR ALTER PROCEDURE sqlembed.vector_index_version
    @object_id int,
    @column    sysname,
    @metric    varchar(10),
    @version   int = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @version = NULL;
    SELECT TOP (1) @version = ISNULL(TRY_CAST(JSON_VALUE(vi.build_parameters, '$.Version') AS int), 0)
    FROM sys.vector_indexes AS vi
    JOIN sys.index_columns AS ic ON ic.object_id = vi.object_id AND ic.index_id = vi.index_id
    JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
    WHERE vi.object_id = @object_id AND c.name = @column AND LOWER(vi.distance_metric) = @metric;
    RETURN 0;
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.search
    @query         nvarchar(max),
    @table         nvarchar(300),
    @key_column    sysname,
    @vector_column sysname,
    @top           int = 10,
    @metric        varchar(10) = 'cosine',
    @error         nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @error = NULL;
    DECLARE @object_id int = OBJECT_ID(@table, N'U');
    DECLARE @src nvarchar(600) = QUOTENAME(OBJECT_SCHEMA_NAME(@object_id)) + N'.' + QUOTENAME(OBJECT_NAME(@object_id));
    DECLARE @kq nvarchar(260) = (SELECT QUOTENAME(name) FROM sys.columns WHERE object_id = @object_id AND name = @key_column);
    DECLARE @vq nvarchar(260), @dims int, @vbase nvarchar(20), @rc int;
    SELECT @vq = QUOTENAME(name), @dims = vector_dimensions, @vbase = vector_base_type_desc FROM sys.columns
    WHERE object_id = @object_id AND name = @vector_column AND TYPE_NAME(user_type_id) = N'vector';
    DECLARE @problem nvarchar(4000) =
        CASE WHEN @object_id IS NULL THEN CONCAT(N'table not found (or no permission on it): ', @table)
             WHEN @kq IS NULL THEN CONCAT(N'key column not found: ', @key_column)
             WHEN @vq IS NULL THEN CONCAT(N'VECTOR column not found: ', @vector_column)
             WHEN @metric NOT IN ('cosine', 'dot', 'euclidean') THEN N'@metric must be cosine, dot or euclidean'
             WHEN @top NOT BETWEEN 1 AND 2000 THEN N'@top must be between 1 and 2000' END;
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.search', 'code': 400, 'message': @problem);
        RETURN 400;
    END;
    DECLARE @qv nvarchar(max), @version int;
    EXEC @rc = sqlembed.query_vector @query = @query, @qv = @qv OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    EXEC sqlembed.vector_index_version @object_id = @object_id, @column = @vector_column, @metric = @metric,
                                       @version = @version OUTPUT;
    DECLARE @sql nvarchar(max) = CASE
        WHEN @version >= 3 THEN N'
        DECLARE @v VECTOR({dims}{vt}) = CAST(@qv AS VECTOR({dims}{vt}));
        SELECT TOP (@top) WITH APPROXIMATE t.{k} AS id, s.distance
        FROM VECTOR_SEARCH(TABLE = {src} AS t, COLUMN = {v}, SIMILAR_TO = @v, METRIC = ''{metric}'') AS s
        ORDER BY s.distance;'
        WHEN @version IS NOT NULL THEN N'
        DECLARE @v VECTOR({dims}{vt}) = CAST(@qv AS VECTOR({dims}{vt}));
        SELECT t.{k} AS id, s.distance
        FROM VECTOR_SEARCH(TABLE = {src} AS t, COLUMN = {v}, SIMILAR_TO = @v, METRIC = ''{metric}'', TOP_N = @top) AS s
        ORDER BY s.distance;'
        ELSE N'
        DECLARE @v VECTOR({dims}{vt}) = CAST(@qv AS VECTOR({dims}{vt}));
        SELECT TOP (@top) t.{k} AS id, VECTOR_DISTANCE(''{metric}'', t.{v}, @v) AS distance
        FROM {src} AS t
        WHERE t.{v} IS NOT NULL
        ORDER BY distance;' END;
    SET @sql = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(@sql,
        N'{src}', @src), N'{k}', @kq), N'{v}', @vq), N'{metric}', @metric),
        N'{dims}', CAST(@dims AS nvarchar(10))), N'{vt}', CASE WHEN @vbase = N'float16' THEN N', float16' ELSE N'' END);
    BEGIN TRY
        EXEC sys.sp_executesql @sql, N'@qv nvarchar(max), @top int', @qv = @qv, @top = @top;
    END TRY
    BEGIN CATCH
        SET @error = JSON_OBJECT('source': 'sqlembed.search', 'code': ERROR_NUMBER(), 'message': ERROR_MESSAGE());
        RETURN CASE WHEN ERROR_NUMBER() = 0 THEN 500 ELSE ERROR_NUMBER() END;
    END CATCH;
    RETURN 0;
END;
GO
-- Search a chunk table (written by a bulk job with @chunk_table): the best chunk of each parent,
-- best parents first, with the chunk's position in the parent's text (1-based, as SUBSTRING counts).
-- With @parent_table and @text_column the passage itself comes back too.
--   EXEC sqlembed.search_chunks @query = N'rotate keys', @chunk_table = N'dbo.docs_chunks',
--        @key_column = N'id', @vector_column = N'embedding', @top = 5,
--        @parent_table = N'dbo.docs', @text_column = N'body';
-- Through a vector index on the chunk table (on its chunk_id primary key) the nearest @candidates
-- chunks are found first (default 10 per parent asked for), then grouped by parent: a parent whose
-- best chunk is not among them is not returned, as with any approximate search.
CREATE OR ALTER PROCEDURE sqlembed.search_chunks
    @query         nvarchar(max),
    @chunk_table   nvarchar(300),
    @key_column    sysname,
    @vector_column sysname,
    @top           int = 10,
    @metric        varchar(10) = 'cosine',
    @candidates    int = NULL,
    @parent_table  nvarchar(300) = NULL,
    @text_column   sysname = NULL,
    @error         nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @error = NULL;
    DECLARE @object_id int = OBJECT_ID(@chunk_table, N'U'), @parent_id int = OBJECT_ID(@parent_table, N'U');
    DECLARE @src nvarchar(600) = QUOTENAME(OBJECT_SCHEMA_NAME(@object_id)) + N'.' + QUOTENAME(OBJECT_NAME(@object_id));
    DECLARE @parent nvarchar(600) = QUOTENAME(OBJECT_SCHEMA_NAME(@parent_id)) + N'.' + QUOTENAME(OBJECT_NAME(@parent_id));
    DECLARE @kq nvarchar(260) = (SELECT QUOTENAME(name) FROM sys.columns WHERE object_id = @object_id AND name = @key_column);
    DECLARE @tq nvarchar(260) = (SELECT QUOTENAME(name) FROM sys.columns WHERE object_id = @parent_id AND name = @text_column);
    DECLARE @chunk_cols int = (SELECT COUNT(*) FROM sys.columns WHERE object_id = @object_id
                               AND name IN (N'chunk_no', N'chunk_offset', N'chunk_length'));
    -- The index path needs the chunk table's single-column INT primary key (chunk_id on tables the job created).
    DECLARE @pk nvarchar(260) = (SELECT QUOTENAME(MAX(c.name)) FROM sys.indexes AS i
        JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
        JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
        WHERE i.object_id = @object_id AND i.is_primary_key = 1
        GROUP BY i.index_id HAVING COUNT(*) = 1 AND MAX(TYPE_NAME(c.system_type_id)) = N'int');
    DECLARE @vq nvarchar(260), @dims int, @vbase nvarchar(20), @rc int;
    SELECT @vq = QUOTENAME(name), @dims = vector_dimensions, @vbase = vector_base_type_desc FROM sys.columns
    WHERE object_id = @object_id AND name = @vector_column AND TYPE_NAME(user_type_id) = N'vector';
    SET @candidates = ISNULL(@candidates, @top * 10);
    DECLARE @problem nvarchar(4000) =
        CASE WHEN @object_id IS NULL THEN CONCAT(N'chunk table not found (or no permission on it): ', @chunk_table)
             WHEN @kq IS NULL THEN CONCAT(N'key column not found in the chunk table: ', @key_column)
             WHEN @chunk_cols <> 3 THEN N'a chunk table has the columns chunk_no, chunk_offset and chunk_length'
             WHEN @vq IS NULL THEN CONCAT(N'VECTOR column not found: ', @vector_column)
             WHEN @metric NOT IN ('cosine', 'dot', 'euclidean') THEN N'@metric must be cosine, dot or euclidean'
             WHEN @top NOT BETWEEN 1 AND 2000 THEN N'@top must be between 1 and 2000'
             WHEN @candidates NOT BETWEEN @top AND 20000 THEN N'@candidates must be between @top and 20000'
             WHEN (@parent_table IS NULL) <> (@text_column IS NULL)
                 THEN N'@parent_table and @text_column go together'
             WHEN @parent_table IS NOT NULL AND @parent_id IS NULL
                 THEN CONCAT(N'parent table not found (or no permission on it): ', @parent_table)
             WHEN @parent_table IS NOT NULL AND @tq IS NULL THEN CONCAT(N'text column not found: ', @text_column)
             WHEN @parent_table IS NOT NULL AND NOT EXISTS (SELECT 1 FROM sys.columns
                                                            WHERE object_id = @parent_id AND name = @key_column)
                 THEN CONCAT(N'the parent table has no key column ', @key_column) END;
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.search_chunks', 'code': 400, 'message': @problem);
        RETURN 400;
    END;
    DECLARE @qv nvarchar(max), @version int, @sql nvarchar(max);
    EXEC @rc = sqlembed.query_vector @query = @query, @qv = @qv OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    IF @pk IS NOT NULL
        EXEC sqlembed.vector_index_version @object_id = @object_id, @column = @vector_column, @metric = @metric,
                                           @version = @version OUTPUT;
    -- Exact: every chunk's distance, the best per parent. Indexed: the nearest chunks by the index
    -- (the same statement forms as sqlembed.search), then the best per parent among them.
    DECLARE @ranked nvarchar(max) = CASE WHEN @version IS NULL THEN N'
        SELECT c.{k} AS id, c.chunk_no, c.chunk_offset, c.chunk_length, c.distance,
               ROW_NUMBER() OVER (PARTITION BY c.{k} ORDER BY c.distance, c.chunk_no) AS rn
        FROM (SELECT t.{k}, t.chunk_no, t.chunk_offset, t.chunk_length,
                     VECTOR_DISTANCE(''{metric}'', t.{v}, @v) AS distance
              FROM {src} AS t WHERE t.{v} IS NOT NULL) AS c' ELSE N'
        SELECT t.{k} AS id, t.chunk_no, t.chunk_offset, t.chunk_length, h.distance,
               ROW_NUMBER() OVER (PARTITION BY t.{k} ORDER BY h.distance, t.chunk_no) AS rn
        FROM #sqlembed_hits AS h JOIN {src} AS t ON t.{pk} = h.chunk_id' END;
    SET @sql = N'
        DECLARE @v VECTOR({dims}{vt}) = CAST(@qv AS VECTOR({dims}{vt}));
        SELECT TOP (@top) r.id AS {k}, r.chunk_no, r.chunk_offset, r.chunk_length, r.distance, {passage} AS passage
        FROM ({ranked}) AS r{join}
        WHERE r.rn = 1
        ORDER BY r.distance;';
    SET @sql = REPLACE(REPLACE(REPLACE(@sql, N'{ranked}', @ranked),
        N'{passage}', CASE WHEN @parent_id IS NULL THEN N'CAST(NULL AS nvarchar(max))'
                           ELSE N'SUBSTRING(p.{txt}, r.chunk_offset, r.chunk_length)' END),
        N'{join}', CASE WHEN @parent_id IS NULL THEN N'' ELSE N' LEFT JOIN {parent} AS p ON p.{k} = r.id' END);
    SET @sql = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(@sql,
        N'{src}', @src), N'{k}', @kq), N'{v}', @vq), N'{metric}', @metric), N'{pk}', ISNULL(@pk, N'')),
        N'{parent}', ISNULL(@parent, N'')), N'{txt}', ISNULL(@tq, N'')),
        N'{dims}', CAST(@dims AS nvarchar(10))), N'{vt}', CASE WHEN @vbase = N'float16' THEN N', float16' ELSE N'' END);
    -- The nearest chunks, inserted by the dynamic batch itself: an INSERT ... EXEC here would make
    -- a caller's INSERT ... EXEC sqlembed.search_chunks fail (Msg 8164). The approximate form sits
    -- in a derived table, the subquery shape Learn documents for TOP WITH APPROXIMATE.
    DECLARE @hits nvarchar(max) = CASE WHEN @version >= 3 THEN N'
        DECLARE @v VECTOR({dims}{vt}) = CAST(@qv AS VECTOR({dims}{vt}));
        INSERT INTO #sqlembed_hits (chunk_id, distance)
        SELECT a.chunk_id, a.distance
        FROM (SELECT TOP (@top) WITH APPROXIMATE t.{pk} AS chunk_id, s.distance
              FROM VECTOR_SEARCH(TABLE = {src} AS t, COLUMN = {v}, SIMILAR_TO = @v, METRIC = ''{metric}'') AS s
              ORDER BY s.distance) AS a;' ELSE N'
        DECLARE @v VECTOR({dims}{vt}) = CAST(@qv AS VECTOR({dims}{vt}));
        INSERT INTO #sqlembed_hits (chunk_id, distance)
        SELECT t.{pk} AS chunk_id, s.distance
        FROM VECTOR_SEARCH(TABLE = {src} AS t, COLUMN = {v}, SIMILAR_TO = @v, METRIC = ''{metric}'', TOP_N = @top) AS s
        ORDER BY s.distance;' END;
    SET @hits = REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(@hits,
        N'{src}', @src), N'{pk}', ISNULL(@pk, N'')), N'{v}', @vq), N'{metric}', @metric),
        N'{dims}', CAST(@dims AS nvarchar(10))), N'{vt}', CASE WHEN @vbase = N'float16' THEN N', float16' ELSE N'' END);
    BEGIN TRY
        -- A temporary table, not a table variable: the dynamic statement above must see it.
        CREATE TABLE #sqlembed_hits (chunk_id int NOT NULL PRIMARY KEY, distance float NOT NULL);
        IF @version IS NOT NULL
            EXEC sys.sp_executesql @hits, N'@qv nvarchar(max), @top int', @qv = @qv, @top = @candidates;
        EXEC sys.sp_executesql @sql, N'@qv nvarchar(max), @top int', @qv = @qv, @top = @top;
    END TRY
    BEGIN CATCH
        SET @error = JSON_OBJECT('source': 'sqlembed.search_chunks', 'code': ERROR_NUMBER(), 'message': ERROR_MESSAGE());
        RETURN CASE WHEN ERROR_NUMBER() = 0 THEN 500 ELSE ERROR_NUMBER() END;
    END CATCH;
    RETURN 0;
END;
GO
-- CREATE VECTOR INDEX with its preconditions checked first (contract D4): on SQL Server 2025
-- PREVIEW_FEATURES on and a clustered primary key on exactly one INT column (Azure SQL's newer
-- index needs only a clustered index), at least 100 non-NULL vectors (Msg 42266). Managed Instance
-- follows either set of rules depending on its update policy (SQL Server 2025 policy: preview,
-- PREVIEW_FEATURES; Always-up-to-date: GA), which T-SQL cannot read: there nothing is refused in
-- advance, and a failure comes back with both sets of rules in its message. The default index name
-- is cut to 128 characters (QUOTENAME returns NULL past that, which would run nothing).
-- Caveat: on SQL Server 2025 the table is READ-ONLY while the index exists; to load more rows,
-- DROP INDEX <name> ON <table>, load and embed, then create it again. Needs ALTER on the table.
-- A long DDL statement that changes what others may do with the table: it refuses to run inside a
-- caller's transaction (409), like embed_rows.
CREATE OR ALTER PROCEDURE sqlembed.create_vector_index
    @table         nvarchar(300),
    @vector_column sysname,
    @metric        varchar(10) = 'cosine',
    @index_name    sysname = NULL,
    @error         nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @error = NULL;
    DECLARE @object_id int = OBJECT_ID(@table, N'U');
    DECLARE @src nvarchar(600) = QUOTENAME(OBJECT_SCHEMA_NAME(@object_id)) + N'.' + QUOTENAME(OBJECT_NAME(@object_id));
    DECLARE @vq nvarchar(260) = (SELECT QUOTENAME(name) FROM sys.columns
                                 WHERE object_id = @object_id AND name = @vector_column AND TYPE_NAME(user_type_id) = N'vector');
    -- 5 Azure SQL Database, 12 Fabric: the newer index, no preview switch. 8 Managed Instance: either.
    DECLARE @edition int = CAST(SERVERPROPERTY('EngineEdition') AS int);
    DECLARE @boxed bit = CASE WHEN @edition IN (5, 8, 12) THEN 0 ELSE 1 END, @managed bit = CASE WHEN @edition = 8 THEN 1 ELSE 0 END;
    DECLARE @preview int = (SELECT TRY_CAST(value AS int) FROM sys.database_scoped_configurations
                            WHERE name = N'PREVIEW_FEATURES');
    DECLARE @n bigint, @sql nvarchar(max), @problem nvarchar(4000), @code int = 400;
    SET @index_name = ISNULL(@index_name, LEFT(CONCAT(N'vix_', OBJECT_NAME(@object_id), N'_', @vector_column), 128));
    IF @@TRANCOUNT > 0
        SELECT @problem = N'create_vector_index cannot run inside a transaction: commit or roll back first', @code = 409;
    ELSE IF @object_id IS NULL OR @vq IS NULL
        SET @problem = N'table or VECTOR column not found (or no permission on it)';
    ELSE IF @metric NOT IN ('cosine', 'dot', 'euclidean')
        SET @problem = N'@metric must be cosine, dot or euclidean';
    ELSE IF QUOTENAME(@index_name) IS NULL
        SET @problem = N'@index_name must be at most 128 characters';
    ELSE IF @boxed = 1 AND ISNULL(@preview, 0) <> 1
        SET @problem = N'SQL Server 2025 vector indexes are a preview feature: a database owner runs '
                     + N'ALTER DATABASE SCOPED CONFIGURATION SET PREVIEW_FEATURES = ON;';
    ELSE IF @boxed = 1 AND NOT EXISTS (
        SELECT 1 FROM sys.indexes AS i
        JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
        JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
        WHERE i.object_id = @object_id AND i.is_primary_key = 1 AND i.type = 1
        GROUP BY i.index_id
        HAVING COUNT(*) = 1 AND MAX(TYPE_NAME(c.system_type_id)) = N'int')
        SET @problem = N'SQL Server 2025 vector indexes need a clustered primary key on exactly one INT column';
    ELSE IF @boxed = 0 AND @managed = 0 AND NOT EXISTS (SELECT 1 FROM sys.indexes WHERE object_id = @object_id AND type = 1)
        SET @problem = N'vector indexes need a clustered index on the table';
    ELSE IF ISNULL(HAS_PERMS_BY_NAME(@src, N'OBJECT', N'ALTER'), 0) = 0
        SELECT @problem = CONCAT(N'you need ALTER on ', @src, N' to index it'), @code = 403;
    IF @problem IS NULL
    BEGIN
        BEGIN TRY
            SET @sql = REPLACE(REPLACE(N'SELECT @n = COUNT_BIG(*) FROM {src} WHERE {v} IS NOT NULL;', N'{src}', @src), N'{v}', @vq);
            EXEC sys.sp_executesql @sql, N'@n bigint OUTPUT', @n = @n OUTPUT;
            IF @n < 100
                SET @problem = CONCAT(N'a vector index needs at least 100 non-NULL vectors (Msg 42266); the table has ', @n);
        END TRY
        BEGIN CATCH
            IF @@TRANCOUNT > 0
                ROLLBACK TRANSACTION;  -- only ever our own: the procedure refuses to start inside one
            SELECT @problem = CONCAT(N'could not count the vectors of ', @src, N': ', ERROR_MESSAGE()), @code = 500;
        END CATCH;
    END;
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.create_vector_index', 'code': @code, 'message': @problem);
        RETURN @code;
    END;
    SET @sql = N'CREATE VECTOR INDEX {name} ON {src} ({v}) WITH (METRIC = ''{metric}'', TYPE = ''DiskANN'');';
    SET @sql = REPLACE(REPLACE(REPLACE(REPLACE(@sql, N'{name}', QUOTENAME(@index_name)), N'{src}', @src), N'{v}', @vq),
                       N'{metric}', @metric);
    BEGIN TRY
        EXEC sys.sp_executesql @sql;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;  -- only ever our own: the procedure refuses to start inside one
        SET @error = JSON_OBJECT('source': 'CREATE VECTOR INDEX', 'code': ERROR_NUMBER(), 'message': CONCAT(ERROR_MESSAGE(),
            CASE WHEN @managed = 1 THEN N' (Managed Instance: with the SQL Server 2025 update policy vector indexes are a '
                 + N'preview feature, PREVIEW_FEATURES = ON, and need a clustered primary key on one INT column; with the '
                 + N'Always-up-to-date policy a clustered index is enough)' ELSE N'' END));
        RETURN 500;
    END CATCH;
    PRINT CONCAT(N'sqlembed: created ', @index_name, N'. ', @src,
                 N' is read-only on SQL Server 2025 while it exists; DROP INDEX ', QUOTENAME(@index_name), N' ON ', @src,
                 N' before loading more rows.');
    RETURN 0;
END;
GO
