-- sqlembed objects 020: deployment settings, frozen into sqlembed.config() at deploy time.
-- Two facts only the deploying owner can read are decided here, once, never at call time:
--   use_credential:   whether the credential exists. sys.database_scoped_credentials needs CONTROL
--                     on the database, so for an ordinary caller it is empty: a call-time check
--                     would send every call without the API key (401).
--   rest_retry_count: whether this build's sp_invoke_external_rest_endpoint takes @retry_count
--                     (current documentation lists it; a scripted SQL Server 2025 body does not,
--                     and an unknown parameter is Msg 8145).
-- Runs after 010_credential.sql, so a credential created by this deploy counts.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
DECLARE @credential nvarchar(4000) = N'$(SQLEMBED_CREDENTIAL)';
DECLARE @use_credential bit = CASE WHEN @credential <> N'' AND EXISTS (
    SELECT 1 FROM sys.database_scoped_credentials WHERE name = @credential) THEN 1 ELSE 0 END;
DECLARE @rest_retry bit = CASE WHEN EXISTS (
    SELECT 1 FROM sys.all_parameters
    WHERE object_id = OBJECT_ID(N'sys.sp_invoke_external_rest_endpoint') AND name = N'@retry_count') THEN 1 ELSE 0 END;
DECLARE @sql nvarchar(max) = N'CREATE OR ALTER FUNCTION sqlembed.config()
RETURNS TABLE
AS RETURN
    SELECT CAST({url} AS nvarchar(4000))            AS base_url,
           CAST({model} AS nvarchar(200))           AS model,
           CAST({api_format} AS nvarchar(40))       AS api_format,
           CAST({dimensions} AS int)                AS dimensions,
           CAST({vector_type} AS varchar(10))       AS vector_type,
           CAST({credential} AS nvarchar(4000))     AS credential_name,
           CAST({use_credential} AS bit)            AS use_credential,
           CAST({external_model} AS sysname)        AS external_model,
           CAST({timeout} AS smallint)              AS timeout_s,
           CAST({retry_count} AS tinyint)           AS retry_count,
           CAST({rest_retry} AS bit)                AS rest_retry_count;';
-- Values become N'...' literals with quotes doubled; numbers were validated as ASCII digits.
SET @sql = REPLACE(@sql, N'{url}', N'N''' + REPLACE(N'$(SQLEMBED_URL)', N'''', N'''''') + N'''');
SET @sql = REPLACE(@sql, N'{model}', N'N''' + REPLACE(N'$(SQLEMBED_MODEL)', N'''', N'''''') + N'''');
SET @sql = REPLACE(@sql, N'{api_format}', N'N''' + REPLACE(N'$(SQLEMBED_API_FORMAT)', N'''', N'''''') + N'''');
SET @sql = REPLACE(@sql, N'{dimensions}', CAST($(SQLEMBED_DIMENSIONS) AS nvarchar(10)));
SET @sql = REPLACE(@sql, N'{vector_type}', N'''' + REPLACE(N'$(SQLEMBED_VECTOR_TYPE)', N'''', N'''''') + N'''');
SET @sql = REPLACE(@sql, N'{credential}', N'N''' + REPLACE(@credential, N'''', N'''''') + N'''');
SET @sql = REPLACE(@sql, N'{use_credential}', CAST(@use_credential AS nvarchar(1)));
SET @sql = REPLACE(@sql, N'{external_model}', N'N''' + REPLACE(N'$(SQLEMBED_EXTERNAL_MODEL)', N'''', N'''''') + N'''');
SET @sql = REPLACE(@sql, N'{timeout}', CAST($(SQLEMBED_TIMEOUT) AS nvarchar(10)));
SET @sql = REPLACE(@sql, N'{retry_count}', CAST($(SQLEMBED_RETRY_COUNT) AS nvarchar(10)));
SET @sql = REPLACE(@sql, N'{rest_retry}', CAST(@rest_retry AS nvarchar(1)));
EXEC sys.sp_executesql @sql;
IF @credential <> N'' AND @use_credential = 0
    PRINT N'sqlembed: credential ' + @credential + N' does not exist: calls go out without an API key.';
GO
