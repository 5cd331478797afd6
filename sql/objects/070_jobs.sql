-- sqlembed objects 070: push mode. A bulk job runs on the service's Spark cluster and writes vectors
-- straight into the table; these procedures start, watch and cancel it over the job API
-- (POST/GET/DELETE /v1/jobs, submit-and-poll because SQL Server waits at most 230 s, contract A7).
-- @database names a connection target configured on the service (SQLEMBED_DATABASES), never a password.
--
-- The job writes with the service's login, so submit_job checks the caller's own rights first:
-- SELECT on the table and UPDATE on the vector column (HAS_PERMS_BY_NAME, in the caller's context),
-- and sends the database it checked them in (DB_NAME()); the service refuses the job when @database
-- points anywhere else. @where is never SQL here: the service parses it and accepts only one boolean
-- expression over the table's columns and literals (a 400 before any SQL runs otherwise).
--
-- Transaction contract (sql/README.md): these procedures write one bookkeeping row
-- (sqlembed.jobs). Outside a transaction they commit it themselves; inside a caller's transaction
-- they write it there (no savepoint: under XACT_ABORT ON a failure dooms the whole transaction,
-- which is then the caller's to roll back) and never roll back what they did not open.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER PROCEDURE sqlembed.submit_job
    @database      nvarchar(128),
    @table         nvarchar(300),
    @key_column    sysname,
    @text_column   sysname,
    @vector_column sysname,
    @where         nvarchar(4000) = NULL,
    @target_table  nvarchar(300) = NULL,
    @chunk_table   nvarchar(300) = NULL,
    @chunk_tokens  int = NULL,
    @chunk_overlap int = 0,
    @sync          nvarchar(10) = N'auto',
    @job_id        nvarchar(64) = NULL OUTPUT,
    @error         nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @job_id = NULL;
    SET @error = NULL;
    DECLARE @own bit = CASE WHEN @@TRANCOUNT = 0 THEN 1 ELSE 0 END, @rc int = 0, @code int = 400,
            @problem nvarchar(4000);
    DECLARE @object_id int = OBJECT_ID(@table);
    DECLARE @name nvarchar(300) = OBJECT_SCHEMA_NAME(@object_id) + N'.' + OBJECT_NAME(@object_id);
    DECLARE @dims int = (SELECT dimensions FROM sqlembed.config());
    DECLARE @writes nvarchar(300) = COALESCE(@target_table, @chunk_table),
            @second nvarchar(10) = CASE WHEN @chunk_table IS NOT NULL THEN N'DELETE' ELSE N'UPDATE' END;
    IF @object_id IS NULL
        SELECT @problem = CONCAT(N'table not found (or no permission on it): ', @table), @code = 404;
    ELSE IF ISNULL(HAS_PERMS_BY_NAME(@name, N'OBJECT', N'SELECT'), 0) = 0
        SELECT @problem = CONCAT(N'you need SELECT on ', @name, N' to embed it'), @code = 403;
    ELSE IF @target_table IS NOT NULL AND @chunk_table IS NOT NULL
        SELECT @problem = N'a job writes either @target_table or @chunk_table, not both';
    ELSE IF @chunk_table IS NOT NULL AND (@chunk_tokens IS NULL OR @chunk_tokens NOT BETWEEN 8 AND 8192)
        SELECT @problem = N'@chunk_tokens (8 to 8192) is required with @chunk_table';
    ELSE IF @chunk_table IS NOT NULL AND (@chunk_overlap IS NULL OR @chunk_overlap < 0
                                          OR @chunk_overlap >= @chunk_tokens / 2)
        SELECT @problem = N'@chunk_overlap must be >= 0 and below half of @chunk_tokens';
    ELSE IF @sync IS NULL OR @sync NOT IN (N'auto', N'hash', N'changes')
        SELECT @problem = N'@sync must be auto, hash or changes';
    ELSE IF @writes IS NULL
            AND ISNULL(HAS_PERMS_BY_NAME(@name, N'OBJECT', N'UPDATE', @vector_column, N'COLUMN'), 0) = 0
        SELECT @problem = CONCAT(N'you need UPDATE on ', @name, N'.', @vector_column, N' to embed it'), @code = 403;
    -- A target table is upserted (INSERT, UPDATE), a chunk table's rows replaced (INSERT, DELETE).
    ELSE IF @writes IS NOT NULL AND OBJECT_ID(@writes) IS NOT NULL
            AND (ISNULL(HAS_PERMS_BY_NAME(@writes, N'OBJECT', N'INSERT'), 0) = 0
                 OR ISNULL(HAS_PERMS_BY_NAME(@writes, N'OBJECT', @second), 0) = 0)
        SELECT @problem = CONCAT(N'you need INSERT and ', @second, N' on ', @writes), @code = 403;
    ELSE IF @writes IS NOT NULL AND OBJECT_ID(@writes) IS NULL
            AND ISNULL(HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE TABLE'), 0) = 0
        SELECT @problem = CONCAT(N'you need CREATE TABLE to let the job create ', @writes), @code = 403;
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.submit_job', 'code': @code, 'message': @problem);
        RETURN @code;
    END;
    DECLARE @overlap int = CASE WHEN @chunk_table IS NOT NULL THEN @chunk_overlap END;
    DECLARE @payload nvarchar(max) = JSON_OBJECT(
        'db': @database, 'table': @name, 'key': @key_column, 'text': @text_column, 'vector': @vector_column,
        'where': @where, 'target_table': @target_table, 'chunk_table': @chunk_table, 'chunk_tokens': @chunk_tokens,
        'chunk_overlap': @overlap, 'sync': @sync,
        'dimensions': @dims, 'expect_database': DB_NAME()
        ABSENT ON NULL);
    DECLARE @response nvarchar(max);
    EXEC @rc = sqlembed.invoke @path = N'/v1/jobs', @payload = @payload, @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
    BEGIN
        DECLARE @message nvarchar(4000) = LEFT(JSON_VALUE(@error, '$.message'), 4000);
        EXEC sqlembed.log_error @source = N'sqlembed.submit_job', @code = @rc, @message = @message;
        RETURN @rc;
    END;
    SET @job_id = JSON_VALUE(@response, '$.result.id');
    BEGIN TRY
        IF @own = 1
            BEGIN TRANSACTION;
        -- The service may keep its job records in this very table (SQLEMBED_JOB_STORE=db:<name>)
        -- and may already have written the row: add who submitted it either way.
        MERGE sqlembed.jobs WITH (HOLDLOCK) AS j
        USING (SELECT @job_id AS job_id) AS x ON j.job_id = x.job_id
        WHEN MATCHED THEN UPDATE SET submitted_by = SUSER_SNAME(), updated_at = SYSUTCDATETIME()
        WHEN NOT MATCHED THEN INSERT (job_id, source_table, target_table, state, last_status, updated_at)
            VALUES (@job_id, @name, @writes, ISNULL(JSON_VALUE(@response, '$.result.state'), N'queued'),
                    JSON_QUERY(@response, '$.result'), SYSUTCDATETIME());
        IF @own = 1
            COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @own = 1 AND @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        SET @error = JSON_OBJECT('source': 'sqlembed.submit_job', 'code': ERROR_NUMBER(),
                                 'message': CONCAT(N'job ', @job_id, N' was submitted but not recorded: ', ERROR_MESSAGE()));
        RETURN CASE WHEN ERROR_NUMBER() = 0 THEN 500 ELSE ERROR_NUMBER() END;
    END CATCH;
    SELECT @job_id AS job_id, JSON_VALUE(@response, '$.result.state') AS state;
    RETURN 0;
END;
GO
-- One job's resource on the service: validates the id, calls it, records the answer.
CREATE OR ALTER PROCEDURE sqlembed.job_request
    @job_id   nvarchar(64),
    @method   nvarchar(6),
    @response nvarchar(max) = NULL OUTPUT,
    @error    nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    DECLARE @rc int, @path nvarchar(200) = N'/v1/jobs/' + @job_id, @own bit = CASE WHEN @@TRANCOUNT = 0 THEN 1 ELSE 0 END;
    IF @job_id IS NULL OR @job_id LIKE N'%[^0-9A-Za-z_-]%'
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.job_request', 'code': 400, 'message': 'invalid @job_id');
        RETURN 400;
    END;
    EXEC @rc = sqlembed.invoke @path = @path, @method = @method, @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    BEGIN TRY
        IF @own = 1
            BEGIN TRANSACTION;
        UPDATE sqlembed.jobs SET state = ISNULL(JSON_VALUE(@response, '$.result.state'), state),
                                 last_status = JSON_QUERY(@response, '$.result'), updated_at = SYSUTCDATETIME()
        WHERE job_id = @job_id;
        IF @own = 1
            COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @own = 1 AND @@TRANCOUNT > 0
            ROLLBACK TRANSACTION;
        SET @error = JSON_OBJECT('source': 'sqlembed.job_request', 'code': ERROR_NUMBER(), 'message': ERROR_MESSAGE());
        RETURN CASE WHEN ERROR_NUMBER() = 0 THEN 500 ELSE ERROR_NUMBER() END;
    END CATCH;
    RETURN 0;
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.job_status
    @job_id nvarchar(64),
    @error  nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    DECLARE @response nvarchar(max), @rc int;
    EXEC @rc = sqlembed.job_request @job_id = @job_id, @method = N'GET', @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    SELECT j.id AS job_id, j.state, j.rows_total, j.rows_done, j.rows_failed, j.rows_per_s, j.started, j.finished,
           j.last_error, j.dimensions
    FROM OPENJSON(@response, '$.result') WITH (
        id nvarchar(64), state nvarchar(20), rows_total bigint, rows_done bigint, rows_failed bigint,
        rows_per_s float, started nvarchar(40), finished nvarchar(40), last_error nvarchar(4000),
        dimensions int '$.request.dimensions') AS j;
    RETURN 0;
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.cancel_job
    @job_id nvarchar(64),
    @error  nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    DECLARE @response nvarchar(max), @rc int;
    EXEC @rc = sqlembed.job_request @job_id = @job_id, @method = N'DELETE', @response = @response OUTPUT, @error = @error OUTPUT;
    RETURN @rc;
END;
GO
