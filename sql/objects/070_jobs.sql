-- sqlembed objects 070: push mode. A bulk job runs on the service's Spark cluster and writes vectors
-- straight into the table; these procedures start, watch and cancel it over the job API
-- (POST/GET/DELETE /v1/jobs, submit-and-poll because SQL Server waits at most 230 s, contract A7).
-- @database names a connection target configured on the service (SQLEMBED_DATABASES), never a password.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER PROCEDURE sqlembed.submit_job
    @database      nvarchar(128),
    @table         nvarchar(300),
    @key_column    sysname,
    @text_column   sysname,
    @vector_column sysname,
    @where         nvarchar(max) = NULL,
    @target_table  nvarchar(300) = NULL,
    @job_id        nvarchar(64) = NULL OUTPUT,
    @error         nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET @job_id = NULL;
    IF OBJECT_ID(@table, N'U') IS NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.submit_job', 'code': 404, 'message': CONCAT('table not found: ', @table));
        RETURN 404;
    END;
    DECLARE @payload nvarchar(max) = JSON_OBJECT(
        'db': @database, 'table': @table, 'key': @key_column, 'text': @text_column, 'vector': @vector_column,
        'where': @where, 'target_table': @target_table ABSENT ON NULL);
    DECLARE @response nvarchar(max), @rc int;
    EXEC @rc = sqlembed.invoke @path = N'/v1/jobs', @payload = @payload, @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    SET @job_id = JSON_VALUE(@response, '$.result.id');
    INSERT sqlembed.jobs (job_id, source_table, target_table, state, last_status, updated_at)
    VALUES (@job_id, @table, @target_table, ISNULL(JSON_VALUE(@response, '$.result.state'), N'queued'),
            JSON_QUERY(@response, '$.result'), SYSUTCDATETIME());
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
    DECLARE @rc int, @path nvarchar(200) = N'/v1/jobs/' + @job_id;
    IF @job_id IS NULL OR @job_id LIKE N'%[^0-9A-Za-z_-]%'
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.job_request', 'code': 400, 'message': 'invalid @job_id');
        RETURN 400;
    END;
    EXEC @rc = sqlembed.invoke @path = @path, @method = @method, @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    UPDATE sqlembed.jobs SET state = ISNULL(JSON_VALUE(@response, '$.result.state'), state),
                             last_status = JSON_QUERY(@response, '$.result'), updated_at = SYSUTCDATETIME()
    WHERE job_id = @job_id;
    RETURN 0;
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.job_status
    @job_id nvarchar(64),
    @error  nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @response nvarchar(max), @rc int;
    EXEC @rc = sqlembed.job_request @job_id = @job_id, @method = N'GET', @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    SELECT j.id AS job_id, j.state, j.rows_total, j.rows_done, j.rows_failed, j.rows_per_s, j.started, j.finished, j.last_error
    FROM OPENJSON(@response, '$.result') WITH (
        id nvarchar(64), state nvarchar(20), rows_total bigint, rows_done bigint, rows_failed bigint,
        rows_per_s float, started nvarchar(40), finished nvarchar(40), last_error nvarchar(4000)) AS j;
    RETURN 0;
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.cancel_job
    @job_id nvarchar(64),
    @error  nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @response nvarchar(max);
    DECLARE @rc int;
    EXEC @rc = sqlembed.job_request @job_id = @job_id, @method = N'DELETE', @response = @response OUTPUT, @error = @error OUTPUT;
    RETURN @rc;
END;
GO
