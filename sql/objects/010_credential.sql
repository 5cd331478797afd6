-- sqlembed objects 010: the DATABASE SCOPED CREDENTIAL that carries the service's API key (contract A6).
-- The key never lives in a file: `sqlembed db deploy` reads it from an environment variable or a prompt
-- and substitutes it into this batch only; sqlcmd users pass -v SQLEMBED_API_KEY=... . Empty = no credential.
-- The credential's name is the service's base URL (scheme + host + port, no query string), which
-- SQL Server matches as a prefix of every URL it calls.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
-- Preflight, before any object is created or altered: on SQL Server 2025 a float16 VECTOR is a
-- preview feature, and without PREVIEW_FEATURES the deploy would stop half-way, at the first
-- procedure that declares one. Azure SQL Database, Managed Instance and Fabric decide for
-- themselves (the statement that needs it reports it).
IF N'$(SQLEMBED_VECTOR_TYPE)' = N'float16' AND CAST(SERVERPROPERTY('EngineEdition') AS int) NOT IN (5, 8, 12)
   AND ISNULL((SELECT TRY_CAST(value AS int) FROM sys.database_scoped_configurations
               WHERE name = N'PREVIEW_FEATURES'), 0) <> 1
    THROW 50010, N'SQLEMBED_VECTOR_TYPE=float16 is a preview feature on SQL Server 2025: a database owner runs ALTER DATABASE SCOPED CONFIGURATION SET PREVIEW_FEATURES = ON; then deploys again (no object was created or altered; migrations already applied stay).', 1;
GO
DECLARE @name nvarchar(4000) = N'$(SQLEMBED_CREDENTIAL)';
DECLARE @key  nvarchar(4000) = N'$(SQLEMBED_API_KEY)';
IF @name = N'' OR @key = N''
BEGIN
    PRINT N'sqlembed: no API key given; the credential is left as it is (the service must then run without keys).';
    RETURN;
END;
IF @name LIKE N'%?%' OR @name NOT LIKE N'https://%'
    THROW 50020, N'SQLEMBED_CREDENTIAL must be an https:// URL prefix without a query string (contract A6).', 1;
IF NOT EXISTS (SELECT 1 FROM sys.symmetric_keys WHERE name = N'##MS_DatabaseMasterKey##')
    THROW 50021, N'This database has no master key, which a DATABASE SCOPED CREDENTIAL needs. Create one first: CREATE MASTER KEY ENCRYPTION BY PASSWORD = ''<a strong password>'';', 1;
DECLARE @secret nvarchar(max) = N'{"api-key":"' + STRING_ESCAPE(@key, 'json') + N'"}';
DECLARE @verb nvarchar(10) =
    CASE WHEN EXISTS (SELECT 1 FROM sys.database_scoped_credentials WHERE name = @name) THEN N'ALTER' ELSE N'CREATE' END;
-- QUOTENAME returns NULL past 128 characters, so brackets are escaped by hand.
DECLARE @sql nvarchar(max) = @verb + N' DATABASE SCOPED CREDENTIAL [' + REPLACE(@name, N']', N']]') + N']'
    + N' WITH IDENTITY = ''HTTPEndpointHeaders'', SECRET = N''' + REPLACE(@secret, N'''', N'''''') + N''';';
EXEC sys.sp_executesql @sql;
PRINT N'sqlembed: credential ' + @verb + N'D for ' + @name;
GO
