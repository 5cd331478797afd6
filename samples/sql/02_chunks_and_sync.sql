-- sqlembed: long documents in a chunk table, searched by passage, kept in sync by Change Tracking
-- and a SQL Server Agent job. Run top to bottom in a database where sqlembed is deployed and the
-- service has a connection target for it (SQLEMBED_DATABASES='{"app": "mssql+mssqlpython://..."}').
-- Replace N'app' below with that name. Each step says what you should see.
SET NOCOUNT ON;
SET QUOTED_IDENTIFIER ON;
GO

-- 1. A table of long texts (the key must be the primary key: Change Tracking needs one).
DROP TABLE IF EXISTS dbo.sqlembed_sample_articles_chunks;
DROP TABLE IF EXISTS dbo.sqlembed_sample_articles;
CREATE TABLE dbo.sqlembed_sample_articles (
    id    int           NOT NULL CONSTRAINT PK_sqlembed_sample_articles PRIMARY KEY,
    title nvarchar(200) NOT NULL,
    body  nvarchar(max) NULL
);
INSERT dbo.sqlembed_sample_articles (id, title, body)
SELECT TOP (50) ROW_NUMBER() OVER (ORDER BY m.message_id, m.language_id), N'Message ' + CAST(m.message_id AS nvarchar(10)),
       REPLICATE(CAST(m.text AS nvarchar(max)) + NCHAR(10) + NCHAR(10), 6)
FROM sys.messages AS m WHERE m.language_id = 1033 AND LEN(m.text) > 200;
GO

-- 2. Change Tracking on (a DBA, once). TRACK_COLUMNS_UPDATED lets a sync skip updates that did
--    not touch the text.
IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID())
    ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON);
GO
ALTER TABLE dbo.sqlembed_sample_articles ENABLE CHANGE_TRACKING WITH (TRACK_COLUMNS_UPDATED = ON);
GO

-- 3. Chunk and embed: each article as passages of at most 200 tokens, 20 shared between
--    neighbours. The job creates dbo.sqlembed_sample_articles_chunks. You see a job id and 'queued'.
DECLARE @job nvarchar(64), @error nvarchar(max), @rc int;
EXEC @rc = sqlembed.submit_job @database = N'app', @table = N'dbo.sqlembed_sample_articles',
     @key_column = N'id', @text_column = N'body', @vector_column = N'embedding',
     @chunk_table = N'dbo.sqlembed_sample_articles_chunks', @chunk_tokens = 200, @chunk_overlap = 20,
     @sync = N'auto', @job_id = @job OUTPUT, @error = @error OUTPUT;
IF @rc <> 0 PRINT @error;
GO

-- 4. Watch it (run again until state is 'succeeded').
DECLARE @last nvarchar(64) = (SELECT TOP (1) job_id FROM sqlembed.my_jobs ORDER BY updated_at DESC);
EXEC sqlembed.job_status @job_id = @last;
GO

-- 5. Search by passage: one row per article, its best chunk, and the passage itself.
EXEC sqlembed.search_chunks @query = N'the transaction log is full', @chunk_table = N'dbo.sqlembed_sample_articles_chunks',
     @key_column = N'id', @vector_column = N'embedding', @top = 5,
     @parent_table = N'dbo.sqlembed_sample_articles', @text_column = N'body';
GO

-- 6. Change two articles and delete one; the next sync reads only those three keys
--    (job_status shows mode 'changes', rows_deleted 1).
UPDATE dbo.sqlembed_sample_articles SET body = N'A short replacement text.' WHERE id IN (1, 2);
DELETE FROM dbo.sqlembed_sample_articles WHERE id = 3;
GO
DECLARE @job nvarchar(64), @error nvarchar(max), @rc int;
EXEC @rc = sqlembed.submit_job @database = N'app', @table = N'dbo.sqlembed_sample_articles',
     @key_column = N'id', @text_column = N'body', @vector_column = N'embedding',
     @chunk_table = N'dbo.sqlembed_sample_articles_chunks', @chunk_tokens = 200, @chunk_overlap = 20,
     @job_id = @job OUTPUT, @error = @error OUTPUT;
IF @rc <> 0 PRINT @error;
GO

-- 7. Keep it in sync every 5 minutes with SQL Server Agent (not on Azure SQL Database: use an
--    Elastic Job or `sqlembed embed-table --watch` there). The step runs as the job owner, which
--    must be a login whose user is a member of sqlembed_user with SELECT on the table and INSERT,
--    DELETE on the chunk table. A sync still running when the next one is due is left to finish:
--    the step first refreshes the last job's state and submits only when it is done.
DECLARE @db sysname = DB_NAME(), @step nvarchar(max) = N'
DECLARE @last nvarchar(64) = (SELECT TOP (1) job_id FROM sqlembed.my_jobs
                              WHERE source_table = N''dbo.sqlembed_sample_articles'' ORDER BY updated_at DESC);
IF @last IS NOT NULL EXEC sqlembed.job_status @job_id = @last;
IF NOT EXISTS (SELECT 1 FROM sqlembed.my_jobs WHERE job_id = @last AND state IN (N''queued'', N''running''))
BEGIN
    DECLARE @job nvarchar(64), @error nvarchar(max), @rc int;
    EXEC @rc = sqlembed.submit_job @database = N''app'', @table = N''dbo.sqlembed_sample_articles'',
         @key_column = N''id'', @text_column = N''body'', @vector_column = N''embedding'',
         @chunk_table = N''dbo.sqlembed_sample_articles_chunks'', @chunk_tokens = 200, @chunk_overlap = 20,
         @job_id = @job OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0 THROW 50000, @error, 1;
END;';
IF EXISTS (SELECT 1 FROM msdb.dbo.sysjobs WHERE name = N'sqlembed sync sqlembed_sample_articles')
    EXEC msdb.dbo.sp_delete_job @job_name = N'sqlembed sync sqlembed_sample_articles';
EXEC msdb.dbo.sp_add_job @job_name = N'sqlembed sync sqlembed_sample_articles';
EXEC msdb.dbo.sp_add_jobstep @job_name = N'sqlembed sync sqlembed_sample_articles', @step_name = N'submit',
     @subsystem = N'TSQL', @database_name = @db, @command = @step;
-- Schedule names are not unique in msdb: add this one only once.
IF NOT EXISTS (SELECT 1 FROM msdb.dbo.sysschedules WHERE name = N'sqlembed every 5 minutes')
    EXEC msdb.dbo.sp_add_schedule @schedule_name = N'sqlembed every 5 minutes', @freq_type = 4, @freq_interval = 1,
         @freq_subday_type = 4, @freq_subday_interval = 5;
EXEC msdb.dbo.sp_attach_schedule @job_name = N'sqlembed sync sqlembed_sample_articles',
     @schedule_name = N'sqlembed every 5 minutes';
EXEC msdb.dbo.sp_add_jobserver @job_name = N'sqlembed sync sqlembed_sample_articles';
GO
