-- sqlembed objects 070: push mode. A bulk job runs on the service's Spark cluster and writes vectors
-- straight into the table; these procedures start, watch and cancel it over the job API
-- (POST/GET/DELETE /v1/jobs, submit-and-poll because SQL Server waits at most 230 s, contract A7).
-- @database names a connection target configured on the service (SQLEMBED_DATABASES), never a password.
--
-- The job writes with the service's login, so submit_job checks the caller's own rights first, in
-- the caller's context, with quoted names from the catalog (HAS_PERMS_BY_NAME): SELECT on the key
-- and text columns (on every column when a @where filters the rows: the filter may name any of
-- them), UPDATE on the vector column, or INSERT and UPDATE/DELETE on a target or chunk table (or
-- CREATE TABLE and ALTER on its schema where the job creates it); and it sends the database it
-- checked them in (DB_NAME()): the service refuses the job when @database points anywhere else.
-- @where is never SQL here: the service parses it and accepts only one boolean expression over the
-- table's columns and literals (a 400 before any SQL runs otherwise).
-- A job is visible to, and can be cancelled by, the principal who submitted it and members of
-- db_owner (sqlembed.my_jobs lists them); nobody else learns another caller's tables or jobs.
--
-- Transaction contract (sql/README.md): submit_job and cancel_job change something outside the
-- database (a job starts or stops on the service), which no rollback can undo, and record it in
-- sqlembed.jobs, where the service's own progress writes would queue behind a caller's open
-- transaction. So they refuse (409, nothing sent) when a transaction is open at entry, and commit
-- their one bookkeeping row themselves. job_status only reads: it works inside any transaction,
-- with XACT_ABORT OFF so a service outage never dooms the caller's transaction.
--
-- submit_job @dry_run = 1 makes the same checks, asks the service what the job would do
-- (POST /v1/jobs with "dry_run": true: rows pending, text bytes, tokens, time on 1/2/4/8 workers,
-- cost where a price is configured) and returns it as a result set, one row per worker count. It
-- writes nothing here and the service records no job. It still refuses inside a transaction
-- (409): the service counts the table's pending rows over its own connection, which would wait
-- behind the caller's own uncommitted changes to that table until the call timed out.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
-- Who may see or act on a job: its submitter, or a database owner. Inline, so it costs a seek.
CREATE OR ALTER FUNCTION sqlembed.job_visible(@submitted_by sysname)
RETURNS TABLE
AS RETURN
    SELECT CAST(CASE WHEN @submitted_by = SUSER_SNAME() OR IS_ROLEMEMBER(N'db_owner') = 1 THEN 1 ELSE 0 END AS bit)
           AS visible;
