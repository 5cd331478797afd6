-- sqlembed objects 080: vector search. The query text is embedded with AI_GENERATE_EMBEDDINGS through
-- the external model; the nearest rows come from VECTOR_SEARCH when a vector index with the same column
-- and metric exists (approximate, contract D5), else from an exact VECTOR_DISTANCE scan.
--   EXEC sqlembed.search @query = N'how do I rotate keys?', @table = N'dbo.docs', @key_column = N'id',
--                        @vector_column = N'embedding', @top = 5;
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
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
    SET @error = NULL;
    DECLARE @object_id int = OBJECT_ID(@table, N'U');
    DECLARE @src nvarchar(300) = QUOTENAME(OBJECT_SCHEMA_NAME(@object_id)) + N'.' + QUOTENAME(OBJECT_NAME(@object_id));
    DECLARE @kq nvarchar(260) = (SELECT QUOTENAME(name) FROM sys.columns WHERE object_id = @object_id AND name = @key_column);
    DECLARE @vq nvarchar(260) = (SELECT QUOTENAME(name) FROM sys.columns
                                 WHERE object_id = @object_id AND name = @vector_column AND TYPE_NAME(user_type_id) = N'vector');
    DECLARE @problem nvarchar(4000) =
        CASE WHEN @object_id IS NULL THEN CONCAT(N'table not found: ', @table)
             WHEN @kq IS NULL THEN CONCAT(N'key column not found: ', @key_column)
             WHEN @vq IS NULL THEN CONCAT(N'VECTOR column not found: ', @vector_column)
             WHEN @metric NOT IN ('cosine', 'dot', 'euclidean') THEN N'@metric must be cosine, dot or euclidean'
             WHEN @top NOT BETWEEN 1 AND 10000 THEN N'@top must be between 1 and 10000'
             WHEN @query IS NULL OR DATALENGTH(@query) = 0 THEN N'@query is NULL or empty' END;
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.search', 'code': 400, 'message': @problem);
        RETURN 400;
    END;
    DECLARE @qv VECTOR($(SQLEMBED_DIMENSIONS));
    BEGIN TRY
        SET @qv = AI_GENERATE_EMBEDDINGS(@query USE MODEL $(SQLEMBED_EXTERNAL_MODEL));
    END TRY
    BEGIN CATCH
        SET @error = JSON_OBJECT('source': 'AI_GENERATE_EMBEDDINGS', 'code': ERROR_NUMBER(), 'message': ERROR_MESSAGE());
        RETURN 502;
    END CATCH;
    -- A failed call can come back as NULL instead of an error (contract B4): never search with it.
    IF @qv IS NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'AI_GENERATE_EMBEDDINGS', 'code': 502,
                                 'message': 'no embedding returned; run EXEC sqlembed.self_test');
        RETURN 502;
    END;
    DECLARE @indexed bit = CASE WHEN EXISTS (
        SELECT 1 FROM sys.vector_indexes AS vi
        JOIN sys.index_columns AS ic ON ic.object_id = vi.object_id AND ic.index_id = vi.index_id
        JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
        WHERE vi.object_id = @object_id AND c.name = @vector_column AND vi.distance_metric = @metric) THEN 1 ELSE 0 END;
    DECLARE @sql nvarchar(max) = CASE WHEN @indexed = 1 THEN N'
        SELECT t.' + @kq + N' AS id, s.distance
        FROM VECTOR_SEARCH(TABLE = ' + @src + N' AS t, COLUMN = ' + @vq + N', SIMILAR_TO = @qv,
                           METRIC = ''' + @metric + N''', TOP_N = @top) AS s
        ORDER BY s.distance;'
    ELSE N'
        SELECT TOP (@top) t.' + @kq + N' AS id, VECTOR_DISTANCE(''' + @metric + N''', t.' + @vq + N', @qv) AS distance
        FROM ' + @src + N' AS t
        WHERE t.' + @vq + N' IS NOT NULL
        ORDER BY distance;' END;
    EXEC sys.sp_executesql @sql, N'@qv VECTOR($(SQLEMBED_DIMENSIONS)), @top int', @qv = @qv, @top = @top;
    RETURN 0;
END;
GO
-- CREATE VECTOR INDEX with the SQL Server 2025 preconditions checked first (contract D4):
-- PREVIEW_FEATURES on, a single-column INT clustered primary key, at least 100 non-NULL vectors.
-- Caveat: on SQL Server 2025 the table is READ-ONLY while the index exists; to load more rows,
-- DROP INDEX <name> ON <table>, load and embed, then create it again.
CREATE OR ALTER PROCEDURE sqlembed.create_vector_index
    @table         nvarchar(300),
    @vector_column sysname,
    @metric        varchar(10) = 'cosine',
    @index_name    sysname = NULL,
    @error         nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @object_id int = OBJECT_ID(@table, N'U');
    DECLARE @src nvarchar(300) = QUOTENAME(OBJECT_SCHEMA_NAME(@object_id)) + N'.' + QUOTENAME(OBJECT_NAME(@object_id));
    DECLARE @vq nvarchar(260) = (SELECT QUOTENAME(name) FROM sys.columns
                                 WHERE object_id = @object_id AND name = @vector_column AND TYPE_NAME(user_type_id) = N'vector');
    DECLARE @n bigint, @sql nvarchar(max), @problem nvarchar(4000);
    SET @index_name = ISNULL(@index_name, CONCAT(N'vix_', OBJECT_NAME(@object_id), N'_', @vector_column));
    IF @object_id IS NULL OR @vq IS NULL
        SET @problem = N'table or VECTOR column not found';
    ELSE IF @metric NOT IN ('cosine', 'dot', 'euclidean')
        SET @problem = N'@metric must be cosine, dot or euclidean';
    ELSE IF NOT EXISTS (
        SELECT 1 FROM sys.indexes AS i
        JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
        JOIN sys.columns AS c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
        WHERE i.object_id = @object_id AND i.is_primary_key = 1 AND i.type = 1 AND TYPE_NAME(c.system_type_id) = N'int'
        GROUP BY i.index_id HAVING COUNT(*) = 1)
        SET @problem = N'SQL Server 2025 vector indexes need a single-column INT clustered primary key';
    IF @problem IS NULL
    BEGIN
        SET @sql = N'SELECT @n = COUNT_BIG(*) FROM ' + @src + N' WHERE ' + @vq + N' IS NOT NULL;';
        EXEC sys.sp_executesql @sql, N'@n bigint OUTPUT', @n = @n OUTPUT;
        IF @n < 100
            SET @problem = CONCAT(N'a vector index needs at least 100 non-NULL vectors (Msg 42266); the table has ', @n);
    END;
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.create_vector_index', 'code': 400, 'message': @problem);
        RETURN 400;
    END;
    SET @sql = N'CREATE VECTOR INDEX ' + QUOTENAME(@index_name) + N' ON ' + @src + N' (' + @vq + N')
                 WITH (METRIC = ''' + @metric + N''', TYPE = ''DiskANN'');';
    BEGIN TRY
        EXEC sys.sp_executesql @sql;
    END TRY
    BEGIN CATCH
        SET @error = JSON_OBJECT('source': 'CREATE VECTOR INDEX', 'code': ERROR_NUMBER(), 'message': ERROR_MESSAGE());
        RETURN 500;
    END CATCH;
    PRINT CONCAT(N'sqlembed: created ', @index_name, N'. ', @src,
                 N' is now read-only on SQL Server 2025; DROP INDEX ', QUOTENAME(@index_name), N' ON ', @src,
                 N' before loading more rows.');
    RETURN 0;
END;
GO
