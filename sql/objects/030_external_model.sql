-- sqlembed objects 030: the EXTERNAL MODEL that AI_GENERATE_EMBEDDINGS(... USE MODEL $(SQLEMBED_EXTERNAL_MODEL)) calls.
-- LOCATION is the complete request URL (contract B3): /api/embed for 'Ollama' (default),
-- /v1/embeddings for 'OpenAI', /openai/deployments/<model>/embeddings for 'Azure OpenAI'.
-- Created when missing, altered in place otherwise (no DROP: schema-bound views may reference it).
-- Options follow the documented order, CREDENTIAL before PARAMETERS. The credential test reads
-- sys.database_scoped_credentials, which is right here: deploy runs as the database owner.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
DECLARE @name   sysname        = N'$(SQLEMBED_EXTERNAL_MODEL)';
DECLARE @format nvarchar(40)   = N'$(SQLEMBED_API_FORMAT)';
DECLARE @base   nvarchar(4000) = N'$(SQLEMBED_URL)';
DECLARE @model  nvarchar(200)  = N'$(SQLEMBED_MODEL)';
DECLARE @cred   nvarchar(4000) = N'$(SQLEMBED_CREDENTIAL)';
DECLARE @params nvarchar(400)  = N'{"dimensions":' + CAST($(SQLEMBED_DIMENSIONS) AS nvarchar(10))
    + N',"sql_rest_options":{"retry_count":' + CAST($(SQLEMBED_RETRY_COUNT) AS nvarchar(10)) + N'}}';
DECLARE @location nvarchar(4000) = CASE @format
    WHEN N'Ollama'       THEN @base + N'/api/embed'
    WHEN N'OpenAI'       THEN @base + N'/v1/embeddings'
    WHEN N'Azure OpenAI' THEN @base + N'/openai/deployments/' + @model + N'/embeddings?api-version=2024-02-01'
END;
IF @location IS NULL
    THROW 50030, N'SQLEMBED_API_FORMAT must be Ollama, OpenAI or Azure OpenAI.', 1;
DECLARE @credential_option nvarchar(4200) = CASE
    WHEN @cred <> N'' AND EXISTS (SELECT 1 FROM sys.database_scoped_credentials WHERE name = @cred)
    THEN N', CREDENTIAL = [' + REPLACE(@cred, N']', N']]') + N']' ELSE N'' END;
DECLARE @sql nvarchar(max) = CASE WHEN EXISTS (SELECT 1 FROM sys.external_models WHERE name = @name)
    THEN N'ALTER EXTERNAL MODEL {name} SET ({settings});'
    ELSE N'CREATE EXTERNAL MODEL {name} WITH ({settings});' END;
SET @sql = REPLACE(@sql, N'{settings}',
      N'LOCATION = N''' + REPLACE(@location, N'''', N'''''') + N''''
    + N', API_FORMAT = N''' + REPLACE(@format, N'''', N'''''') + N''''
    + N', MODEL_TYPE = EMBEDDINGS'
    + N', MODEL = N''' + REPLACE(@model, N'''', N'''''') + N''''
    + @credential_option
    + N', PARAMETERS = N''' + REPLACE(@params, N'''', N'''''') + N'''');
SET @sql = REPLACE(@sql, N'{name}', QUOTENAME(@name));
EXEC sys.sp_executesql @sql;
GO