GO
-- The caller's own jobs (all of them for db_owner): what the samples poll instead of sqlembed.jobs.
CREATE OR ALTER VIEW sqlembed.my_jobs
AS
    SELECT j.job_id, j.source_table, j.target_table, j.state, j.submitted_at, j.submitted_by, j.updated_at
    FROM sqlembed.jobs AS j
    CROSS APPLY sqlembed.job_visible(j.submitted_by) AS v
    WHERE v.visible = 1;
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
    @error         nvarchar(max) = NULL OUTPUT,
    @dry_run       bit = 0,
    @estimate      nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @job_id = NULL;
    SET @error = NULL;
    SET @estimate = NULL;
    DECLARE @entry_trancount int = @@TRANCOUNT, @rc int = 0, @code int = 400, @problem nvarchar(4000),
            @unsupported bit = 0;
    DECLARE @object_id int = OBJECT_ID(@table, N'U');
    -- The name the service resolves (schema.table) and the same name quoted for HAS_PERMS_BY_NAME.
    DECLARE @name nvarchar(300) = OBJECT_SCHEMA_NAME(@object_id) + N'.' + OBJECT_NAME(@object_id);
    DECLARE @qname nvarchar(600) = QUOTENAME(OBJECT_SCHEMA_NAME(@object_id)) + N'.' + QUOTENAME(OBJECT_NAME(@object_id));
    DECLARE @dims int = (SELECT dimensions FROM sqlembed.config());
    DECLARE @writes nvarchar(300) = COALESCE(@target_table, @chunk_table),
            @second nvarchar(10) = CASE WHEN @chunk_table IS NOT NULL THEN N'DELETE' ELSE N'UPDATE' END;
    DECLARE @writes_id int = OBJECT_ID(@writes, N'U');
    DECLARE @qwrites nvarchar(600) = QUOTENAME(OBJECT_SCHEMA_NAME(@writes_id)) + N'.' + QUOTENAME(OBJECT_NAME(@writes_id));
    -- A table the job creates goes into the schema named, else the source table's schema.
    DECLARE @writes_schema sysname = COALESCE(PARSENAME(@writes, 2), OBJECT_SCHEMA_NAME(@object_id));
    -- Columns the caller may not read: the key and text always; every column when @where filters.
    DECLARE @unreadable sysname = (
        SELECT TOP (1) c.name FROM sys.columns AS c
        WHERE c.object_id = @object_id
          AND (c.name IN (@key_column, @text_column) OR @where IS NOT NULL)
          AND ISNULL(HAS_PERMS_BY_NAME(@qname, N'OBJECT', N'SELECT', c.name, N'COLUMN'), 0) = 0
        ORDER BY c.column_id);
    IF @entry_trancount > 0 AND ISNULL(@dry_run, 0) = 1
        SELECT @problem = CONCAT(N'submit_job @dry_run = 1 has the service count the table''s rows over its own ',
                                 N'connection, which would wait behind this transaction''s locks (@@TRANCOUNT = ',
                                 @entry_trancount, N'): commit or roll back first, or call it with autocommit'),
               @code = 409;
    ELSE IF @entry_trancount > 0
        SELECT @problem = CONCAT(N'submit_job starts a job on the service, which no rollback can undo, and cannot ',
                                 N'run inside a transaction (@@TRANCOUNT = ', @entry_trancount, N'): commit or roll ',
                                 N'back first, or call it with autocommit'), @code = 409;
    -- NULL would read as 0 below and start a real job.
    ELSE IF @dry_run IS NULL
        SELECT @problem = N'@dry_run must be 0 or 1';
    ELSE IF @object_id IS NULL
        SELECT @problem = CONCAT(N'table not found (or no permission on it): ', @table), @code = 404;
    ELSE IF NOT EXISTS (SELECT 1 FROM sys.columns WHERE object_id = @object_id AND name = @key_column)
            OR NOT EXISTS (SELECT 1 FROM sys.columns WHERE object_id = @object_id AND name = @text_column)
        SELECT @problem = CONCAT(N'key or text column not found in ', @qname, N': ', @key_column, N', ', @text_column),
               @code = 404;
    ELSE IF @unreadable IS NOT NULL
        SELECT @problem = CONCAT(N'you need SELECT on ', @qname, N'.', QUOTENAME(@unreadable), N' to embed it',
                                 CASE WHEN @where IS NOT NULL THEN N' (a @where may name any column: SELECT on every '
                                      + N'column is required with one)' ELSE N'' END), @code = 403;
    -- The service reads the text unmasked (its own login): a caller who sees it masked may not have
    -- it embedded into a column they can read, nor counted and measured by a dry run.
    ELSE IF EXISTS (SELECT 1 FROM sys.masked_columns WHERE object_id = @object_id AND name = @text_column)
            AND ISNULL(HAS_PERMS_BY_NAME(@qname, N'OBJECT', N'UNMASK', @text_column, N'COLUMN'), 0) = 0
        SELECT @problem = CONCAT(N'the text column ', QUOTENAME(@text_column), N' is masked and you lack UNMASK on it: ',
                                 N'the job would read it unmasked'), @code = 403;
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
            AND ISNULL(HAS_PERMS_BY_NAME(@qname, N'OBJECT', N'UPDATE', @vector_column, N'COLUMN'), 0) = 0
        SELECT @problem = CONCAT(N'you need UPDATE on ', @qname, N'.', QUOTENAME(@vector_column), N' to embed it'),
               @code = 403;
    -- A target table is upserted (INSERT, UPDATE), a chunk table's rows replaced (INSERT, DELETE).
    ELSE IF @writes_id IS NOT NULL
            AND (ISNULL(HAS_PERMS_BY_NAME(@qwrites, N'OBJECT', N'INSERT'), 0) = 0
                 OR ISNULL(HAS_PERMS_BY_NAME(@qwrites, N'OBJECT', @second), 0) = 0)
        SELECT @problem = CONCAT(N'you need INSERT and ', @second, N' on ', @qwrites), @code = 403;
    ELSE IF @writes IS NOT NULL AND @writes_id IS NULL
            AND (ISNULL(HAS_PERMS_BY_NAME(DB_NAME(), N'DATABASE', N'CREATE TABLE'), 0) = 0
                 OR ISNULL(HAS_PERMS_BY_NAME(@writes_schema, N'SCHEMA', N'ALTER'), 0) = 0)
        SELECT @problem = CONCAT(N'you need CREATE TABLE and ALTER on schema ', QUOTENAME(@writes_schema),
                                 N' to let the job create ', @writes), @code = 403;
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.submit_job', 'code': @code, 'message': @problem);
        -- A dry run is read in SSMS, where an unread @error would leave only "Commands completed":
        -- severity 10 is a message, not an error (nothing is raised or doomed).
        IF @dry_run = 1
            RAISERROR (N'%s', 10, 1, @problem) WITH NOWAIT;
        RETURN @code;
    END;
    DECLARE @overlap int = CASE WHEN @chunk_table IS NOT NULL THEN @chunk_overlap END;
    -- JSON_OBJECT writes a bit as a JSON boolean (the FOR JSON rules); NULL leaves the key out.
    DECLARE @dry bit = CASE WHEN @dry_run = 1 THEN 1 END;
    DECLARE @payload nvarchar(max) = JSON_OBJECT(
        'db': @database, 'table': @name, 'key': @key_column, 'text': @text_column, 'vector': @vector_column,
        'where': @where, 'target_table': @target_table, 'chunk_table': @chunk_table, 'chunk_tokens': @chunk_tokens,
        'chunk_overlap': @overlap, 'sync': @sync,
        'dimensions': @dims, 'expect_database': DB_NAME(),
        'dry_run': @dry
        ABSENT ON NULL);
    DECLARE @response nvarchar(max);
    EXEC @rc = sqlembed.invoke @path = N'/v1/jobs', @payload = @payload, @response = @response OUTPUT, @error = @error OUTPUT;
    DECLARE @source nvarchar(100) = CASE WHEN @dry_run = 1 THEN N'sqlembed.submit_job (dry run)'
                                         ELSE N'sqlembed.submit_job' END;
    IF @rc <> 0
    BEGIN
        DECLARE @message nvarchar(4000) = LEFT(JSON_VALUE(@error, '$.message'), 4000);
        EXEC sqlembed.log_error @source = @source, @code = @rc, @message = @message;
        IF @dry_run = 1
            RAISERROR (N'%s', 10, 1, @message) WITH NOWAIT;
        RETURN @rc;
    END;
    -- A service older than dry runs ignores the field and answers 202 with a job it started:
    -- record that job below (its submitter can then see and cancel it) and say so.
    IF @dry_run = 1 AND ISNULL(JSON_VALUE(@response, '$.result.dry_run'), N'') <> N'true'
    BEGIN
        SET @job_id = JSON_VALUE(@response, '$.result.id');
        SELECT @unsupported = 1, @problem = CONCAT(N'the service does not support dry runs (upgrade it)',
            CASE WHEN @job_id IS NOT NULL THEN CONCAT(N'; it started job ', @job_id, N' instead: ',
                                                      N'EXEC sqlembed.cancel_job @job_id = N''', @job_id,
                                                      N''' stops it') ELSE N'' END);
        SET @error = JSON_OBJECT('source': 'sqlembed.submit_job', 'code': 502, 'message': @problem);
        EXEC sqlembed.log_error @source = @source, @code = 502, @message = @problem;
        RAISERROR (N'%s', 10, 1, @problem) WITH NOWAIT;
        IF @job_id IS NULL
            RETURN 502;
    END
    ELSE IF @dry_run = 1
    BEGIN
        BEGIN TRY
            SET @estimate = JSON_QUERY(@response, '$.result');
            IF JSON_QUERY(@response, '$.result.estimates') IS NULL
                THROW 50070, N'the service''s dry-run answer has no estimates', 1;
            -- What the job would do, for SSMS: one row per worker count. Nothing is recorded.
            SELECT d.workers, d.seconds AS estimated_seconds, CAST(d.seconds / 3600.0 AS decimal(12, 2)) AS estimated_hours,
                   d.cost, r.currency, r.rows_pending, r.text_bytes, r.tokens_estimate, r.rows_per_s_per_worker,
                   r.rate_source, r.mode, r.dimensions
            FROM OPENJSON(@response, '$.result') WITH (
                    rows_pending bigint, text_bytes bigint, tokens_estimate bigint, mode nvarchar(20), dimensions int,
                    rows_per_s_per_worker float '$.rate.rows_per_s', rate_source nvarchar(4000) '$.rate.source',
                    currency nvarchar(8), estimates nvarchar(max) AS JSON) AS r
            CROSS APPLY OPENJSON(r.estimates) WITH (workers int, seconds float, cost float) AS d
            ORDER BY d.workers;
            RETURN 0;
        END TRY
        BEGIN CATCH
            SET @problem = CONCAT(N'unexpected dry-run answer from the service: ', ERROR_MESSAGE());
            SET @error = JSON_OBJECT('source': 'sqlembed.submit_job', 'code': 502, 'message': @problem);
            EXEC sqlembed.log_error @source = @source, @code = 502, @message = @problem;
            RETURN 502;
        END CATCH;
    END;
    SET @job_id = JSON_VALUE(@response, '$.result.id');
    BEGIN TRY
        BEGIN TRANSACTION;
        -- The service may keep its job records in this very table (SQLEMBED_JOB_STORE=db:<name>)
        -- and may already have written the row: add who submitted it either way.
        MERGE sqlembed.jobs WITH (HOLDLOCK) AS j
        USING (SELECT @job_id AS job_id) AS x ON j.job_id = x.job_id
        WHEN MATCHED THEN UPDATE SET submitted_by = SUSER_SNAME(), updated_at = SYSUTCDATETIME()
        WHEN NOT MATCHED THEN INSERT (job_id, source_table, target_table, state, last_status, updated_at)
            VALUES (@job_id, @name, @writes, ISNULL(JSON_VALUE(@response, '$.result.state'), N'queued'),
                    JSON_QUERY(@response, '$.result'), SYSUTCDATETIME());
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        -- Only ever this procedure's own transaction: it refuses to start inside one.
        IF @@TRANCOUNT > @entry_trancount
            ROLLBACK TRANSACTION;
        SET @error = JSON_OBJECT('source': 'sqlembed.submit_job', 'code': ERROR_NUMBER(),
                                 'message': CONCAT(N'job ', @job_id, N' was submitted but not recorded: ', ERROR_MESSAGE()));
        RETURN CASE WHEN ERROR_NUMBER() = 0 THEN 500 ELSE ERROR_NUMBER() END;
    END CATCH;
    SELECT @job_id AS job_id, JSON_VALUE(@response, '$.result.state') AS state;
    RETURN CASE WHEN @unsupported = 1 THEN 502 ELSE 0 END;
END;
GO
-- One job's resource on the service, for its submitter (or a database owner): validates the id,
-- checks who asks, calls the service. Writes nothing.
CREATE OR ALTER PROCEDURE sqlembed.job_request
    @job_id   nvarchar(64),
    @method   nvarchar(6),
    @response nvarchar(max) = NULL OUTPUT,
    @error    nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @response = NULL;
    SET @error = NULL;
    DECLARE @rc int, @path nvarchar(200) = N'/v1/jobs/' + @job_id;
    IF @job_id IS NULL OR @job_id COLLATE Latin1_General_BIN2 LIKE N'%[^0-9A-Za-z_-]%'
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.job_request', 'code': 400, 'message': 'invalid @job_id');
        RETURN 400;
    END;
    -- The same answer for a job that does not exist and one submitted by someone else.
    IF NOT EXISTS (SELECT 1 FROM sqlembed.jobs AS j CROSS APPLY sqlembed.job_visible(j.submitted_by) AS v
                   WHERE j.job_id = @job_id AND v.visible = 1)
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.job_request', 'code': 404,
                                 'message': CONCAT(N'no job ', @job_id, N' submitted by you'));
        RETURN 404;
    END;
    EXEC @rc = sqlembed.invoke @path = @path, @method = @method, @response = @response OUTPUT, @error = @error OUTPUT;
    RETURN @rc;
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.job_status
    @job_id nvarchar(64),
    @error  nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
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
    SET @error = NULL;
    DECLARE @response nvarchar(max), @rc int, @entry_trancount int = @@TRANCOUNT;
    IF @entry_trancount > 0
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.cancel_job', 'code': 409,
            'message': CONCAT(N'cancel_job stops a job on the service, which no rollback can undo, and cannot run ',
                              N'inside a transaction (@@TRANCOUNT = ', @entry_trancount, N'): commit or roll back ',
                              N'first, or call it with autocommit'));
        RETURN 409;
    END;
    EXEC @rc = sqlembed.job_request @job_id = @job_id, @method = N'DELETE', @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    BEGIN TRY
        BEGIN TRANSACTION;
        UPDATE sqlembed.jobs SET state = ISNULL(JSON_VALUE(@response, '$.result.state'), state),
                                 last_status = JSON_QUERY(@response, '$.result'), updated_at = SYSUTCDATETIME()
        WHERE job_id = @job_id;
        COMMIT TRANSACTION;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > @entry_trancount
            ROLLBACK TRANSACTION;
        SET @error = JSON_OBJECT('source': 'sqlembed.cancel_job', 'code': ERROR_NUMBER(),
                                 'message': CONCAT(N'job ', @job_id, N' was cancelled but not recorded: ', ERROR_MESSAGE()));
        RETURN CASE WHEN ERROR_NUMBER() = 0 THEN 500 ELSE ERROR_NUMBER() END;
    END CATCH;
    RETURN 0;
END;
GO
